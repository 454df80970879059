//! Mailjet's API over Kuvert: the send API v3.1 and the REST resources Mailjet's client
//! libraries use, so that code written for Mailjet works with a new base URL and key pair.
//!
//! As with Mailgun's surface (`crate::mailgun`), each route is an adapter onto what `/v1`
//! calls; an option Kuvert cannot honour is refused in Mailjet's error shape, never ignored.
//! The compatibility table (`docs/compat.md`) documents the routes.
//!
//! Mailjet authenticates with a pair, `KEY:SECRET`. A Kuvert key serves as the pair: the
//! secret is the key, the public part is the key's prefix (its first ten characters, which
//! `kuvert key list` and `/v1/keys` show).

pub mod callbacks;
pub mod contacts;
pub mod messages;
pub mod send;
pub mod templates;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

/// Every route of this surface as (method, path): the access matrix walks them all.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v3.1/send"),
    ("get", "/v3/REST/contactslist"),
    ("post", "/v3/REST/contactslist"),
    ("get", "/v3/REST/contactslist/{list_id}"),
    ("put", "/v3/REST/contactslist/{list_id}"),
    ("delete", "/v3/REST/contactslist/{list_id}"),
    ("post", "/v3/REST/contactslist/{list_id}/managecontact"),
    ("post", "/v3/REST/contactslist/{list_id}/managemanycontacts"),
    (
        "get",
        "/v3/REST/contactslist/{list_id}/managemanycontacts/{job_id}",
    ),
    ("get", "/v3/REST/contact"),
    ("post", "/v3/REST/contact"),
    ("get", "/v3/REST/contact/{contact_id}"),
    ("get", "/v3/REST/contact/{contact_id}/getcontactslists"),
    ("post", "/v3/REST/contact/{contact_id}/managecontactslists"),
    ("delete", "/v4/contacts/{contact_id}"),
    ("delete", "/v4/REST/contacts/{contact_id}"),
    ("get", "/v3/REST/contactdata/{contact_id}"),
    ("put", "/v3/REST/contactdata/{contact_id}"),
    ("get", "/v3/REST/contactmetadata"),
    ("post", "/v3/REST/contactmetadata"),
    ("get", "/v3/REST/message"),
    ("get", "/v3/REST/message/{message_id}"),
    ("get", "/v3/REST/messagehistory/{message_id}"),
    ("get", "/v3/REST/statcounters"),
    ("get", "/v3/REST/eventcallbackurl"),
    ("post", "/v3/REST/eventcallbackurl"),
    ("get", "/v3/REST/eventcallbackurl/{callback_id}"),
    ("put", "/v3/REST/eventcallbackurl/{callback_id}"),
    ("delete", "/v3/REST/eventcallbackurl/{callback_id}"),
    ("get", "/v3/REST/template"),
    ("post", "/v3/REST/template"),
    ("get", "/v3/REST/template/{template_id}"),
    ("delete", "/v3/REST/template/{template_id}"),
    ("get", "/v3/REST/template/{template_id}/detailcontent"),
    ("post", "/v3/REST/template/{template_id}/detailcontent"),
];

/// Mailjet's routes, to merge beside `/v1`.
pub fn router() -> Router<Arc<AppState>> {
    let rest = Router::new()
        .route(
            "/v3/REST/contactslist",
            get(contacts::lists).post(contacts::list_create),
        )
        .route(
            "/v3/REST/contactslist/{list_id}",
            get(contacts::list_get)
                .put(contacts::list_update)
                .delete(contacts::list_delete),
        )
        .route(
            "/v3/REST/contactslist/{list_id}/managecontact",
            post(contacts::manage_contact),
        )
        .route(
            "/v3/REST/contactslist/{list_id}/managemanycontacts",
            post(contacts::manage_many),
        )
        .route(
            "/v3/REST/contactslist/{list_id}/managemanycontacts/{job_id}",
            get(contacts::manage_many_job),
        )
        .route(
            "/v3/REST/contact",
            get(contacts::contacts).post(contacts::contact_create),
        )
        .route("/v3/REST/contact/{contact_id}", get(contacts::contact_get))
        .route(
            "/v3/REST/contact/{contact_id}/getcontactslists",
            get(contacts::contact_lists),
        )
        .route(
            "/v3/REST/contact/{contact_id}/managecontactslists",
            post(contacts::manage_lists),
        )
        .route("/v4/contacts/{contact_id}", delete(contacts::erase))
        .route("/v4/REST/contacts/{contact_id}", delete(contacts::erase))
        .route(
            "/v3/REST/eventcallbackurl",
            get(callbacks::list).post(callbacks::create),
        )
        .route(
            "/v3/REST/eventcallbackurl/{callback_id}",
            get(callbacks::get)
                .put(callbacks::update)
                .delete(callbacks::remove),
        )
        .route(
            "/v3/REST/contactdata/{contact_id}",
            get(contacts::data_get).put(contacts::data_put),
        )
        .route(
            "/v3/REST/contactmetadata",
            get(contacts::metadata).post(contacts::metadata_create),
        )
        .route("/v3/REST/message", get(messages::list))
        .route("/v3/REST/message/{message_id}", get(messages::get))
        .route(
            "/v3/REST/messagehistory/{message_id}",
            get(messages::history),
        )
        .route("/v3/REST/statcounters", get(messages::statcounters))
        .route(
            "/v3/REST/template",
            get(templates::list).post(templates::create),
        )
        .route(
            "/v3/REST/template/{template_id}",
            get(templates::get).delete(templates::remove),
        )
        .route(
            "/v3/REST/template/{template_id}/detailcontent",
            get(templates::content_get).post(templates::content_set),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::mailgun::MAX_BODY,
        ));
    // Mailjet's other resources would otherwise be read as Mailgun's `/v3/{domain}/...`.
    let not_served = || async {
        MjError::new(
            StatusCode::NOT_FOUND,
            "this endpoint is not served by this server (see its compatibility table)",
        )
    };
    Router::new()
        .route("/v3.1/send", post(send::send))
        .route("/v3/REST/{*rest}", axum::routing::any(not_served))
        .route("/v3/DATA/{*rest}", axum::routing::any(not_served))
        .merge(rest)
}

/// The Mailjet-style credentials of a request, checked before any body is read: Basic
/// `KEY:SECRET` where SECRET is a Kuvert key and KEY its prefix, or Kuvert's own Bearer key.
fn check_pair(parts: &Parts) -> Result<(), MjError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(()); // Kuvert's extractor answers the missing key.
    };
    let Some((scheme, rest)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Ok(());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(());
    }
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let (public, secret) = decoded.split_once(':').unwrap_or(("", ""));
    if public.is_empty() || !secret.starts_with(public) || public.len() != KEY_PUBLIC_LEN {
        return Err(MjError::unauthorized());
    }
    Ok(())
}

/// The length of a key's public part, its prefix.
pub const KEY_PUBLIC_LEN: usize = 10;

/// A request with a valid key pair (any scope): the send API.
pub struct MjAuth(pub kuvert_store::KeyAuth);

impl FromRequestParts<Arc<AppState>> for MjAuth {
    type Rejection = MjError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, MjError> {
        check_pair(parts)?;
        let crate::extract::Auth(auth) = crate::extract::Auth::from_request_parts(parts, state)
            .await
            .map_err(MjError::from)?;
        Ok(Self(auth))
    }
}

/// A request with a full key pair (audited): every REST resource.
pub struct MjFull(pub kuvert_store::KeyAuth);

impl FromRequestParts<Arc<AppState>> for MjFull {
    type Rejection = MjError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, MjError> {
        check_pair(parts)?;
        let crate::extract::FullAccess(auth) =
            crate::extract::FullAccess::from_request_parts(parts, state)
                .await
                .map_err(MjError::from)?;
        Ok(Self(auth))
    }
}

/// A REST request's query: Mailjet's filters are matched without regard to case
/// (`Limit`, `limit`); each is read once, and a filter a route does not know is refused.
pub struct MjQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for MjQuery {
    type Rejection = MjError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, MjError> {
        let mut out = HashMap::new();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
            if out.len() >= 32 {
                return Err(MjError::bad_request("too many filters"));
            }
            if out.insert(k.to_ascii_lowercase(), v.into_owned()).is_some() {
                return Err(MjError::bad_request(format!("filter {k} is given twice")));
            }
        }
        Ok(Self(out))
    }
}

impl MjQuery {
    /// Refuses a filter other than `known` (and the paging ones, always known).
    pub fn only(&self, known: &[&str]) -> Result<(), MjError> {
        for k in self.0.keys() {
            if !known.contains(&k.as_str())
                && !["limit", "offset", "countonly"].contains(&k.as_str())
            {
                return Err(MjError::bad_request(format!(
                    "filter {k} is not supported by this server"
                )));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `Limit` (default 10, Mailjet's; at most 1000) and `Offset` (at most 10,000: paging by
    /// offset costs the rows skipped).
    pub fn paging(&self) -> Result<Paging, MjError> {
        let number = |name: &str, default: u32, max: u32| -> Result<u32, MjError> {
            match self.get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| {
                        MjError::bad_request(format!("{name}: must be a number from 0 to {max}"))
                    }),
            }
        };
        let limit = match number("limit", 10, MAX_LIMIT)? {
            0 => MAX_LIMIT,
            n => n,
        };
        Ok(Paging {
            limit,
            offset: number("offset", 0, MAX_OFFSET)?,
            count_only: matches!(self.get("countonly"), Some("1" | "true")),
        })
    }
}

pub const MAX_LIMIT: u32 = 1000;
pub const MAX_OFFSET: u32 = 10_000;

#[derive(Clone, Copy, Debug)]
pub struct Paging {
    pub limit: u32,
    pub offset: u32,
    pub count_only: bool,
}

impl Paging {
    /// One page of `all`, in Mailjet's envelope: `Total` counts them all.
    pub fn page<T: Serialize>(&self, all: Vec<T>) -> axum::Json<Listed<T>> {
        let total = all.len();
        let data: Vec<T> = if self.count_only {
            Vec::new()
        } else {
            all.into_iter()
                .skip(self.offset as usize)
                .take(self.limit as usize)
                .collect()
        };
        axum::Json(Listed {
            count: if self.count_only { total } else { data.len() },
            data,
            total,
        })
    }
}

/// Mailjet's envelope of every REST answer.
#[derive(Serialize)]
pub struct Listed<T> {
    #[serde(rename = "Count")]
    pub count: usize,
    #[serde(rename = "Data")]
    pub data: Vec<T>,
    #[serde(rename = "Total")]
    pub total: usize,
}

/// One object in the envelope (`GET .../{id}`, a create).
pub fn one<T: Serialize>(item: T) -> axum::Json<Listed<T>> {
    axum::Json(Listed {
        count: 1,
        data: vec![item],
        total: 1,
    })
}

/// A REST error in Mailjet's shape: `{"ErrorInfo", "ErrorMessage", "StatusCode"}`.
#[derive(Debug)]
pub struct MjError {
    pub status: StatusCode,
    pub message: String,
}

impl MjError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Object not found")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "API key authentication/authorization failure. You may be unauthorized to access the API or your API key may be expired. Visit API keys management section to check your keys.",
        )
    }

    /// A property or option Kuvert does not carry out: said, not ignored.
    pub fn unsupported(name: &str, why: &str) -> Self {
        Self::bad_request(format!("{name} is not supported by this server: {why}"))
    }
}

impl From<ApiError> for MjError {
    fn from(e: ApiError) -> Self {
        match e.status {
            StatusCode::UNAUTHORIZED => Self::unauthorized(),
            StatusCode::NOT_FOUND => Self::not_found(),
            StatusCode::UNPROCESSABLE_ENTITY => Self::bad_request(e.message),
            status => Self::new(status, e.message),
        }
    }
}

impl From<kuvert_store::StoreError> for MjError {
    fn from(e: kuvert_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for MjError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({
                "ErrorInfo": "",
                "ErrorMessage": self.message,
                "StatusCode": self.status.as_u16(),
            })),
        )
            .into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Provide an apiKey and secretKey\""),
            );
        }
        response
    }
}

/// A time as Mailjet writes it: RFC 3339 with seconds, `2024-01-31T10:00:00Z`.
pub fn time(t: kuvert_core::Timestamp) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t.millis())
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
