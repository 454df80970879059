//! Mailjet's `message`, `messagehistory` and `statcounters` over Kuvert's recipients, events
//! and rolled-up counters. A Mailjet message is one recipient's copy: its id is the Kuvert
//! recipient id the send answered with.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use kuvert_core::Timestamp;
use kuvert_core::event::EventType;
use kuvert_store::{EventFilter, StatsQuery};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Listed, MjError, MjFull, MjQuery, one};
use crate::AppState;
use crate::routes::stats::{Resolution, summarize};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageOut {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "UUID")]
    pub uuid: String,
    pub arrived_at: String,
    pub attempt_count: i64,
    pub contact_alt: String,
    pub message_size: i64,
    pub subject: String,
    /// Mailjet's word for where the copy is: `queued`, `deferred`, `sent`, `bounce`,
    /// `blocked`.
    pub status: &'static str,
    pub state_permanent: bool,
}

/// A time filter (`FromTS`, `ToTS`): seconds since 1970 or RFC 3339.
fn time_filter(q: &MjQuery, name: &str) -> Result<Option<Timestamp>, MjError> {
    q.get(name)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .ok()
                .map(|s| Timestamp(s.saturating_mul(1000)))
                .or_else(|| Timestamp::parse_rfc3339(v))
                .ok_or_else(|| {
                    MjError::bad_request(format!("{name}: seconds since 1970 or RFC 3339"))
                })
        })
        .transpose()
}

/// A copy in Mailjet's shape, from its recipient and its message's summary.
fn message_out(r: kuvert_store::RecipientView, summary: &kuvert_store::MessageView) -> MessageOut {
    use kuvert_core::event::RecipientStatus as S;
    let status = match r.status {
        S::Queued | S::Held => "queued",
        S::Deferred => "deferred",
        S::Delivered => "sent",
        S::Bounced | S::Failed => "bounce",
        S::Dropped => "blocked",
    };
    MessageOut {
        id: r.id.to_string(),
        uuid: r.id.to_string(),
        arrived_at: super::time(summary.created_at),
        attempt_count: r.attempts,
        contact_alt: r.email,
        message_size: summary.size,
        subject: summary.subject.clone(),
        state_permanent: !matches!(r.status, S::Queued | S::Held | S::Deferred),
        status,
    }
}

/// A recipient's copy by id.
pub async fn get(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<Json<Listed<MessageOut>>, MjError> {
    let (message_id, r) = state.store.recipient(&auth.account_id, &id).await?;
    let summary = state
        .store
        .message_summaries(&auth.account_id, std::slice::from_ref(&message_id))
        .await?
        .remove(&message_id)
        .ok_or_else(MjError::not_found)?;
    Ok(one(message_out(r, &summary)))
}

/// `GET /v3/REST/message`: the account's copies, newest first, found through their
/// `accepted` events (so a copy whose events retention removed is no longer listed);
/// `ContactAlt` (an address), `FromTS` and `ToTS` filter, `Limit` and `Offset` page.
pub async fn list(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    q: MjQuery,
) -> Result<Json<Listed<MessageOut>>, MjError> {
    q.only(&[
        "contactalt",
        "fromts",
        "tots",
        "showsubject",
        "showcontactalt",
    ])?;
    let paging = q.paging()?;
    if paging.count_only {
        return Err(MjError::unsupported(
            "countOnly",
            "messages are paged, not counted",
        ));
    }
    let at = |name: &str| time_filter(&q, name);
    let page = state
        .store
        .list_events(
            &auth.account_id,
            &EventFilter {
                types: vec![EventType::Accepted],
                recipient: q.get("contactalt").map(str::to_owned),
                from: at("fromts")?,
                to: at("tots")?,
                limit: paging.offset + paging.limit,
                ..EventFilter::default()
            },
        )
        .await?;
    let copies: Vec<_> = page
        .items
        .iter()
        .skip(paging.offset as usize)
        .filter_map(|e| e.recipient_id.clone())
        .collect();
    let mut recipients = state.store.recipients(&auth.account_id, &copies).await?;
    let message_ids: Vec<_> = recipients.values().map(|(m, _)| m.clone()).collect();
    let summaries = state
        .store
        .message_summaries(&auth.account_id, &message_ids)
        .await?;
    let data: Vec<MessageOut> = copies
        .iter()
        .filter_map(|id| {
            let (m, r) = recipients.remove(id)?;
            Some(message_out(r, summaries.get(&m)?))
        })
        .collect();
    let n = data.len();
    Ok(Json(Listed {
        count: n,
        data,
        total: n,
    }))
}

#[derive(Serialize)]
pub struct HistoryOut {
    /// Seconds since 1970.
    #[serde(rename = "EventAt")]
    pub event_at: i64,
    #[serde(rename = "EventType")]
    pub event_type: &'static str,
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "Useragent")]
    pub user_agent: String,
    #[serde(rename = "Comment")]
    pub comment: String,
}

/// Mailjet's name of a Kuvert event; `None` for those Mailjet does not show in a history.
pub fn mailjet_event(t: EventType) -> Option<&'static str> {
    Some(match t {
        EventType::Delivered => "sent",
        EventType::Opened => "opened",
        EventType::Clicked => "clicked",
        EventType::Bounced | EventType::Failed => "bounced",
        EventType::Dropped => "blocked",
        EventType::Complained => "spam",
        EventType::Unsubscribed => "unsub",
        EventType::Deferred => "deferred",
        _ => return None,
    })
}

/// The events a history shows: those Mailjet has a name for.
const SHOWN: &[EventType] = &[
    EventType::Delivered,
    EventType::Deferred,
    EventType::Bounced,
    EventType::Failed,
    EventType::Dropped,
    EventType::Opened,
    EventType::Clicked,
    EventType::Unsubscribed,
    EventType::Complained,
];

/// `messagehistory/{id}`: the copy's events, oldest first, `Limit` and `Offset` applied.
pub async fn history(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
    q: MjQuery,
) -> Result<Json<Listed<HistoryOut>>, MjError> {
    q.only(&[])?;
    let paging = q.paging()?;
    let (message_id, _) = state.store.recipient(&auth.account_id, &id).await?;
    let page = state
        .store
        .list_events(
            &auth.account_id,
            &EventFilter {
                message_id: Some(message_id.to_string()),
                recipient_id: Some(id),
                types: SHOWN.to_vec(),
                oldest_first: true,
                limit: paging.offset + paging.limit,
                ..EventFilter::default()
            },
        )
        .await?;
    let all: Vec<HistoryOut> = page
        .items
        .into_iter()
        .filter_map(|e| {
            let event_type = mailjet_event(e.event_type)?;
            let data = e.data();
            let detail = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
            Some(HistoryOut {
                event_at: e.created_at.millis() / 1000,
                event_type,
                state: detail("reply").unwrap_or_default(),
                user_agent: String::new(),
                comment: detail("url").unwrap_or_default(),
            })
        })
        .collect();
    Ok(paging.page(all))
}

/// `statcounters` with `CounterSource=APIKey` (the account) and `CounterTiming=Event`: the
/// rolled-up counters `/v1/stats` reads, over the whole time kept (`Lifetime`) or a point a
/// `Day` or `Hour` between `FromTS` and `ToTS`.
pub async fn statcounters(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    q: MjQuery,
) -> Result<Json<Listed<Map<String, Value>>>, MjError> {
    q.only(&[
        "countersource",
        "countertiming",
        "counterresolution",
        "fromts",
        "tots",
    ])?;
    match q.get("countersource") {
        Some(s) if s.eq_ignore_ascii_case("apikey") => {}
        Some(s) => {
            return Err(MjError::unsupported(
                &format!("CounterSource={s}"),
                "counters are kept for the whole account (APIKey)",
            ));
        }
        None => return Err(MjError::bad_request("CounterSource is required")),
    }
    match q.get("countertiming") {
        Some(t) if t.eq_ignore_ascii_case("event") => {}
        Some(t) => {
            return Err(MjError::unsupported(
                &format!("CounterTiming={t}"),
                "counters are kept by the time of each event (Event)",
            ));
        }
        None => return Err(MjError::bad_request("CounterTiming is required")),
    }
    let now = state.store.clock().now();
    let at = |name: &str| time_filter(&q, name);
    let source = auth.account_id.to_string();
    let resolution = q
        .get("counterresolution")
        .ok_or_else(|| MjError::bad_request("CounterResolution is required"))?
        .to_ascii_lowercase();
    let points: Vec<(Option<Timestamp>, Map<String, Value>)> = if resolution == "lifetime" {
        let hourly = state
            .store
            .stats(
                &auth.account_id,
                &StatsQuery {
                    from: Timestamp(0),
                    to: now,
                    domain_id: None,
                    tag: None,
                },
            )
            .await?;
        let mut totals: Map<String, Value> = Map::new();
        for (_, metric, n) in hourly {
            let sum = totals.get(&metric).and_then(Value::as_i64).unwrap_or(0) + n;
            totals.insert(metric, Value::from(sum));
        }
        vec![(None, totals)]
    } else {
        let resolution = Resolution::parse(match resolution.as_str() {
            "day" => "day",
            "hour" => "hour",
            other => {
                return Err(MjError::unsupported(
                    &format!("CounterResolution={other}"),
                    "Lifetime, Day and Hour are kept",
                ));
            }
        })?;
        let to = at("tots")?.unwrap_or(now);
        let from = at("fromts")?
            .ok_or_else(|| MjError::bad_request("FromTS is required with Day or Hour"))?;
        let first = resolution.first(from, to)?;
        let hourly = state
            .store
            .stats(
                &auth.account_id,
                &StatsQuery {
                    from: first,
                    to,
                    domain_id: None,
                    tag: None,
                },
            )
            .await?;
        summarize(hourly, first, to, resolution)
            .series
            .into_iter()
            .map(|p| {
                let t = p
                    .get("time")
                    .and_then(Value::as_str)
                    .and_then(Timestamp::parse_rfc3339);
                (t, p)
            })
            .collect()
    };
    let all: Vec<Map<String, Value>> = points
        .into_iter()
        .map(|(t, counts)| counters(&source, t, &counts))
        .collect();
    let n = all.len();
    Ok(Json(Listed {
        count: n,
        data: all,
        total: n,
    }))
}

/// Kuvert's metrics as Mailjet's counters.
fn counters(source: &str, t: Option<Timestamp>, counts: &Map<String, Value>) -> Map<String, Value> {
    let n = |name: &str| counts.get(name).and_then(Value::as_i64).unwrap_or(0);
    let mut out = Map::new();
    let mut put = |k: &str, v: i64| {
        out.insert(k.to_owned(), Value::from(v));
    };
    put("MessageSentCount", n("delivered"));
    put("MessageQueuedCount", n("accepted"));
    put("MessageDeferredCount", n("deferred"));
    put("MessageHardBouncedCount", n("bounced_hard"));
    put("MessageSoftBouncedCount", n("bounced_soft"));
    put("MessageBlockedCount", n("dropped") + n("failed"));
    put("MessageOpenedCount", n("opened_unique"));
    put("MessageClickedCount", n("clicked_unique"));
    put("MessageSpamCount", n("complained"));
    put("MessageUnsubscribedCount", n("unsubscribed"));
    put("EventOpenedCount", n("opened"));
    put("EventClickedCount", n("clicked"));
    put("EventSpamCount", n("complained"));
    put("EventUnsubscribedCount", n("unsubscribed"));
    put("Total", n("accepted"));
    out.insert("SourceID".into(), Value::from(source));
    out.insert(
        "Timeslice".into(),
        Value::from(t.map(super::time).unwrap_or_default()),
    );
    out
}
