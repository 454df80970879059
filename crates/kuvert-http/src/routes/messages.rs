use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kuvert_core::Mailbox;
use kuvert_core::event::{RecipientKind, RecipientStatus};
use kuvert_core::submission::{Attachment, Body, Parts, Submission, TrackingOptions};
use kuvert_submit::{Accepted, TemplateUse};
use kuvert_template::Rendered;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ApiJson, Auth, FullAccess};

/// A message to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// `addr@domain` or `Name <addr@domain>`; the domain must be a verified sending domain.
    pub from: String,
    /// One address or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    #[schema(value_type = Vec<String>)]
    pub to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    #[schema(value_type = Vec<String>)]
    pub cc: Vec<String>,
    /// Receive the message but do not appear in its headers.
    #[serde(default, deserialize_with = "one_or_many")]
    #[schema(value_type = Vec<String>)]
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    /// Required, unless a template version gives one.
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// A stored template instead of `text` and `html`.
    pub template: Option<String>,
    /// The template version's tag; the active version when absent.
    pub version: Option<String>,
    /// The template's variables. A variable the template names and this lacks is an error.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
    /// Extra headers, such as `X-Campaign`. Headers Kuvert sets itself are refused.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentIn>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Your own data, returned with the message's events. At most 10 KB.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// RFC 3339 time to send at, at most 7 days ahead.
    pub send_at: Option<String>,
    #[serde(default)]
    pub tracking: TrackingIn,
    /// Fail rather than deliver without TLS.
    #[serde(default)]
    pub require_tls: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentIn {
    pub filename: String,
    /// A MIME type such as `application/pdf`.
    pub content_type: String,
    /// The file, base64-encoded.
    pub content: String,
}

/// Tracking choices for this message; absent means the account's default.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingIn {
    /// A pixel records opens.
    pub opens: Option<bool>,
    /// Links go through a redirect that records clicks.
    pub clicks: Option<bool>,
    /// One-click `List-Unsubscribe` (RFC 8058), and `{{unsubscribe_url}}` in the body.
    #[serde(default)]
    pub unsubscribe: bool,
}

/// An address list may be given as one string or as an array of strings.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an address or a list of addresses")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(1000));
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Visitor)
}

#[derive(Serialize, ToSchema)]
pub struct SendResponse {
    pub id: String,
    pub recipients: Vec<AcceptedRecipientOut>,
}

#[derive(Serialize, ToSchema)]
pub struct AcceptedRecipientOut {
    pub email: String,
    pub id: String,
    /// `queued`, or `dropped` when the address is on the suppression list.
    pub status: RecipientStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub(crate) fn mailbox(field: String, s: &str) -> Result<Mailbox, ApiError> {
    Mailbox::parse(s).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidAddress,
            format!("{field}: {s:?} is not a valid address: {e}"),
        )
        .field(field)
    })
}

pub(crate) fn mailboxes(field: &str, list: &[String]) -> Result<Vec<Mailbox>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| mailbox(format!("{field}[{i}]"), s))
        .collect()
}

impl SendRequest {
    /// The request as a submission; `rendered` is its template filled in, when it names one.
    fn into_submission(self, rendered: Option<Rendered>) -> Result<Submission, ApiError> {
        let (text, html, template_subject) = match (rendered, &self.template) {
            (Some(r), _) => (Some(r.text), Some(r.html), r.subject),
            (None, None) => (self.text, self.html, None),
            (None, Some(_)) => {
                return Err(ApiError::invalid(
                    "template",
                    "a template is filled in only by the send route",
                ));
            }
        };
        let subject = self.subject.or(template_subject).ok_or_else(|| {
            ApiError::invalid(
                "subject",
                if self.template.is_some() {
                    "subject is required: the template version has none"
                } else {
                    "subject is required"
                },
            )
        })?;
        let attachments = self
            .attachments
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let cleaned: String = a
                    .content
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect();
                let content = STANDARD.decode(cleaned).map_err(|e| {
                    ApiError::invalid(
                        format!("attachments[{i}].content"),
                        format!("attachments[{i}].content is not base64: {e}"),
                    )
                })?;
                Ok(Attachment {
                    filename: a.filename,
                    content_type: a.content_type,
                    content,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Submission {
            from: mailbox("from".into(), &self.from)?,
            to: mailboxes("to", &self.to)?,
            cc: mailboxes("cc", &self.cc)?,
            bcc: mailboxes("bcc", &self.bcc)?,
            reply_to: self
                .reply_to
                .as_deref()
                .map(|r| mailbox("reply_to".into(), r))
                .transpose()?,
            subject,
            body: Body::Parts(Parts {
                text,
                html,
                headers: self.headers.into_iter().collect(),
                attachments,
            }),
            tags: self.tags,
            metadata: self.metadata,
            send_at: super::time_param("send_at", self.send_at.as_deref())?,
            tracking: TrackingOptions {
                opens: self.tracking.opens,
                clicks: self.tracking.clicks,
                unsubscribe: self.tracking.unsubscribe,
            },
            require_tls: self.require_tls,
        })
    }
}

/// The body of `POST /v1/messages` as the `Submission` it asks for, with the errors the route
/// answers (the checks of `Submission::check` and `accept()` come after).
pub fn submission_from_json(body: &[u8]) -> Result<Submission, ApiError> {
    crate::extract::from_json::<SendRequest>(body)?.into_submission(None)
}

/// Send a message. Answers once the message is stored durably.
#[utoipa::path(post, path = "/v1/messages", tag = "sending", request_body = SendRequest,
    responses(
        (status = 202, description = "Accepted and durably queued", body = SendResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Domain not verified, or account not active", body = ErrorBody),
        (status = 413, description = "Message too large", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "Monthly quota used up", body = ErrorBody),
    ),
    security(("api_key" = []), ("basic" = [])))]
pub async fn send(
    State(state): State<Arc<AppState>>,
    Auth(auth): Auth,
    ApiJson(mut req): ApiJson<SendRequest>,
) -> Result<(StatusCode, Json<SendResponse>), ApiError> {
    let using = match &req.template {
        None => None,
        Some(_) if req.text.is_some() || req.html.is_some() => {
            return Err(ApiError::invalid(
                "template",
                "give a template or text and html, not both",
            ));
        }
        Some(name) => Some(TemplateUse {
            name: name.to_ascii_lowercase(),
            version: req.version.clone(),
            variables: std::mem::take(&mut req.variables),
        }),
    };
    let rendered = render(&state, &auth.account_id, using).await?;
    // A template that links `{{unsubscribe_url}}` asks for the link.
    let unsubscribe = rendered
        .as_ref()
        .is_some_and(Rendered::asks_for_unsubscribe);
    let mut submission = req.into_submission(rendered)?;
    submission.tracking.unsubscribe |= unsubscribe;
    let accepted = state.acceptor.accept(&auth.account_id, submission).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted.into())))
}

/// The stored template a send names, filled in with its variables: what `/v1/messages` and
/// the compatible APIs' sends take their text and HTML from.
pub(crate) async fn render(
    state: &AppState,
    account: &kuvert_core::id::AccountId,
    using: Option<TemplateUse>,
) -> Result<Option<Rendered>, ApiError> {
    let Some(using) = using else {
        return Ok(None);
    };
    let (_, rendered) = state
        .acceptor
        .render_template(account, &using, Map::new())
        .await?;
    Ok(Some(rendered))
}

impl From<Accepted> for SendResponse {
    fn from(accepted: Accepted) -> Self {
        SendResponse {
            id: accepted.id.to_string(),
            recipients: accepted
                .recipients
                .into_iter()
                .map(|r| AcceptedRecipientOut {
                    email: r.email,
                    id: r.id.to_string(),
                    status: r.status,
                    reason: r.reason,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageOut {
    pub id: String,
    pub from: String,
    pub subject: String,
    /// Size of the MIME message in bytes.
    pub size: i64,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub send_at: Option<String>,
    pub created_at: String,
    pub recipients: Vec<RecipientOut>,
}

#[derive(Serialize, ToSchema)]
pub struct RecipientOut {
    pub id: String,
    pub email: String,
    pub kind: RecipientKind,
    pub status: RecipientStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub updated_at: String,
}

/// A message and where each of its recipients stands.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "sending",
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = MessageOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<Json<MessageOut>, ApiError> {
    let m = state.store.message(&auth.account_id, &id).await?;
    Ok(Json(MessageOut {
        id: m.id.to_string(),
        from: m.from,
        subject: m.subject,
        size: m.size,
        tags: m.tags,
        metadata: m.metadata,
        send_at: m.send_at.map(|t| t.to_rfc3339()),
        created_at: m.created_at.to_rfc3339(),
        recipients: m
            .recipients
            .into_iter()
            .map(|r| RecipientOut {
                id: r.id.to_string(),
                email: r.email,
                kind: r.kind,
                status: r.status,
                attempts: r.attempts,
                next_attempt_at: r.next_attempt_at.map(|t| t.to_rfc3339()),
                updated_at: r.updated_at.to_rfc3339(),
            })
            .collect(),
    }))
}
