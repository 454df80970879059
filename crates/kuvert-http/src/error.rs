//! Every error answer has one shape, `{"error": {"code", "message", "field"}}`, a stable
//! `code` for programs and a `message` for people. Bad input is a 4xx, never a 500.

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kuvert_admin::AdminError;
use kuvert_core::submission::{SubmissionError, SubmissionErrorKind};
use kuvert_store::StoreError;
use kuvert_submit::AcceptError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `malformed_json`, `invalid_field`, `invalid_address`, `unauthorized`, ...
    pub code: String,
    /// For people.
    pub message: String,
    /// The request field at fault, as a path like `to[3]`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, Basic realm=\"kuvert\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(what) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            StoreError::KeyDestroyed => Self::new(
                StatusCode::GONE,
                "erased",
                "this account's data has been erased",
            ),
            other => {
                tracing::error!(error = %other, "store error");
                Self::internal()
            }
        }
    }
}

impl From<SubmissionError> for ApiError {
    fn from(e: SubmissionError) -> Self {
        let (status, code) = match e.kind {
            SubmissionErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            SubmissionErrorKind::TooManyRecipients => {
                (StatusCode::UNPROCESSABLE_ENTITY, "too_many_recipients")
            }
            SubmissionErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "message_too_large"),
        };
        Self {
            status,
            code,
            message: e.message,
            field: e.field,
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(e: AcceptError) -> Self {
        let message = e.to_string();
        match e {
            AcceptError::Invalid(s) => s.into(),
            AcceptError::UnknownDomain(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_domain", message).field("from")
            }
            AcceptError::UnverifiedDomain(_) => {
                Self::new(StatusCode::FORBIDDEN, "domain_unverified", message).field("from")
            }
            AcceptError::AccountNotActive(_) => {
                Self::new(StatusCode::FORBIDDEN, "account_inactive", message)
            }
            AcceptError::QuotaExceeded { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
            }
            AcceptError::Store(s) => s.into(),
            _ => Self::internal(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let message = e.to_string();
        match e {
            AdminError::WeakPassword(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", message)
                    .field("password")
            }
            AdminError::InvalidEmail(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_address", message)
                    .field("email")
            }
            AdminError::InvalidDomain(_) => Self::invalid("name", message),
            AdminError::NoSupportGrant => {
                Self::new(StatusCode::FORBIDDEN, "no_support_grant", message)
            }
            AdminError::DomainLimit(_) => {
                Self::new(StatusCode::FORBIDDEN, "domain_limit", message).field("name")
            }
            AdminError::WrongPassword => {
                Self::new(StatusCode::FORBIDDEN, "wrong_password", message).field("password")
            }
            AdminError::Store(s) => s.into(),
            _ => Self::internal(),
        }
    }
}

impl ApiError {
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than this server accepts",
        )
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::payload_too_large()
        } else {
            Self::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
        }
    }
}
