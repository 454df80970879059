//! Webhook endpoints of the account, and what each has been sent.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::event::EventType;
use kuvert_core::webhook::DeliveryState;
use kuvert_store::{Delivery, Webhook};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, FullAccess};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// http or https; private addresses only if the operator allows them.
    pub url: String,
    /// Event types to send; empty or absent: all.
    #[serde(default)]
    #[schema(value_type = Vec<EventName>)]
    pub events: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<EventName>>)]
    pub events: Option<Vec<String>>,
}

/// An event type.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the handlers parse the names into `EventType`
pub enum EventName {
    Accepted,
    Delivered,
    Deferred,
    Bounced,
    Failed,
    Dropped,
    Opened,
    Clicked,
    Unsubscribed,
    Complained,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    /// The event types sent, in the order of the types; empty: every event.
    pub events: Vec<EventType>,
    /// Verifies requests: `signature == hex(HMAC-SHA256(signing_key, timestamp + token))`.
    pub signing_key: String,
    /// `kuvert`; `mailgun` for an endpoint registered through Mailgun's API (it gets
    /// Mailgun's body, and only the events of its domain's messages); `mailjet_v1` or
    /// `mailjet_v2` for one registered through Mailjet's `eventcallbackurl`.
    #[schema(pattern = "^(kuvert|mailgun|mailjet_v1|mailjet_v2)$")]
    pub format: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Webhook> for WebhookOut {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url,
            events: w.events,
            signing_key: w.signing_key,
            format: w.format.as_str().to_owned(),
            created_at: w.created_at.to_rfc3339(),
            updated_at: w.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub event_id: String,
    pub event: EventType,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub done_at: Option<String>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            event_id: d.event_seq.to_string(),
            event: d.event_type,
            state: d.state,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            next_attempt_at: d.done_at.is_none().then(|| d.next_attempt_at.to_rfc3339()),
            done_at: d.done_at.map(|t| t.to_rfc3339()),
        }
    }
}

fn event_types(list: &[String]) -> Result<Vec<EventType>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            e.parse()
                .map_err(|m| ApiError::invalid(format!("events[{i}]"), m))
        })
        .collect()
}

async fn checked_url(state: &AppState, url: &str) -> Result<(), ApiError> {
    kuvert_webhooks::check_url(url, &state.dns, state.allow_private_webhooks)
        .await
        .map(|_| ())
        .map_err(|e| ApiError::invalid("url", e.to_string()))
}

/// Adds an endpoint; its signing key is in the answer (and in the list later).
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookIn,
    responses((status = 201, body = WebhookOut), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<WebhookIn>,
) -> Result<(StatusCode, Json<WebhookOut>), ApiError> {
    let events = event_types(&req.events)?;
    checked_url(&state, &req.url).await?;
    let w = state
        .store
        .create_webhook(
            &auth.account_id,
            &req.url,
            &events,
            &kuvert_webhooks::new_signing_key(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(w.into())))
}

/// The account's endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", responses((status = 200, body = Vec<WebhookOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<WebhookOut>>, ApiError> {
    let list = state.store.list_webhooks(&auth.account_id).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<Json<WebhookOut>, ApiError> {
    Ok(Json(
        state.store.webhook(&auth.account_id, &id).await?.into(),
    ))
}

/// Changes an endpoint's URL or event types.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = WebhookPatch,
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<WebhookPatch>,
) -> Result<Json<WebhookOut>, ApiError> {
    let events = req.events.as_deref().map(event_types).transpose()?;
    if let Some(url) = &req.url {
        checked_url(&state, url).await?;
    }
    let w = state
        .store
        .update_webhook(&auth.account_id, &id, req.url.as_deref(), events.as_deref())
        .await?;
    Ok(Json(w.into()))
}

/// Removes an endpoint and what it had not received yet.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_webhook(&auth.account_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the endpoint was sent, newest first: each event's attempts and state.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Vec<DeliveryOut>), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<Json<Vec<DeliveryOut>>, ApiError> {
    let list = state
        .store
        .webhook_deliveries(&auth.account_id, &id, 300)
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}
