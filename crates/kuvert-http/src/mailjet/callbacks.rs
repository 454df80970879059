//! `/v3/REST/eventcallbackurl`: Mailjet's event callbacks onto Kuvert's webhook endpoints.
//! An endpoint registered here gets one Mailjet event type in Mailjet's shape
//! (`kuvert_webhooks::mailjet`), version 1 as an object a request, version 2 a second's events
//! in one array;
//! credentials in its URL are sent as Basic authentication, and Kuvert's signature rides in
//! `X-Kuvert-*` header fields a Mailjet receiver can ignore.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::webhook::WebhookFormat;
use kuvert_store::{NewWebhook, Webhook};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Listed, MjError, MjFull, MjQuery, one};
use crate::AppState;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallbackOut {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "APIKeyID")]
    pub api_key_id: String,
    pub event_type: &'static str,
    pub is_backup: bool,
    pub status: &'static str,
    pub url: String,
    pub version: u8,
}

fn is_mailjet(w: &Webhook) -> bool {
    matches!(
        w.format,
        WebhookFormat::MailjetV1 | WebhookFormat::MailjetV2
    )
}

fn out(w: &Webhook) -> CallbackOut {
    CallbackOut {
        id: w.id.to_string(),
        api_key_id: String::new(),
        event_type: w
            .events
            .first()
            .and_then(|t| kuvert_webhooks::mailjet::event_name(*t))
            .unwrap_or(""),
        is_backup: false,
        status: "alive",
        url: w.url.clone(),
        version: if w.format == WebhookFormat::MailjetV2 {
            2
        } else {
            1
        },
    }
}

async fn callbacks(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
) -> Result<Vec<Webhook>, MjError> {
    Ok(state
        .store
        .list_webhooks(&auth.account_id)
        .await?
        .into_iter()
        .filter(is_mailjet)
        .collect())
}

async fn by_id(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    id: &str,
) -> Result<Webhook, MjError> {
    let w = state.store.webhook(&auth.account_id, id).await?;
    if !is_mailjet(&w) {
        return Err(MjError::not_found());
    }
    Ok(w)
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    q: MjQuery,
) -> Result<Json<Listed<CallbackOut>>, MjError> {
    q.only(&[])?;
    let paging = q.paging()?;
    Ok(paging.page(callbacks(&state, &auth).await?.iter().map(out).collect()))
}

fn body(bytes: &[u8]) -> Result<Map<String, Value>, MjError> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(MjError::bad_request("the body is not a JSON object"));
    };
    for (k, v) in &m {
        match k.as_str() {
            "EventType" | "Url" | "Version" => {}
            "IsBackup" if v == &Value::Bool(false) => {}
            "Status" if v == "alive" => {}
            "IsBackup" => {
                return Err(MjError::unsupported(
                    "IsBackup",
                    "an endpoint that fails is tried again with backoff; there is no backup URL",
                ));
            }
            "Status" => {
                return Err(MjError::unsupported(
                    "Status",
                    "an endpoint is alive while registered; delete it to stop it",
                ));
            }
            other => {
                return Err(MjError::unsupported(
                    other,
                    "not a property of an event callback",
                ));
            }
        }
    }
    Ok(m)
}

async fn url(state: &AppState, m: &Map<String, Value>) -> Result<String, MjError> {
    let url = m
        .get("Url")
        .and_then(Value::as_str)
        .ok_or_else(|| MjError::bad_request("Url is required"))?
        .trim()
        .to_owned();
    kuvert_webhooks::check_url(&url, &state.dns, state.allow_private_webhooks)
        .await
        .map_err(|e| MjError::bad_request(format!("Url: {e}")))?;
    Ok(url)
}

/// `POST /v3/REST/eventcallbackurl`: one URL an event type, as at Mailjet.
pub async fn create(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<CallbackOut>>), MjError> {
    let m = body(&bytes)?;
    let name = match m.get("EventType") {
        None => "sent".to_owned(),
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(_) => return Err(MjError::bad_request("EventType: a string is expected")),
    };
    let types = kuvert_webhooks::mailjet::event_types(&name).ok_or_else(|| {
        MjError::bad_request("EventType: one of sent, open, click, bounce, blocked, spam, unsub")
    })?;
    let format = match m.get("Version").map(Value::as_u64) {
        None | Some(Some(1)) => WebhookFormat::MailjetV1,
        Some(Some(2)) => WebhookFormat::MailjetV2,
        Some(_) => return Err(MjError::bad_request("Version: the number 1 or 2")),
    };
    let url = url(&state, &m).await?;
    if callbacks(&state, &auth)
        .await?
        .iter()
        .any(|w| out(w).event_type == name)
    {
        return Err(MjError::bad_request(format!(
            "MJ18 An EventCallbackUrl resource with value \"{name}\" for EventType already exists."
        )));
    }
    let w = state
        .store
        .register_webhook(
            &auth.account_id,
            NewWebhook {
                url: &url,
                events: types,
                signing_key: &kuvert_webhooks::new_signing_key(),
                format,
                domain_id: None,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, one(out(&w))))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<Json<Listed<CallbackOut>>, MjError> {
    Ok(one(out(&by_id(&state, &auth, &id).await?)))
}

/// `PUT /v3/REST/eventcallbackurl/{id}`: a new URL (the event type and version stay).
pub async fn update(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Listed<CallbackOut>>, MjError> {
    let current = by_id(&state, &auth, &id).await?;
    let m = body(&bytes)?;
    let before = out(&current);
    if m.get("EventType").is_some_and(|t| {
        !t.as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(before.event_type))
    }) || m
        .get("Version")
        .is_some_and(|v| v.as_u64() != Some(u64::from(before.version)))
    {
        return Err(MjError::unsupported(
            "EventType and Version",
            "they stay as registered: delete the callback and add another",
        ));
    }
    let url = url(&state, &m).await?;
    let w = state
        .store
        .update_webhook(&auth.account_id, &id, Some(&url), None)
        .await?;
    Ok(one(out(&w)))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<StatusCode, MjError> {
    by_id(&state, &auth, &id).await?;
    state.store.delete_webhook(&auth.account_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
