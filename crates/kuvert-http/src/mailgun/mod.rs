//! Mailgun's API over Kuvert: the paths, forms and answers Mailgun's client libraries use,
//! so that code written for Mailgun sends through Kuvert with a new base URL and key.
//!
//! Each route is an adapter: it reads Mailgun's request into Kuvert's own types and calls
//! what `/v1` calls (`accept()`, the store), then writes Mailgun's answer. No rule lives
//! here twice. An option Kuvert cannot honour is refused in Mailgun's error shape, never
//! ignored. The routes are documented by the compatibility table (`docs/compat.md`), not by
//! the OpenAPI document, which is Kuvert's own API.

pub mod form;
pub mod messages;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::AppState;
use crate::error::ApiError;

/// Every route of this surface as (method, path): the access matrix walks them all.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v3/{domain}/messages"),
    ("post", "/v3/{domain}/messages.mime"),
];

/// Mailgun's routes, to merge beside `/v1`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v3/{domain}/messages", post(messages::send))
        .route("/v3/{domain}/messages.mime", post(messages::send_mime))
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
}

impl MgError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
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
        Self::new(status, e.message)
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
        response
    }
}
