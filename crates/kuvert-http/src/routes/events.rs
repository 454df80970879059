use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kuvert_core::event::EventType;
use kuvert_store::EventFilter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, FullAccess};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Comma-separated event types, such as `accepted,dropped`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub recipient: Option<String>,
    pub message_id: Option<String>,
    pub tag: Option<String>,
    /// RFC 3339; events at or after.
    pub from: Option<String>,
    /// RFC 3339; events before.
    pub to: Option<String>,
    /// 1 to 300; default 100.
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    pub message_id: Option<String>,
    pub recipient_id: Option<String>,
    pub recipient: Option<String>,
    pub tags: Vec<String>,
    /// Details: the reason of a drop or bounce, the server's reply, ...
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    /// Newest first.
    pub items: Vec<EventOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next: Option<String>,
}

/// The account's events, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventList), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<EventList>, ApiError> {
    let types = match &q.event_type {
        None => vec![],
        Some(list) => list
            .split(',')
            .map(|t| {
                t.trim()
                    .parse::<EventType>()
                    .map_err(|e| ApiError::invalid("type", e))
            })
            .collect::<Result<_, _>>()?,
    };
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "cursor is not one this server gave out"))
        })
        .transpose()?;
    let filter = EventFilter {
        types,
        recipient: q.recipient,
        message_id: q.message_id,
        tag: q.tag,
        from: super::time_param("from", q.from.as_deref())?,
        to: super::time_param("to", q.to.as_deref())?,
        before,
        limit: super::limit(q.limit)?,
    };
    let page = state.store.list_events(&auth.account_id, &filter).await?;
    Ok(Json(EventList {
        items: page
            .items
            .into_iter()
            .map(|e| EventOut {
                id: e.seq.to_string(),
                event_type: e.event_type.to_string(),
                timestamp: e.created_at.to_rfc3339(),
                message_id: e.message_id.map(|m| m.to_string()),
                recipient_id: e.recipient_id.map(|r| r.to_string()),
                recipient: e.recipient,
                tags: e.tags,
                data: e.data,
            })
            .collect(),
        next: page.next.map(|n| n.to_string()),
    }))
}
