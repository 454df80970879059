//! Statistics: counters rolled up as events happen, by hour, summed here into the resolution
//! asked for, with the rates senders watch.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kuvert_core::Timestamp;
use kuvert_store::{METRICS, StatsQuery};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, FullAccess};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// RFC 3339; default: 7 days before `to`.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339; default: now.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `hour`, `day` (default) or `month`, in UTC.
    #[param(pattern = "^(hour|day|month)$")]
    pub resolution: Option<String>,
    /// One sending domain's counts.
    #[param(min_length = 1)]
    pub domain: Option<String>,
    /// One tag's counts.
    #[param(min_length = 1)]
    pub tag: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatsOut {
    pub resolution: String,
    pub from: String,
    pub to: String,
    /// Each metric summed over the whole range.
    #[schema(value_type = Object)]
    pub totals: Map<String, Value>,
    /// delivered/accepted; (bounced_hard + bounced_soft)/accepted; opened_unique, clicked_unique,
    /// complained and unsubscribed over delivered. Null where the divisor is 0.
    #[schema(value_type = Object)]
    pub rates: Map<String, Value>,
    /// One point per period of the range, empty periods included.
    #[schema(value_type = Vec<Object>)]
    pub series: Vec<Map<String, Value>>,
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MAX_POINTS: i64 = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    Hour,
    Day,
    Month,
}

impl Resolution {
    fn start(self, t: Timestamp) -> Timestamp {
        match self {
            Self::Hour => Timestamp(t.millis().div_euclid(HOUR_MS) * HOUR_MS),
            Self::Day => Timestamp(t.millis().div_euclid(DAY_MS) * DAY_MS),
            Self::Month => t.month_start(),
        }
    }
    fn next(self, t: Timestamp) -> Timestamp {
        match self {
            Self::Hour => Timestamp(t.millis() + HOUR_MS),
            Self::Day => Timestamp(t.millis() + DAY_MS),
            // The first day of the month after: 32 days on is always in it.
            Self::Month => Timestamp(t.millis() + 32 * DAY_MS).month_start(),
        }
    }
}

/// The account's statistics.
#[utoipa::path(get, path = "/v1/stats", tag = "statistics", params(StatsParams),
    responses((status = 200, body = StatsOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiQuery(q): ApiQuery<StatsParams>,
) -> Result<Json<StatsOut>, ApiError> {
    let resolution = Resolution::parse(q.resolution.as_deref().unwrap_or("day"))?;
    let now = state.store.clock().now();
    let to = super::time_param("to", q.to.as_deref())?.unwrap_or(now);
    let from = super::time_param("from", q.from.as_deref())?
        .unwrap_or(Timestamp(to.millis() - 7 * DAY_MS));
    let first = resolution.first(from, to)?;
    let domain_id = match &q.domain {
        Some(name) => Some(
            state
                .store
                .account_domain(&auth.account_id, name)
                .await?
                .id
                .to_string(),
        ),
        None => None,
    };
    let hourly = state
        .store
        .stats(
            &auth.account_id,
            &StatsQuery {
                from: first,
                to,
                domain_id,
                tag: q.tag.clone(),
            },
        )
        .await?;
    Ok(Json(summarize(hourly, first, to, resolution)))
}

impl Resolution {
    pub(crate) fn parse(name: &str) -> Result<Self, ApiError> {
        Ok(match name {
            "hour" => Self::Hour,
            "day" => Self::Day,
            "month" => Self::Month,
            other => {
                return Err(ApiError::invalid(
                    "resolution",
                    format!("{other:?}: use hour, day or month"),
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The start of the first period of `from..to`, when the range has a few enough points.
    pub(crate) fn first(self, from: Timestamp, to: Timestamp) -> Result<Timestamp, ApiError> {
        if from >= to {
            return Err(ApiError::invalid("from", "from must be before to"));
        }
        let first = self.start(from);
        let per_point = match self {
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
            Self::Month => 28 * DAY_MS,
        };
        if (to.millis() - first.millis()) / per_point > MAX_POINTS {
            return Err(ApiError::invalid(
                "resolution",
                format!(
                    "more than {MAX_POINTS} points: choose a coarser resolution or a shorter range"
                ),
            ));
        }
        Ok(first)
    }
}

/// Hourly counters summed into the periods of `first..to`, with totals and rates.
pub(crate) fn summarize(
    hourly: kuvert_store::HourlyCounts,
    first: Timestamp,
    to: Timestamp,
    resolution: Resolution,
) -> StatsOut {
    let mut points: BTreeMap<Timestamp, BTreeMap<String, i64>> = BTreeMap::new();
    let mut t = first;
    while t < to {
        points.insert(t, BTreeMap::new());
        t = resolution.next(t);
    }
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for (hour, metric, n) in hourly {
        *points
            .entry(resolution.start(hour))
            .or_default()
            .entry(metric.clone())
            .or_default() += n;
        *totals.entry(metric).or_default() += n;
    }
    let filled = |counts: &BTreeMap<String, i64>| -> Map<String, Value> {
        METRICS
            .iter()
            .map(|m| {
                (
                    (*m).to_owned(),
                    Value::from(counts.get(*m).copied().unwrap_or(0)),
                )
            })
            .collect()
    };
    let series = points
        .iter()
        .map(|(t, counts)| {
            let mut point = Map::new();
            point.insert("time".into(), Value::from(t.to_rfc3339()));
            point.extend(filled(counts));
            point
        })
        .collect();
    let n = |m: &str| totals.get(m).copied().unwrap_or(0) as f64;
    let rate = |num: f64, den: f64| {
        if den > 0.0 {
            Value::from((num / den * 10_000.0).round() / 10_000.0)
        } else {
            Value::Null
        }
    };
    let mut rates = Map::new();
    rates.insert("delivered".into(), rate(n("delivered"), n("accepted")));
    rates.insert(
        "bounced".into(),
        rate(n("bounced_hard") + n("bounced_soft"), n("accepted")),
    );
    for (name, metric) in [
        ("opened", "opened_unique"),
        ("clicked", "clicked_unique"),
        ("complained", "complained"),
        ("unsubscribed", "unsubscribed"),
    ] {
        rates.insert(name.into(), rate(n(metric), n("delivered")));
    }
    StatsOut {
        resolution: resolution.name().into(),
        from: first.to_rfc3339(),
        to: to.to_rfc3339(),
        totals: filled(&totals),
        rates,
        series,
    }
}
