use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kuvert_core::event::{EventDetails, EventType};
use kuvert_store::EventFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ApiQuery, FullAccess};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Comma-separated event types, such as `accepted,dropped`.
    #[serde(rename = "type")]
    #[param(
        pattern = "^(accepted|delivered|deferred|bounced|failed|dropped|opened|clicked|unsubscribed|complained)(,(accepted|delivered|deferred|bounced|failed|dropped|opened|clicked|unsubscribed|complained))*$"
    )]
    pub event_type: Option<String>,
    #[param(min_length = 1)]
    pub recipient: Option<String>,
    #[param(min_length = 1)]
    pub message_id: Option<String>,
    #[param(min_length = 1)]
    pub tag: Option<String>,
    /// RFC 3339; events at or after.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339; events before.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// 1 to 300; default 100.
    #[param(minimum = 1, maximum = 300)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub timestamp: String,
    pub message_id: Option<String>,
    pub recipient_id: Option<String>,
    pub recipient: Option<String>,
    pub tags: Vec<String>,
    /// What the event tells beyond its type: the one of these that belongs to the type.
    pub data: EventDetails,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    /// Newest first.
    pub items: Vec<EventOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next: Option<String>,
}

/// `accepted,dropped` as event types.
fn types(list: Option<&str>) -> Result<Vec<EventType>, ApiError> {
    match list {
        None => Ok(vec![]),
        Some(list) => list
            .split(',')
            .map(|t| {
                t.trim()
                    .parse::<EventType>()
                    .map_err(|e| ApiError::invalid("type", e))
            })
            .collect(),
    }
}

fn event_out(e: kuvert_store::EventRecord) -> EventOut {
    EventOut {
        id: e.seq.to_string(),
        event_type: e.event_type,
        timestamp: e.created_at.to_rfc3339(),
        message_id: e.message_id.map(|m| m.to_string()),
        recipient_id: e.recipient_id.map(|r| r.to_string()),
        recipient: e.recipient,
        tags: e.tags,
        data: e.details,
    }
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
    let types = types(q.event_type.as_deref())?;
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
        recipient_id: None,
        tag: q.tag,
        domain: None,
        from: super::time_param("from", q.from.as_deref())?,
        to: super::time_param("to", q.to.as_deref())?,
        before,
        after: None,
        oldest_first: false,
        limit: super::limit(kuvert_core::page::LISTS, q.limit)?,
    };
    let page = state.store.list_events(&auth.account_id, &filter).await?;
    Ok(Json(EventList {
        items: page.items.into_iter().map(event_out).collect(),
        next: page.next.map(|n| n.to_string()),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated event types.
    #[param(min_length = 1)]
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    #[param(min_length = 1)]
    pub recipient: Option<String>,
    #[param(min_length = 1)]
    pub message_id: Option<String>,
    #[param(min_length = 1)]
    pub tag: Option<String>,
    /// Start after this event id (resume after a dropped connection); default: from now on.
    pub after: Option<i64>,
}

/// How often the live log looks for new events.
/// Events of other nodes (and anything the wake-up missed) are found by this slow poll; this
/// process's own commits wake the streams at once.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// After a wake-up, how long a stream lets further commits gather before it reads.
const STREAM_GATHER: std::time::Duration = std::time::Duration::from_millis(250);

/// Live logs an account may hold open at once.
pub const MAX_STREAMS_PER_ACCOUNT: u32 = 5;

/// One open live log of an account; its slot is given back when the stream is dropped.
struct StreamSlot {
    state: Arc<AppState>,
    account: kuvert_core::id::AccountId,
}

impl StreamSlot {
    fn take(state: &Arc<AppState>, account: &kuvert_core::id::AccountId) -> Option<Self> {
        let mut open = state.streams.lock().expect("streams");
        let n = open.entry(account.clone()).or_insert(0);
        if *n >= MAX_STREAMS_PER_ACCOUNT {
            return None;
        }
        *n += 1;
        Some(Self {
            state: state.clone(),
            account: account.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.state.streams.lock().expect("streams");
        if let Some(n) = open.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.account);
            }
        }
    }
}

/// The account's events as they happen, as server-sent events (`event:` the type, `id:` the
/// event id, `data:` the event as in `GET /v1/events`).
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", params(StreamQuery),
    responses((status = 200, content_type = "text/event-stream"), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let slot = StreamSlot::take(&state, &auth.account_id).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyStreams,
            format!("an account may hold {MAX_STREAMS_PER_ACCOUNT} live logs open at once"),
        )
    })?;
    let after = match q.after {
        Some(a) => a,
        None => state.store.latest_event_seq(&auth.account_id).await?,
    };
    let filter = EventFilter {
        types: types(q.event_type.as_deref())?,
        recipient: q.recipient,
        message_id: q.message_id,
        tag: q.tag,
        after: Some(after),
        oldest_first: true,
        limit: kuvert_core::page::LISTS.max,
        ..Default::default()
    };
    let account = auth.account_id;
    let stop = state.stopping.subscribe();
    let mut commits = state.store.event_commits();
    // What was committed before this point is read by the first query below.
    commits.mark_unchanged();
    let pending: std::collections::VecDeque<kuvert_store::EventRecord> = Default::default();
    let events = futures_util::stream::unfold(
        (filter, pending, stop, commits, slot, true),
        move |(mut filter, mut pending, mut stop, mut commits, slot, mut first)| {
            let (state, account) = (state.clone(), account.clone());
            async move {
                loop {
                    if let Some(e) = pending.pop_front() {
                        filter.after = Some(e.seq);
                        let id = e.seq.to_string();
                        let kind = e.event_type.to_string();
                        let data = serde_json::to_string(&event_out(e)).unwrap_or_default();
                        let event = Event::default().id(id).event(kind).data(data);
                        let next = (filter, pending, stop, commits, slot, first);
                        return Some((Ok::<_, std::convert::Infallible>(event), next));
                    }
                    if *stop.borrow() {
                        return None;
                    }
                    if !first {
                        tokio::select! {
                            _ = tokio::time::sleep(STREAM_POLL) => {}
                            _ = commits.changed() => {
                                // Under load commits come in a stream: one query serves a
                                // quarter of a second of them.
                                tokio::time::sleep(STREAM_GATHER).await;
                                commits.mark_unchanged();
                            }
                            _ = stop.changed() => return None,
                        }
                    }
                    first = false;
                    match state.store.list_events(&account, &filter).await {
                        Ok(page) => pending.extend(page.items),
                        // The store is closing: end the stream; the client resumes with `after`.
                        Err(_) => return None,
                    }
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
