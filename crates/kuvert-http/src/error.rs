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

/// Every `error.code` the API answers with: stable, for programs to match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is not HTTP the API reads (a bad header, a bad path).
    BadRequest,
    /// The body is not JSON, or not the object the route takes.
    MalformedJson,
    /// The body is larger than the route takes.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// A field (named in `error.field`) has a value the route does not take.
    InvalidField,
    /// An address is not one.
    InvalidAddress,
    /// A password is too weak for the password rule.
    WeakPassword,
    /// No credentials, or ones that are not valid.
    Unauthorized,
    /// The key is valid but may not do this (a sending key on an account route, say).
    InsufficientScope,
    /// The password given to confirm an action is not the user's.
    WrongPassword,
    /// Too many password attempts for this account; wait and try again.
    TooManyAttempts,
    /// Too many requests from this client; wait and try again.
    RateLimited,
    /// Too many live event streams open for this account.
    TooManyStreams,
    /// The account is restricted, suspended or closed.
    AccountInactive,
    /// The account's sending is paused on its bounce or complaint rate; the message says
    /// which, with the figures.
    SendingPaused,
    /// The sender's domain is not a domain of this account.
    UnknownDomain,
    /// The sender's domain is not verified yet.
    DomainUnverified,
    /// The account has as many domains as its plan allows.
    DomainLimit,
    /// A quota of recipients is reached: the month's, the day's (lower during a new
    /// account's warm-up) or the hour's; the message names it and when it resets, and
    /// `Retry-After` gives the seconds until then.
    QuotaExceeded,
    /// More recipients than one message may have.
    TooManyRecipients,
    /// The message is larger than allowed.
    MessageTooLarge,
    /// Support may only act with a grant from the account, and has none.
    NoSupportGrant,
    /// No such thing, or not this account's.
    NotFound,
    /// It exists already.
    Conflict,
    /// The account's data has been erased.
    Erased,
    /// The address may not become a contact or be subscribed: it was erased at its owner's
    /// request, or is suppressed, or the contact left.
    AddressRefused,
    /// More than an account may have (properties, say).
    LimitReached,
    /// The import is not in a state that allows this.
    ImportState,
    /// A template version cannot be saved: its MJML or Handlebars is invalid, or it uses
    /// what Kuvert does not run (partials, unknown helpers).
    InvalidTemplate,
    /// A variable the template names has no value in the data given.
    MissingVariable,
    /// The template cannot be filled in with the data given (too much work, too large, a
    /// helper given the wrong kind of value).
    RenderFailed,
    /// Something failed inside Kuvert; it has been logged.
    Internal,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// Seconds after which the same request may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// The request field at fault, as a path like `to[3]`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidField,
            message,
        )
        .field(field)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "an internal error occurred; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
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
                ErrorCode::Conflict,
                format!("{what} already exists"),
            ),
            StoreError::KeyDestroyed => Self::new(
                StatusCode::GONE,
                ErrorCode::Erased,
                "this account's data has been erased",
            ),
            StoreError::InUse(why) => Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, why),
            StoreError::Refused(why) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::AddressRefused,
                why,
            )
            .field("address"),
            StoreError::Limit(why) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::LimitReached,
                why,
            ),
            StoreError::Filter(e) => Self::invalid("filter", e.to_string()),
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
            SubmissionErrorKind::Invalid => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidField)
            }
            SubmissionErrorKind::TooManyRecipients => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::TooManyRecipients,
            ),
            SubmissionErrorKind::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::MessageTooLarge)
            }
        };
        Self {
            status,
            code,
            message: e.message,
            field: e.field,
            retry_after: None,
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(e: AcceptError) -> Self {
        let message = e.to_string();
        match e {
            AcceptError::Invalid(s) => s.into(),
            AcceptError::UnknownDomain(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::UnknownDomain,
                message,
            )
            .field("from"),
            AcceptError::UnverifiedDomain(_) => {
                Self::new(StatusCode::FORBIDDEN, ErrorCode::DomainUnverified, message).field("from")
            }
            AcceptError::AccountNotActive(_) => {
                Self::new(StatusCode::FORBIDDEN, ErrorCode::AccountInactive, message)
            }
            AcceptError::Paused(_) => {
                Self::new(StatusCode::FORBIDDEN, ErrorCode::SendingPaused, message)
            }
            // Too many recipients for the limit itself: no wait helps.
            AcceptError::QuotaExceeded(q) if q.never => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::QuotaExceeded,
                message,
            ),
            AcceptError::QuotaExceeded(q) => ApiError {
                retry_after: Some(q.retry_after_s),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::QuotaExceeded,
                    message,
                )
            },
            AcceptError::Erased { field } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::AddressRefused,
                message,
            )
            .field(field),
            AcceptError::UnknownTemplate { ref version, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::NotFound,
                message,
            )
            .field(if version.is_some() {
                "version"
            } else {
                "template"
            }),
            AcceptError::Template(t) => t.into(),
            AcceptError::Internal(_) => Self::internal(),
            AcceptError::AlreadySent => {
                Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
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
            AdminError::WeakPassword(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::WeakPassword,
                message,
            )
            .field("password"),
            AdminError::InvalidEmail(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidAddress,
                message,
            )
            .field("email"),
            AdminError::InvalidDomain(_) => Self::invalid("name", message),
            AdminError::GrantHours(_) => Self::invalid("hours", message),
            AdminError::NoSupportGrant => {
                Self::new(StatusCode::FORBIDDEN, ErrorCode::NoSupportGrant, message)
            }
            AdminError::DomainLimit(_) => {
                Self::new(StatusCode::FORBIDDEN, ErrorCode::DomainLimit, message).field("name")
            }
            AdminError::WrongPassword => {
                Self::new(StatusCode::FORBIDDEN, ErrorCode::WrongPassword, message)
                    .field("password")
            }
            AdminError::Import(_) => Self::invalid("body", message),
            AdminError::NoConfirmationSender => Self::invalid("confirm_from", message),
            AdminError::ConfirmationMail(e) | AdminError::Render(e) => e.into(),
            AdminError::InvalidName { field, .. } => Self::invalid(field, message),
            AdminError::Template(e) => e.into(),
            AdminError::DkimKey(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message).field("algorithm")
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
            ErrorCode::PayloadTooLarge,
            "the request body is larger than this server accepts",
        )
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::payload_too_large()
        } else {
            Self::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                r.body_text(),
            )
        }
    }
}

impl From<kuvert_template::TemplateError> for ApiError {
    fn from(e: kuvert_template::TemplateError) -> Self {
        use kuvert_template::TemplateError as T;
        let message = e.to_string();
        let part = e.part().to_string();
        let (code, field) = match &e {
            T::Invalid { .. } => (ErrorCode::InvalidTemplate, part),
            T::MissingVariable { name, .. } => {
                (ErrorCode::MissingVariable, format!("variables.{name}"))
            }
            _ => (ErrorCode::RenderFailed, "variables".to_owned()),
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
    }
}
