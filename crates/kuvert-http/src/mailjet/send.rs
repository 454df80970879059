//! `POST /v3.1/send`: Mailjet's messages read into the `Submission` that `accept()` takes.
//!
//! Each message of a request stands alone, as at Mailjet: one that is refused does not stop
//! the others, and the answer says, message by message, what became of each (200 when all
//! were queued, 400 otherwise).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kuvert_core::submission::{Attachment, Body, Parts, Submission, TrackingOptions};
use kuvert_core::{EmailAddress, Mailbox};
use kuvert_submit::TemplateUse;
use serde::Serialize;
use serde_json::{Map, Value};

use super::MjAuth;
use crate::AppState;
use crate::error::ApiError;

/// Mailjet takes at most 50 messages a request.
pub const MAX_MESSAGES: usize = 50;

/// A refusal of one message, or of the whole request: Mailjet's error entry.
#[derive(Debug, Serialize)]
pub struct SendError {
    #[serde(rename = "ErrorIdentifier")]
    pub identifier: String,
    #[serde(rename = "ErrorCode")]
    pub code: &'static str,
    #[serde(rename = "StatusCode")]
    pub status: u16,
    #[serde(rename = "ErrorMessage")]
    pub message: String,
    #[serde(rename = "ErrorRelatedTo", skip_serializing_if = "Vec::is_empty")]
    pub related_to: Vec<String>,
}

impl SendError {
    fn new(code: &'static str, message: impl Into<String>, related: &[&str]) -> Self {
        Self::with_status(400, code, message, related)
    }

    fn with_status(
        status: u16,
        code: &'static str,
        message: impl Into<String>,
        related: &[&str],
    ) -> Self {
        Self {
            identifier: uuid_like(),
            code,
            status,
            message: message.into(),
            related_to: related.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// A property Kuvert does not carry out.
    fn unsupported(name: &str, why: &str) -> Self {
        Self::new(
            "send-0011",
            format!("{name} is not supported by this server: {why}"),
            &[name],
        )
    }
}

impl IntoResponse for SendError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self)).into_response()
    }
}

/// An identifier for an error, so that a report can name it: random, in a UUID's shape.
fn uuid_like() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[derive(Serialize)]
pub struct SentTo {
    #[serde(rename = "Email")]
    pub email: String,
    /// Kuvert's id of this recipient of the message: `GET /v3/REST/message/{id}`.
    #[serde(rename = "MessageUUID")]
    pub uuid: String,
    #[serde(rename = "MessageID")]
    pub id: String,
    #[serde(rename = "MessageHref")]
    pub href: String,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum MessageResult {
    Sent {
        #[serde(rename = "Status")]
        status: &'static str,
        #[serde(rename = "CustomID")]
        custom_id: String,
        #[serde(rename = "To")]
        to: Vec<SentTo>,
        #[serde(rename = "Cc")]
        cc: Vec<SentTo>,
        #[serde(rename = "Bcc")]
        bcc: Vec<SentTo>,
    },
    Refused {
        #[serde(rename = "Status")]
        status: &'static str,
        #[serde(rename = "Errors")]
        errors: Vec<SendError>,
    },
}

#[derive(Serialize)]
pub struct SendAnswer {
    #[serde(rename = "Messages")]
    pub messages: Vec<MessageResult>,
}

/// A message read from Mailjet's JSON.
#[derive(Debug)]
pub struct MjMessage {
    pub submission: Submission,
    /// `TemplateID`: Kuvert's id of a stored template.
    pub template: Option<(String, Map<String, Value>)>,
    pub custom_id: String,
}

pub async fn send(
    State(state): State<Arc<AppState>>,
    MjAuth(auth): MjAuth,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, SendError> {
    let request: Value = serde_json::from_slice(&body).map_err(|_| {
        SendError::new(
            "mj-0002",
            "Malformed JSON, please review the syntax and properties types.",
            &[],
        )
    })?;
    let messages = read_request(&request)?;
    let base = crate::mailgun::base_url(&headers);
    let mut results = Vec::with_capacity(messages.len());
    let mut all_sent = true;
    for message in messages {
        let result = match message {
            Err(e) => Err(e),
            Ok(m) => accept(&state, &auth, m, &base).await,
        };
        results.push(match result {
            Ok(sent) => sent,
            Err(e) => {
                all_sent = false;
                MessageResult::Refused {
                    status: "error",
                    errors: vec![e],
                }
            }
        });
    }
    let status = if all_sent {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(SendAnswer { messages: results })).into_response())
}

/// The request's messages, each read on its own (with `Globals` under it); a request that is
/// not one Mailjet would take at all is refused whole.
pub fn read_request(request: &Value) -> Result<Vec<Result<MjMessage, SendError>>, SendError> {
    let Value::Object(request) = request else {
        return Err(SendError::new(
            "mj-0002",
            "Malformed JSON, please review the syntax and properties types.",
            &[],
        ));
    };
    for (name, value) in request {
        match name.as_str() {
            "Messages" | "Globals" | "AdvanceErrorHandling" => {}
            "SandboxMode" if value == &Value::Bool(false) || value.is_null() => {}
            "SandboxMode" => {
                return Err(SendError::unsupported(
                    "SandboxMode",
                    "run a separate instance in capture mode to send without delivering",
                ));
            }
            other => {
                return Err(SendError::new(
                    "mj-0004",
                    format!("Unknown property \"{other}\""),
                    &[other],
                ));
            }
        }
    }
    let Some(Value::Array(messages)) = request.get("Messages") else {
        return Err(SendError::new(
            "mj-0003",
            "Missing mandatory property \"Messages\".",
            &["Messages"],
        ));
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err(SendError::new(
            if messages.is_empty() {
                "mj-0007"
            } else {
                "mj-0008"
            },
            format!("\"Messages\" must hold 1 to {MAX_MESSAGES} messages."),
            &["Messages"],
        ));
    }
    let globals = match request.get("Globals") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(g)) => g.clone(),
        Some(_) => {
            return Err(SendError::new(
                "mj-0004",
                "Type mismatch. Expected type \"object\".",
                &["Globals"],
            ));
        }
    };
    // Globals go into every message: what the messages hold in all is bounded, so that one
    // request cannot become fifty copies of its largest part.
    let mut budget = MAX_REQUEST_CONTENT;
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let read = match m {
            Value::Object(m) => read_message(&merged(&globals, m)),
            _ => Err(SendError::new(
                "mj-0004",
                "Type mismatch. Expected type \"object\".",
                &["Messages"],
            )),
        };
        if let Ok(m) = &read {
            let size = content_size(&m.submission);
            if size > budget {
                return Err(SendError::new(
                    "mj-0011",
                    format!(
                        "The messages hold more than {} MiB of parts and attachments in all (Globals count once a message): send fewer at once.",
                        MAX_REQUEST_CONTENT >> 20
                    ),
                    &["Messages"],
                ));
            }
            budget -= size;
        }
        out.push(read);
    }
    Ok(out)
}

/// What all the messages of one request may hold: their parts and decoded attachments.
pub const MAX_REQUEST_CONTENT: usize = 64 << 20;

fn content_size(s: &Submission) -> usize {
    match &s.body {
        Body::Parts(p) => {
            p.text.as_ref().map_or(0, String::len)
                + p.html.as_ref().map_or(0, String::len)
                + p.attachments.iter().map(|a| a.content.len()).sum::<usize>()
        }
        Body::Raw(r) => r.len(),
    }
}

/// A message's properties over the request's `Globals`: objects (`Headers`, `Variables`)
/// merged key by key, anything else the message's own when it has one.
fn merged(globals: &Map<String, Value>, message: &Map<String, Value>) -> Map<String, Value> {
    let mut out = globals.clone();
    // A null is a property not given: the Globals' value stays.
    for (k, v) in message.iter().filter(|(_, v)| !v.is_null()) {
        match (out.get_mut(k), v) {
            (Some(Value::Object(g)), Value::Object(m)) if k == "Headers" || k == "Variables" => {
                for (mk, mv) in m {
                    g.insert(mk.clone(), mv.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn string<'a>(m: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, SendError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SendError::new(
            "send-0011",
            format!("Type mismatch. Expected type \"string\" for \"{name}\"."),
            &[name],
        )),
    }
}

/// `{"Email", "Name"}` as a mailbox.
fn mailbox(v: &Value, at: &str) -> Result<Mailbox, SendError> {
    let Value::Object(o) = v else {
        return Err(SendError::new(
            "send-0011",
            format!("Type mismatch. Expected type \"object\" for \"{at}\"."),
            &[at],
        ));
    };
    for k in o.keys() {
        if k != "Email" && k != "Name" {
            return Err(SendError::new(
                "send-0011",
                format!("Unknown property \"{at}.{k}\"."),
                &[at],
            ));
        }
    }
    let field = format!("{at}.Email");
    let email = string(o, "Email")
        .map_err(|mut e| {
            e.related_to = vec![field.clone()];
            e
        })?
        .ok_or_else(|| {
            SendError::new(
                "send-0010",
                format!("Missing mandatory property \"{field}\"."),
                &[&field],
            )
        })?;
    let address = EmailAddress::parse(email).map_err(|_| {
        SendError::new(
            "send-0010",
            format!("Email address \"{email}\" is not valid."),
            &[&field],
        )
    })?;
    let name = string(o, "Name")?
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    if name
        .as_deref()
        .is_some_and(|n| n.chars().any(char::is_control))
    {
        let field = format!("{at}.Name");
        return Err(SendError::new(
            "send-0011",
            format!("\"{field}\" holds a control character."),
            &[&field],
        ));
    }
    Ok(Mailbox { name, address })
}

fn mailboxes(m: &Map<String, Value>, name: &str) -> Result<Vec<Mailbox>, SendError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| mailbox(v, &format!("{name}[{i}]")))
            .collect(),
        Some(_) => Err(SendError::new(
            "send-0011",
            format!("Type mismatch. Expected type \"array\" for \"{name}\"."),
            &[name],
        )),
    }
}

/// `TrackOpens`/`TrackClicks`: `enabled`, `disabled` or `account_default`.
fn tracking(m: &Map<String, Value>, name: &str) -> Result<Option<bool>, SendError> {
    match string(m, name)? {
        None | Some("account_default") => Ok(None),
        Some("enabled") => Ok(Some(true)),
        Some("disabled") => Ok(Some(false)),
        Some(other) => Err(SendError::new(
            "send-0011",
            format!("\"{name}\" must be enabled, disabled or account_default, not \"{other}\"."),
            &[name],
        )),
    }
}

/// One message of Mailjet's JSON, checked whole before anything is stored.
pub fn read_message(m: &Map<String, Value>) -> Result<MjMessage, SendError> {
    let mut custom_id = String::new();
    let mut template_id = None;
    let mut variables = Map::new();
    let mut template_language = None;
    let mut sub = Submission {
        from: Mailbox {
            name: None,
            address: EmailAddress::parse("unset@invalid.invalid").expect("a valid address"),
        },
        to: vec![],
        cc: vec![],
        bcc: vec![],
        reply_to: None,
        subject: String::new(),
        body: Body::Parts(Parts::default()),
        tags: vec![],
        metadata: Map::new(),
        send_at: None,
        tracking: TrackingOptions::default(),
        require_tls: false,
    };
    let mut parts = Parts::default();
    let mut has_from = false;
    for (name, value) in m.iter().filter(|(_, v)| !v.is_null()) {
        match name.as_str() {
            "From" => {
                sub.from = mailbox(value, "From")?;
                has_from = true;
            }
            "To" => sub.to = mailboxes(m, "To")?,
            "Cc" => sub.cc = mailboxes(m, "Cc")?,
            "Bcc" => sub.bcc = mailboxes(m, "Bcc")?,
            "ReplyTo" => {
                sub.reply_to = if value.is_null() {
                    None
                } else {
                    Some(mailbox(value, "ReplyTo")?)
                }
            }
            "Subject" => sub.subject = string(m, name)?.unwrap_or_default().to_owned(),
            "TextPart" => parts.text = string(m, name)?.map(str::to_owned),
            "HTMLPart" => parts.html = string(m, name)?.map(str::to_owned),
            "TemplateID" => {
                template_id = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => {
                        return Err(SendError::new(
                            "send-0011",
                            "Type mismatch. Expected type \"integer\" for \"TemplateID\".",
                            &["TemplateID"],
                        ));
                    }
                }
            }
            "TemplateLanguage" => {
                template_language = Some(value.as_bool().ok_or_else(|| {
                    SendError::new(
                        "send-0011",
                        "Type mismatch. Expected type \"boolean\" for \"TemplateLanguage\".",
                        &["TemplateLanguage"],
                    )
                })?);
            }
            "Variables" => match value {
                Value::Object(v) => variables = v.clone(),
                Value::Null => {}
                _ => {
                    return Err(SendError::new(
                        "send-0011",
                        "Type mismatch. Expected type \"object\" for \"Variables\".",
                        &["Variables"],
                    ));
                }
            },
            "Attachments" => parts.attachments = attachments(value)?,
            "Headers" => {
                let Value::Object(h) = value else {
                    return Err(SendError::new(
                        "send-0011",
                        "Type mismatch. Expected type \"object\" for \"Headers\".",
                        &["Headers"],
                    ));
                };
                for (k, v) in h {
                    let Value::String(v) = v else {
                        return Err(SendError::new(
                            "send-0011",
                            format!("Headers.{k}: a header's value is a string"),
                            &["Headers"],
                        ));
                    };
                    parts.headers.push((k.clone(), v.clone()));
                }
            }
            "CustomID" => {
                custom_id = string(m, name)?.unwrap_or_default().to_owned();
                if !custom_id.is_empty() {
                    sub.metadata
                        .insert("CustomID".into(), Value::String(custom_id.clone()));
                }
            }
            "EventPayload" => {
                if let Some(p) = string(m, name)?.filter(|p| !p.is_empty()) {
                    sub.metadata
                        .insert("EventPayload".into(), Value::String(p.to_owned()));
                }
            }
            "CustomCampaign" => {
                if let Some(c) = string(m, name)?.filter(|c| !c.is_empty()) {
                    sub.tags.push(c.to_owned());
                }
            }
            "TrackOpens" => sub.tracking.opens = tracking(m, name)?,
            "TrackClicks" => sub.tracking.clicks = tracking(m, name)?,
            "DeduplicateCampaign" if value == &Value::Bool(false) => {}
            "TemplateErrorDeliver" if value == &Value::Bool(false) => {}
            "InlinedAttachments" if value.as_array().is_some_and(Vec::is_empty) => {}
            "InlinedAttachments" => {
                return Err(SendError::unsupported(
                    "InlinedAttachments",
                    "inline images are not carried yet",
                ));
            }
            "DeduplicateCampaign" => {
                return Err(SendError::unsupported(
                    name,
                    "a campaign of Kuvert's own (/v1/campaigns) sends each contact one copy",
                ));
            }
            "TemplateErrorDeliver" => {
                return Err(SendError::unsupported(
                    name,
                    "a template that fails to render is refused when it is sent, never delivered",
                ));
            }
            "TemplateErrorReporting" | "MonitoringCategory" | "URLTags" | "Priority" | "Sender" => {
                return Err(SendError::unsupported(name, "Kuvert has no such option"));
            }
            other => {
                return Err(SendError::new(
                    "send-0011",
                    format!("Unknown property \"{other}\"."),
                    &[other],
                ));
            }
        }
    }
    if !has_from {
        return Err(SendError::new(
            "mj-0003",
            "Missing mandatory property \"From\".",
            &["From"],
        ));
    }
    if sub.to.is_empty() && sub.cc.is_empty() && sub.bcc.is_empty() {
        return Err(SendError::new(
            "mj-0003",
            "At least one recipient must be given in \"To\", \"Cc\" or \"Bcc\".",
            &["To"],
        ));
    }
    let template = match template_id {
        Some(id) => {
            if parts.text.is_some() || parts.html.is_some() {
                return Err(SendError::new(
                    "send-0011",
                    "Give \"TemplateID\" or \"TextPart\" and \"HTMLPart\", not both.",
                    &["TemplateID", "TextPart", "HTMLPart"],
                ));
            }
            if template_language == Some(false) && !variables.is_empty() {
                return Err(SendError::unsupported(
                    "TemplateLanguage",
                    "a template is always filled in (Handlebars); false is taken only without Variables",
                ));
            }
            Some((id, variables))
        }
        None if parts.text.is_none() && parts.html.is_none() => {
            return Err(SendError::new(
                "send-0003",
                "At least \"HTMLPart\", \"TextPart\" or \"TemplateID\" must be provided.",
                &["HTMLPart", "TextPart", "TemplateID"],
            ));
        }
        None => {
            if !variables.is_empty() {
                return Err(SendError::unsupported(
                    "Variables",
                    "variables fill a stored template (TemplateID); parts given inline are sent as they are",
                ));
            }
            None
        }
    };
    sub.body = Body::Parts(parts);
    Ok(MjMessage {
        submission: sub,
        template,
        custom_id,
    })
}

/// `Attachments`: `{"ContentType", "Filename", "Base64Content"}` each.
fn attachments(value: &Value) -> Result<Vec<Attachment>, SendError> {
    let Value::Array(items) = value else {
        return Err(SendError::new(
            "send-0011",
            "Type mismatch. Expected type \"array\" for \"Attachments\".",
            &["Attachments"],
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("Attachments[{i}]");
        let Value::Object(a) = item else {
            return Err(SendError::new(
                "send-0011",
                format!("Type mismatch. Expected type \"object\" for \"{at}\"."),
                &[&at],
            ));
        };
        let field = |name: &str| -> Result<&str, SendError> {
            string(a, name)?.ok_or_else(|| {
                SendError::new(
                    "send-0011",
                    format!("Missing mandatory property \"{at}.{name}\"."),
                    &[&format!("{at}.{name}")],
                )
            })
        };
        if let Some(k) = a
            .keys()
            .find(|k| !["ContentType", "Filename", "Base64Content"].contains(&k.as_str()))
        {
            return Err(SendError::new(
                "send-0011",
                format!("Unknown property \"{at}.{k}\"."),
                &[&at],
            ));
        }
        let content = base64::engine::general_purpose::STANDARD
            .decode(field("Base64Content")?)
            .map_err(|_| {
                SendError::new(
                    "send-0011",
                    format!("\"{at}.Base64Content\" is not valid base64."),
                    &[&format!("{at}.Base64Content")],
                )
            })?;
        out.push(Attachment {
            filename: field("Filename")?.to_owned(),
            content_type: field("ContentType")?.to_owned(),
            content,
        });
    }
    Ok(out)
}

/// Queues one message and says so in Mailjet's shape.
async fn accept(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    message: MjMessage,
    base: &str,
) -> Result<MessageResult, SendError> {
    let mut sub = message.submission;
    if let Some((id, variables)) = message.template {
        let name = state
            .store
            .template_name(&auth.account_id, &id)
            .await
            .map_err(|e| match e {
                kuvert_store::StoreError::NotFound(_) => SendError::new(
                    "send-0011",
                    format!("Template {id} not found."),
                    &["TemplateID"],
                ),
                other => refusal(ApiError::from(other)),
            })?;
        let rendered = crate::routes::messages::render(
            state,
            &auth.account_id,
            Some(TemplateUse {
                name,
                version: None,
                variables,
            }),
        )
        .await
        .map_err(refusal)?
        .expect("a template was named");
        if sub.subject.is_empty() {
            sub.subject = rendered.subject.clone().unwrap_or_default();
        }
        sub.tracking.unsubscribe |= rendered.asks_for_unsubscribe();
        if let Body::Parts(parts) = &mut sub.body {
            parts.text = Some(rendered.text);
            parts.html = Some(rendered.html);
        }
    }
    let kinds: Vec<(String, &'static str)> = sub
        .to
        .iter()
        .map(|m| (m.address.normalized(), "to"))
        .chain(sub.cc.iter().map(|m| (m.address.normalized(), "cc")))
        .chain(sub.bcc.iter().map(|m| (m.address.normalized(), "bcc")))
        .collect();
    let accepted = state
        .acceptor
        .accept(&auth.account_id, sub)
        .await
        .map_err(|e| refusal(ApiError::from(e)))?;
    let (mut to, mut cc, mut bcc) = (vec![], vec![], vec![]);
    for r in accepted.recipients {
        let kind = kinds
            .iter()
            .find(|(a, _)| *a == r.email.to_lowercase())
            .map_or("to", |(_, k)| *k);
        let entry = SentTo {
            href: format!("{base}/v3/REST/message/{}", r.id),
            uuid: r.id.to_string(),
            id: r.id.to_string(),
            email: r.email,
        };
        match kind {
            "cc" => cc.push(entry),
            "bcc" => bcc.push(entry),
            _ => to.push(entry),
        }
    }
    Ok(MessageResult::Sent {
        status: "success",
        custom_id: message.custom_id,
        to,
        cc,
        bcc,
    })
}

/// A field of Kuvert's submission by the name of Mailjet's property (`variables.total` is
/// `Variables.total`).
fn mailjet_field(field: &str) -> String {
    let (head, rest) = field
        .split_once('.')
        .map_or((field, None), |(h, r)| (h, Some(r)));
    let head = match head {
        "text" => "TextPart",
        "html" => "HTMLPart",
        "reply_to" => "ReplyTo",
        "from" => "From",
        "to" => "To",
        "cc" => "Cc",
        "bcc" => "Bcc",
        "subject" => "Subject",
        "headers" => "Headers",
        "attachments" => "Attachments",
        "variables" => "Variables",
        "template" => "TemplateID",
        // The campaign is the message's one tag.
        h if h.starts_with("tags[") => "CustomCampaign",
        h if h.starts_with("headers[") => "Headers",
        other => other,
    };
    match rest {
        Some(r) => format!("{head}.{r}"),
        None => head.to_owned(),
    }
}

/// Kuvert's refusal of a message as Mailjet's error entry.
fn refusal(e: ApiError) -> SendError {
    let related: Vec<String> = e.field.as_deref().map(mailjet_field).into_iter().collect();
    // The sender not being one of the account's (verified) domains is Mailjet's
    // "not an authorized sender" (403); a spent quota has no Mailjet code of its own.
    let sender = e.field.as_deref() == Some("from");
    let (code, status) = match e.status {
        _ if sender => ("send-0008", 403),
        StatusCode::TOO_MANY_REQUESTS => ("kuvert-quota", 429),
        StatusCode::FORBIDDEN => ("send-0006", 403),
        s if s.is_server_error() => ("kuvert-internal", s.as_u16()),
        _ => ("send-0011", 400),
    };
    let mut out = SendError::with_status(status, code, e.message, &[]);
    out.related_to = related;
    out
}
