//! `GET /v3/{domain}/events`: Kuvert's events in Mailgun's shape, with `paging` URLs both
//! official libraries follow. mailgun.js requests the last path segment of a paging URL
//! (`/events/{token}`); Mailgun's Python library keeps its first URL and takes only the
//! query of `paging.next`. So each URL is `.../events/{token}?page={token}`, and the token
//! holds the whole query (filters, range, direction, limit, position): it wins over any
//! other parameter sent with it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kuvert_core::Timestamp;
use kuvert_core::event::EventType;
use kuvert_core::id::MessageId;
use kuvert_store::{EventFilter, MessageView};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::form::Form;
use super::{MgError, MgFull};
use crate::AppState;

/// Mailgun's largest page.
pub const MAX_LIMIT: u32 = 300;
/// The longest page token and filter value taken.
const MAX_TOKEN: usize = 4096;
const MAX_VALUE: usize = 512;
const DEFAULT_LIMIT: u32 = 100;

/// A query of the events, as a page token carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsQuery {
    /// Kuvert's event types the `event` and `severity` filters leave; `None` is all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<EventType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The range in milliseconds, from (at or after) and to (before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    #[serde(default)]
    pub ascending: bool,
    pub limit: u32,
    /// The last event of the page before (its position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
}

impl EventsQuery {
    /// The query as a page token: base64url of its JSON, safe in a path and a query.
    pub fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The query a token holds; a token this server did not make is a 400.
    pub fn from_token(token: &str) -> Result<Self, MgError> {
        // A token holds what parameters give: at most every event type once and values of
        // the sizes filters take. Anything else was not made here.
        let plain = |v: &Option<String>| {
            v.as_deref()
                .is_none_or(|v| v.len() <= MAX_VALUE && !v.contains(' '))
        };
        (token.len() <= MAX_TOKEN)
            .then(|| URL_SAFE_NO_PAD.decode(token).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice::<Self>(&b).ok())
            .filter(|q| {
                (1..=MAX_LIMIT).contains(&q.limit)
                    && q.types.as_ref().is_none_or(|t| {
                        let mut u = t.clone();
                        u.sort_unstable();
                        u.dedup();
                        u.len() == t.len()
                    })
                    && plain(&q.recipient)
                    && plain(&q.message_id)
                    && plain(&q.tag)
            })
            .ok_or_else(|| MgError::bad_request("the page token is not one this server gave out"))
    }

    /// The query of Mailgun's parameters.
    pub fn from_params(params: &Form) -> Result<Self, MgError> {
        let mut q = Self {
            limit: DEFAULT_LIMIT,
            ..Self::default()
        };
        let begin = params
            .first("begin")
            .map(|v| date("begin", v))
            .transpose()?;
        let end = params.first("end").map(|v| date("end", v)).transpose()?;
        let ascending = params
            .first("ascending")
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(true),
                "no" | "false" => Ok(false),
                _ => Err(MgError::bad_request(format!(
                    "ascending: {v:?} is not yes or no"
                ))),
            })
            .transpose()?;
        // As Mailgun: an end before the beginning means newest first; a beginning alone
        // means oldest first from it.
        q.ascending = match (ascending, begin, end) {
            (Some(a), ..) => a,
            (None, Some(b), Some(e)) => b <= e,
            (None, Some(_), None) => true,
            (None, None, _) => false,
        };
        let (lo, hi) = match (begin, end) {
            (Some(b), Some(e)) => (Some(b.min(e)), Some(b.max(e))),
            (b, e) if q.ascending => (b, e),
            (b, e) => (e, b),
        };
        q.from = lo.map(Timestamp::millis);
        // Mailgun's range includes its end.
        q.to = hi.map(|t| t.millis().saturating_add(1));
        q.limit = super::limit(params, DEFAULT_LIMIT, MAX_LIMIT)?;
        let events = params.first("event").map(event_names).transpose()?;
        let severity = params.first("severity").map(severity).transpose()?;
        q.types = match (events, severity) {
            (None, None) => None,
            (Some(e), None) => Some(e),
            (None, Some(s)) => Some(s),
            (Some(e), Some(s)) => Some(e.into_iter().filter(|t| s.contains(t)).collect()),
        };
        q.recipient = params
            .first("recipient")
            .map(plain("recipient"))
            .transpose()?;
        q.tag = params.first("tags").map(plain("tags")).transpose()?;
        q.message_id = params
            .first("message-id")
            .map(|v| {
                // Mailgun's id is `ID@domain`, with or without brackets: Kuvert's id is ID.
                let v = plain("message-id")(v)?;
                let v = v.trim_start_matches('<').trim_end_matches('>');
                Ok::<_, MgError>(v.split('@').next().unwrap_or_default().to_owned())
            })
            .transpose()?;
        for unsupported in [
            "from",
            "subject",
            "to",
            "list",
            "attachment",
            "size",
            "recipients",
        ] {
            if params.first(unsupported).is_some() {
                return Err(MgError::unsupported(
                    unsupported,
                    "events are filtered by event, severity, recipient, message-id and tags",
                ));
            }
        }
        Ok(q)
    }
}

/// A single value: the filter expressions of Mailgun (`a OR b`, `NOT`, quotes) are not read.
fn plain(name: &'static str) -> impl Fn(&str) -> Result<String, MgError> {
    move |v: &str| {
        let v = v.trim();
        if v.len() > MAX_VALUE {
            return Err(MgError::bad_request(format!(
                "{name}: at most {MAX_VALUE} bytes"
            )));
        }
        if v.contains(' ') || v.starts_with('"') || v.starts_with('(') {
            return Err(MgError::unsupported(
                name,
                "a filter is one value; expressions (OR, NOT, quotes) are read for event only",
            ));
        }
        Ok(v.to_owned())
    }
}

/// `delivered`, `failed OR opened`, or mailgun.js's `failed,opened`.
fn event_names(v: &str) -> Result<Vec<EventType>, MgError> {
    let mut out = Vec::new();
    for name in v
        .split(" OR ")
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        out.extend_from_slice(match name.to_ascii_lowercase().as_str() {
            "accepted" => &[EventType::Accepted],
            "delivered" => &[EventType::Delivered],
            "failed" => &[
                EventType::Deferred,
                EventType::Bounced,
                EventType::Failed,
                EventType::Dropped,
            ],
            "opened" => &[EventType::Opened],
            "clicked" => &[EventType::Clicked],
            "unsubscribed" => &[EventType::Unsubscribed],
            "complained" => &[EventType::Complained],
            // Kuvert refuses such a send at the API; none is stored.
            "rejected" | "stored" => &[],
            _ => {
                return Err(MgError::bad_request(format!(
                    "event: {name:?} is not an event name (accepted, delivered, failed, opened, clicked, unsubscribed, complained, rejected, stored)"
                )));
            }
        });
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn severity(v: &str) -> Result<Vec<EventType>, MgError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "temporary" => Ok(vec![EventType::Deferred]),
        "permanent" => Ok(vec![
            EventType::Bounced,
            EventType::Failed,
            EventType::Dropped,
        ]),
        _ => Err(MgError::bad_request(format!(
            "severity: {v:?} is not temporary or permanent"
        ))),
    }
}

/// An RFC 2822 date or seconds since the epoch, as Mailgun takes them.
pub(crate) fn date(name: &str, v: &str) -> Result<Timestamp, MgError> {
    if let Ok(secs) = v.trim().parse::<f64>()
        && secs.is_finite()
        && (0.0..1e11).contains(&secs)
    {
        return Ok(Timestamp::from_millis((secs * 1000.0) as i64));
    }
    Timestamp::parse_rfc2822(v).ok_or_else(|| {
        MgError::bad_request(format!(
            "{name}: {v:?} is not a date such as 'Fri, 14 Oct 2026 23:10:10 -0000' or seconds since 1970"
        ))
    })
}

/// `/v3/{domain}/events`: the first page of a query.
pub async fn list(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(domain): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    // A token in `?page=` (Mailgun's Python library) is the whole query.
    let query = match params.first("page") {
        Some(token) => EventsQuery::from_token(token)?,
        None => EventsQuery::from_params(&params)?,
    };
    page(&state, auth, &domain, query, &headers).await
}

/// `/v3/{domain}/events/{token}`: a page a `paging` URL names.
pub async fn page_of(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, token)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    page(
        &state,
        auth,
        &domain,
        EventsQuery::from_token(&token)?,
        &headers,
    )
    .await
}

async fn page(
    state: &AppState,
    auth: kuvert_store::KeyAuth,
    domain: &kuvert_store::Domain,
    q: EventsQuery,
    headers: &HeaderMap,
) -> Result<Json<Value>, MgError> {
    let items = match &q.types {
        // Only event names Kuvert never stores: nothing to read.
        Some(t) if t.is_empty() => vec![],
        types => {
            let filter = EventFilter {
                types: types.clone().unwrap_or_default(),
                recipient: q.recipient.clone(),
                message_id: q.message_id.clone(),
                recipient_id: None,
                tag: q.tag.clone(),
                domain: Some(domain.id.to_string()),
                from: q.from.map(Timestamp::from_millis),
                to: q.to.map(Timestamp::from_millis),
                before: if q.ascending { None } else { q.after },
                after: if q.ascending { q.after } else { None },
                oldest_first: q.ascending,
                limit: q.limit,
            };
            state
                .store
                .list_events(&auth.account_id, &filter)
                .await
                .map_err(crate::ApiError::from)?
                .items
        }
    };
    let mut ids: Vec<MessageId> = items.iter().filter_map(|e| e.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let messages: HashMap<MessageId, MessageView> = state
        .store
        .message_summaries(&auth.account_id, &ids)
        .await
        .map_err(crate::ApiError::from)?;
    let out: Vec<Value> = items
        .iter()
        .map(|e| {
            kuvert_webhooks::mailgun::event_data(
                e,
                e.message_id.as_ref().and_then(|m| messages.get(m)),
            )
        })
        .collect();
    // The next page starts after this one's last event; an empty page names itself again,
    // so that a client polling an open range finds what comes later.
    let next = EventsQuery {
        after: items.last().map(|e| e.seq).or(q.after),
        ..q.clone()
    };
    let first = EventsQuery {
        after: None,
        ..q.clone()
    };
    let base = super::base_url(headers);
    let url = |query: &EventsQuery| {
        let t = query.token();
        format!("{base}/v3/{}/events/{t}?page={t}", domain.name)
    };
    Ok(Json(json!({
        "items": out,
        "paging": {
            "first": url(&first),
            "last": url(&first),
            "next": url(&next),
            "previous": url(&first),
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Form {
        super::super::form::urlencoded(query.as_bytes()).expect("a query")
    }

    #[test]
    fn a_query_survives_its_token() {
        let q = EventsQuery::from_params(&params(
            "begin=Wed%2C+14+Oct+2026+23%3A10%3A10+-0000&ascending=yes&limit=2&event=failed+OR+delivered&severity=permanent&recipient=ann%40x.example&message-id=%3Cmsg_1%40shop.example%3E&tags=orders",
        ))
        .expect("a query");
        assert!(q.ascending);
        assert_eq!(q.limit, 2);
        assert_eq!(
            q.types,
            Some(vec![
                EventType::Bounced,
                EventType::Failed,
                EventType::Dropped
            ])
        );
        assert_eq!(q.message_id.as_deref(), Some("msg_1"));
        assert_eq!(
            q.from,
            Timestamp::parse_rfc3339("2026-10-14T23:10:10Z").map(Timestamp::millis)
        );
        let token = q.token();
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{token}"
        );
        assert_eq!(EventsQuery::from_token(&token).expect("back"), q);
        assert!(EventsQuery::from_token("not-a-token").is_err());
        // A token listing a type twice, or a filter no parameter could give, was not made here.
        for forged in [
            r#"{"limit":1,"types":["delivered","delivered"]}"#,
            r#"{"limit":1,"recipient":"a b"}"#,
        ] {
            assert!(
                EventsQuery::from_token(&URL_SAFE_NO_PAD.encode(forged)).is_err(),
                "{forged}"
            );
        }
        assert!(EventsQuery::from_token(&"A".repeat(MAX_TOKEN + 1)).is_err());
    }

    #[test]
    fn what_the_events_cannot_filter_by_is_refused() {
        for query in [
            "limit=301",
            "limit=0",
            "event=sent",
            "severity=soft",
            "subject=hi",
            "recipient=a%40x.example+OR+b%40x.example",
            "begin=yesterday",
            "ascending=maybe",
        ] {
            let e = EventsQuery::from_params(&params(query)).expect_err(query);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{query}");
        }
        // An end before the beginning: newest first over the range between them.
        let q = EventsQuery::from_params(&params("begin=2000&end=1000")).expect("a query");
        assert!(!q.ascending);
        assert_eq!((q.from, q.to), (Some(1_000_000), Some(2_000_001)));
    }
}
