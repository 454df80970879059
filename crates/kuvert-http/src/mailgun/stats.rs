//! `GET /v3/{domain}/stats/total`: the domain's rolled-up counters (the same as `/v1/stats`)
//! in Mailgun's shape, a point per hour, day or month.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use kuvert_core::Timestamp;
use kuvert_store::StatsQuery;
use serde_json::{Map, Value, json};

use super::{MgError, MgFull};
use crate::AppState;
use crate::routes::stats::{Resolution, summarize};

const DAY_MS: i64 = 86_400_000;

/// Mailgun's event names a stats query may ask for.
const EVENTS: &[&str] = &[
    "accepted",
    "delivered",
    "failed",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
    "stored",
];

/// `7d`, `24h`, `1m` (a month): how far back from the end.
fn duration(v: &str) -> Result<i64, MgError> {
    let v = v.trim();
    // The unit is the last character, whatever its width.
    let cut = v.char_indices().last().map_or(0, |(i, _)| i);
    let (n, unit) = v.split_at(cut);
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            MgError::bad_request(format!("duration: {v:?} is not like 7d, 24h or 1m"))
        })?;
    match unit {
        "h" => Ok(n * 3_600_000),
        "d" => Ok(n * DAY_MS),
        "m" => Ok(n * 30 * DAY_MS),
        _ => Err(MgError::bad_request(format!(
            "duration: {v:?} is not like 7d, 24h or 1m"
        ))),
    }
}

/// One point of Kuvert's series (its counters by name) in Mailgun's shape, with the events
/// asked for.
fn point(counts: &Map<String, Value>, events: &[&str]) -> Map<String, Value> {
    let n = |name: &str| counts.get(name).and_then(Value::as_i64).unwrap_or(0);
    let mut out = Map::new();
    out.insert(
        "time".into(),
        Value::from(
            counts
                .get("time")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse_rfc3339)
                .map_or_else(String::new, super::date),
        ),
    );
    for event in events {
        let v = match *event {
            "accepted" => {
                json!({"outgoing": n("accepted"), "incoming": 0, "total": n("accepted")})
            }
            "delivered" => {
                json!({"smtp": n("delivered"), "http": 0, "total": n("delivered")})
            }
            "failed" => {
                let bounce = n("bounced_hard") + n("bounced_soft");
                json!({
                    "permanent": {
                        "bounce": bounce,
                        "suppress-bounce": n("dropped"),
                        "generic": n("failed"),
                        "total": bounce + n("dropped") + n("failed"),
                    },
                    "temporary": {"generic": n("deferred"), "total": n("deferred")},
                })
            }
            "opened" => json!({"total": n("opened"), "unique": n("opened_unique")}),
            "clicked" => json!({"total": n("clicked"), "unique": n("clicked_unique")}),
            "unsubscribed" => json!({"total": n("unsubscribed")}),
            "complained" => json!({"total": n("complained")}),
            // Kuvert stores no incoming mail.
            _ => json!({"total": 0}),
        };
        out.insert((*event).to_owned(), v);
    }
    out
}

pub async fn total(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(domain): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let (start, end, resolution, stats) =
        series(&state, &auth, &params, Some(domain.id.to_string()), None).await?;
    Ok(Json(json!({
        "start": start,
        "end": end,
        "resolution": resolution,
        "stats": stats,
    })))
}

/// The points of a stats query (`event`, `start`, `end`, `duration`, `resolution`) over a
/// domain's counters or a tag's: the start, end and resolution as Mailgun writes them, and
/// a point per period with the events asked for.
pub async fn series(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    params: &super::form::Form,
    domain_id: Option<String>,
    tag: Option<String>,
) -> Result<(String, String, String, Vec<Map<String, Value>>), MgError> {
    let mut events: Vec<&str> = Vec::new();
    for list in params.texts("event") {
        for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let known = EVENTS.iter().find(|k| **k == e).ok_or_else(|| {
                MgError::bad_request(format!("event: {e:?} is not one of {}", EVENTS.join(", ")))
            })?;
            if !events.contains(known) {
                events.push(known);
            }
        }
    }
    if events.is_empty() {
        return Err(MgError::bad_request("'event' parameter is missing"));
    }
    let resolution = Resolution::parse(params.first("resolution").unwrap_or("day"))?;
    let at = |name: &str| {
        params
            .first(name)
            .map(|v| super::events::date(name, v))
            .transpose()
    };
    let end = at("end")?.unwrap_or_else(|| state.store.clock().now());
    let start = match params.first("duration") {
        Some(d) => Timestamp(end.millis().saturating_sub(duration(d)?)),
        None => at("start")?.unwrap_or(Timestamp(end.millis() - 7 * DAY_MS)),
    };
    let first = resolution.first(start, end)?;
    let hourly = state
        .store
        .stats(
            &auth.account_id,
            &StatsQuery {
                from: first,
                to: end,
                domain_id,
                tag,
            },
        )
        .await
        .map_err(crate::ApiError::from)?;
    let summary = summarize(hourly, first, end, resolution);
    Ok((
        super::date(first),
        super::date(end),
        summary.resolution,
        summary.series.iter().map(|p| point(p, &events)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_points() {
        assert_eq!(duration("7d").expect("7d"), 7 * DAY_MS);
        assert_eq!(duration("24h").expect("24h"), DAY_MS);
        for bad in ["", "d", "0d", "7w", "-1d", "99999d", "é", "1é"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        let counts: Map<String, Value> = serde_json::from_value(json!({
            "time": "2026-12-07T00:00:00.000Z", "accepted": 5, "delivered": 4,
            "bounced_hard": 1, "dropped": 2, "deferred": 3,
        }))
        .expect("counts");
        let p = point(&counts, &["accepted", "failed", "stored"]);
        assert_eq!(p["time"], "Mon, 07 Dec 2026 00:00:00 UTC");
        assert_eq!(p["accepted"]["total"], 5);
        assert_eq!(p["failed"]["permanent"]["total"], 3);
        assert_eq!(p["failed"]["temporary"]["total"], 3);
        assert_eq!(p["stored"]["total"], 0);
        assert!(p.get("delivered").is_none(), "only the events asked for");
    }
}
