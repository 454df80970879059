//! Mailgun's API over Kuvert: the paths, forms and answers Mailgun's client libraries use,
//! so that code written for Mailgun sends through Kuvert with a new base URL and key.
//!
//! Each route is an adapter: it reads Mailgun's request into Kuvert's own types and calls
//! what `/v1` calls (`accept()`, the store), then writes Mailgun's answer. No rule lives
//! here twice. An option Kuvert cannot honour is refused in Mailgun's error shape, never
//! ignored. The routes are documented by the compatibility table (`docs/compat.md`), not by
//! the OpenAPI document, which is Kuvert's own API.

pub mod domains;
pub mod events;
pub mod form;
pub mod lists;
pub mod messages;
pub mod stats;
pub mod suppressions;
pub mod tags;
pub mod templates;
pub mod validate;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::AppState;
use crate::error::ApiError;

/// Every route of this surface as (method, path): the access matrix walks them all.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v3/{domain}/messages"),
    ("post", "/v3/{domain}/messages.mime"),
    ("get", "/v3/{domain}/events"),
    ("get", "/v3/{domain}/events/{token}"),
    ("get", "/v3/{domain}/stats/total"),
    ("get", "/v3/domains"),
    ("post", "/v3/domains"),
    ("get", "/v3/domains/{name}"),
    ("delete", "/v3/domains/{name}"),
    ("put", "/v3/domains/{name}/verify"),
    ("get", "/v4/domains"),
    ("post", "/v4/domains"),
    ("get", "/v4/domains/{name}"),
    ("delete", "/v4/domains/{name}"),
    ("put", "/v4/domains/{name}/verify"),
    ("get", "/v3/domains/{name}/webhooks"),
    ("post", "/v3/domains/{name}/webhooks"),
    ("get", "/v3/domains/{name}/webhooks/{id}"),
    ("put", "/v3/domains/{name}/webhooks/{id}"),
    ("delete", "/v3/domains/{name}/webhooks/{id}"),
    ("get", "/v5/accounts/http_signing_key"),
    ("post", "/v3/lists"),
    ("get", "/v3/lists/pages"),
    ("get", "/v3/lists/{address}"),
    ("put", "/v3/lists/{address}"),
    ("delete", "/v3/lists/{address}"),
    ("post", "/v3/lists/{address}/members"),
    ("get", "/v3/lists/{address}/members/pages"),
    ("get", "/v3/lists/{address}/members/{member}"),
    ("put", "/v3/lists/{address}/members/{member}"),
    ("delete", "/v3/lists/{address}/members/{member}"),
    ("get", "/v4/address/validate"),
    ("post", "/v4/address/validate"),
    ("get", "/v3/{domain}/tags"),
    ("get", "/v3/{domain}/tags/{tag}"),
    ("put", "/v3/{domain}/tags/{tag}"),
    ("delete", "/v3/{domain}/tags/{tag}"),
    ("get", "/v3/{domain}/tags/{tag}/stats"),
    ("get", "/v3/{domain}/templates"),
    ("post", "/v3/{domain}/templates"),
    ("get", "/v3/{domain}/templates/{name}"),
    ("put", "/v3/{domain}/templates/{name}"),
    ("delete", "/v3/{domain}/templates/{name}"),
    ("get", "/v3/{domain}/templates/{name}/versions"),
    ("post", "/v3/{domain}/templates/{name}/versions"),
    ("get", "/v3/{domain}/templates/{name}/versions/{tag}"),
    ("put", "/v3/{domain}/templates/{name}/versions/{tag}"),
    ("delete", "/v3/{domain}/templates/{name}/versions/{tag}"),
    ("get", "/v3/{domain}/{kind}"),
    ("post", "/v3/{domain}/{kind}"),
    ("delete", "/v3/{domain}/{kind}"),
    ("post", "/v3/{domain}/{kind}/import"),
    ("get", "/v3/{domain}/{kind}/{address}"),
    ("delete", "/v3/{domain}/{kind}/{address}"),
];

/// Mailgun's routes, to merge beside `/v1`.
pub fn router() -> Router<Arc<AppState>> {
    // Sends take a message (the server's body limit); the other routes take a form or up to
    // a thousand JSON records, and no more than this.
    let sends = Router::new()
        .route("/v3/{domain}/messages", post(messages::send))
        .route("/v3/{domain}/messages.mime", post(messages::send_mime));
    Router::new()
        .route("/v3/{domain}/events", get(events::list))
        .route("/v3/{domain}/events/{token}", get(events::page_of))
        .route("/v3/{domain}/stats/total", get(stats::total))
        .route("/v3/domains", get(domains::list).post(domains::create))
        .route("/v4/domains", get(domains::list).post(domains::create))
        .route(
            "/v3/domains/{name}",
            get(domains::get).delete(domains::remove),
        )
        .route(
            "/v4/domains/{name}",
            get(domains::get).delete(domains::remove),
        )
        .route("/v3/domains/{name}/verify", put(domains::verify))
        .route("/v4/domains/{name}/verify", put(domains::verify))
        .route(
            "/v3/domains/{name}/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/v3/domains/{name}/webhooks/{id}",
            get(webhooks::get)
                .put(webhooks::update)
                .delete(webhooks::remove),
        )
        .route("/v5/accounts/http_signing_key", get(webhooks::signing_key))
        .route("/v3/lists", post(lists::create))
        .route("/v3/lists/pages", get(lists::pages))
        .route(
            "/v3/lists/{address}",
            get(lists::get).put(lists::update).delete(lists::remove),
        )
        .route("/v3/lists/{address}/members", post(lists::member_add))
        .route(
            "/v3/lists/{address}/members/pages",
            get(lists::member_pages),
        )
        .route(
            "/v3/lists/{address}/members/{member}",
            get(lists::member_get)
                .put(lists::member_update)
                .delete(lists::member_remove),
        )
        .route(
            "/v4/address/validate",
            get(validate::get).post(validate::post),
        )
        .route("/v3/{domain}/tags", get(tags::list))
        .route(
            "/v3/{domain}/tags/{tag}",
            get(tags::get).put(tags::update).delete(tags::remove),
        )
        .route("/v3/{domain}/tags/{tag}/stats", get(tags::stats))
        .route(
            "/v3/{domain}/templates",
            get(templates::list).post(templates::create),
        )
        .route(
            "/v3/{domain}/templates/{name}",
            get(templates::get)
                .put(templates::update)
                .delete(templates::remove),
        )
        .route(
            "/v3/{domain}/templates/{name}/versions",
            get(templates::versions).post(templates::version_create),
        )
        .route(
            "/v3/{domain}/templates/{name}/versions/{tag}",
            get(templates::version_get)
                .put(templates::version_update)
                .delete(templates::version_remove),
        )
        // bounces, unsubscribes, complaints (whitelists are refused by name)
        .route(
            "/v3/{domain}/{kind}",
            get(suppressions::list)
                .post(suppressions::add)
                .delete(suppressions::clear),
        )
        .route("/v3/{domain}/{kind}/import", post(suppressions::import))
        .route(
            "/v3/{domain}/{kind}/{address}",
            get(suppressions::get).delete(suppressions::remove),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .merge(sends)
}

/// The body every route but the sends takes at most.
pub const MAX_BODY: usize = 1024 * 1024;

/// A list's `limit`: `default` when absent, else a number from 1 to `max`.
pub fn limit(params: &form::Form, default: u32, max: u32) -> Result<u32, MgError> {
    match params.first("limit") {
        None => Ok(default),
        Some(l) => l
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                MgError::bad_request(format!("limit: must be a number from 1 to {max}"))
            }),
    }
}

/// Where a page of a list paged forward by name starts: after the `key` value of
/// `page=next`, or at the first page. Other pages (`last`, `prev`) are refused: their links
/// name the first page.
pub fn page_after<'a>(params: &'a form::Form, key: &'a str) -> Result<Option<&'a str>, MgError> {
    match params.first("page") {
        None | Some("first") => Ok(None),
        Some("next") => Ok(params.first(key).filter(|v| !v.is_empty())),
        Some(other) => Err(MgError::unsupported(
            &format!("page={other}"),
            &format!("pages are followed forward from the first (page=next with {key})"),
        )),
    }
}

/// A time as Mailgun writes it: `Fri, 21 Oct 2011 11:02:55 UTC`.
pub fn date(t: kuvert_core::Timestamp) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t.millis())
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S UTC")
        .to_string()
}

/// Like [`MgAuth`], but the key must be a full one (and the use is audited): every route
/// but sending.
pub struct MgFull(pub kuvert_store::KeyAuth);

impl axum::extract::FromRequestParts<Arc<AppState>> for MgFull {
    type Rejection = MgError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, MgError> {
        let crate::extract::FullAccess(auth) =
            crate::extract::FullAccess::from_request_parts(parts, state).await?;
        Ok(Self(auth))
    }
}

/// The domain `{domain}` names, of the key's account: Mailgun's API is per domain. Another
/// account's domain is answered as none, without echoing the name.
pub async fn account_domain(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    name: &str,
) -> Result<kuvert_store::Domain, MgError> {
    match state
        .store
        .account_domain(&auth.account_id, &name.to_ascii_lowercase())
        .await
    {
        Ok(d) => Ok(d),
        Err(kuvert_store::StoreError::NotFound(_)) => {
            Err(MgError::new(StatusCode::NOT_FOUND, "Domain not found"))
        }
        Err(other) => Err(ApiError::from(other).into()),
    }
}

/// The base of the URLs an answer names (`paging`): the scheme and host the client used.
pub fn base_url(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// A request with a valid key (Basic `api:KEY`, as Mailgun's clients send it), refused in
/// Mailgun's shape; checked before any body is read.
pub struct MgAuth(pub kuvert_store::KeyAuth);

impl axum::extract::FromRequestParts<Arc<AppState>> for MgAuth {
    type Rejection = MgError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, MgError> {
        let crate::extract::Auth(auth) =
            crate::extract::Auth::from_request_parts(parts, state).await?;
        Ok(Self(auth))
    }
}

/// An error in Mailgun's shape: `{"message": "..."}` with Mailgun's status codes (a refused
/// parameter is 400, where `/v1` answers 422).
#[derive(Debug)]
pub struct MgError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds until a quota resets (`Retry-After` on a 429).
    pub retry_after: Option<u64>,
}

impl MgError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// An option Kuvert does not carry out: said, not ignored.
    pub fn unsupported(name: &str, why: &str) -> Self {
        Self::bad_request(format!("'{name}' is not supported by this server: {why}"))
    }
}

impl From<ApiError> for MgError {
    fn from(e: ApiError) -> Self {
        let status = if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            e.status
        };
        Self {
            retry_after: e.retry_after,
            ..Self::new(status, e.message)
        }
    }
}

impl IntoResponse for MgError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "message": self.message })),
        )
            .into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"MG API\""),
            );
        }
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}
