//! Statistics rolled up as events are written: each transaction that appends events raises
//! the counters of their hour, in the same transaction, so the counts always agree with the
//! events and never need a scan of them. Rows hold no personal data and stay when raw events
//! are purged.

use std::collections::BTreeMap;

use kuvert_core::Timestamp;
use kuvert_core::account::Plan;
use kuvert_core::id::AccountId;
use kuvert_core::reputation::{Outcomes, WINDOW_HOURS};
use sqlx::{Any, FromRow, Transaction};

use crate::{Result, Store, StoreError};

const HOUR_MS: i64 = 3_600_000;

/// The counted metrics, in the order the API lists them.
pub const METRICS: &[&str] = &[
    "accepted",
    "delivered",
    "deferred",
    "bounced_hard",
    "bounced_soft",
    "failed",
    "dropped",
    "opened",
    "opened_unique",
    "clicked",
    "clicked_unique",
    "unsubscribed",
    "complained",
];

type Key = (String, String, String, i64, &'static str);

/// Increments gathered in one transaction, written at its end in key order (so that
/// concurrent writers on PostgreSQL take row locks in the same order and cannot deadlock).
#[derive(Default)]
pub(crate) struct Rollup(BTreeMap<Key, i64>);

impl Rollup {
    /// Counts one event: for the account, for its domain, and for each of its tags.
    pub fn add(
        &mut self,
        account: &str,
        domain_id: Option<&str>,
        tags: &[String],
        at: i64,
        metric: &'static str,
    ) {
        // An event of the account, not of its mail (a pause), is not counted.
        if metric.is_empty() {
            return;
        }
        let hour = at.div_euclid(HOUR_MS) * HOUR_MS;
        let mut bump = |domain: &str, tag: &str| {
            *self
                .0
                .entry((
                    account.to_owned(),
                    domain.to_owned(),
                    tag.to_owned(),
                    hour,
                    metric,
                ))
                .or_default() += 1;
        };
        bump("", "");
        if let Some(d) = domain_id {
            bump(d, "");
        }
        for t in tags {
            bump("", t);
        }
    }

    pub async fn apply(self, tx: &mut Transaction<'_, Any>) -> Result<()> {
        for ((account, domain, tag, hour, metric), n) in self.0 {
            sqlx::query(
                "INSERT INTO stats (account_id, domain_id, tag, hour, metric, n) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (account_id, domain_id, tag, hour, metric) DO UPDATE SET n = stats.n + excluded.n",
            )
            .bind(account)
            .bind(domain)
            .bind(tag)
            .bind(hour)
            .bind(metric)
            .bind(n)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

/// Which counters to read.
#[derive(Clone, Debug)]
pub struct StatsQuery {
    pub from: Timestamp,
    pub to: Timestamp,
    /// A domain's id; `None`: all domains.
    pub domain_id: Option<String>,
    pub tag: Option<String>,
}

/// A tag and when it was first and last counted (to the hour).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagSeen {
    pub tag: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// Hourly counts: (hour start, metric, count), in hour order.
pub type HourlyCounts = Vec<(Timestamp, String, i64)>;

/// One hour's counter of one metric.
#[derive(FromRow)]
struct CounterRow {
    hour: i64,
    metric: String,
    n: i64,
}

impl Store {
    /// Each active account's outcomes over the last `WINDOW_HOURS` hours (the current hour so
    /// far and the ones before it), from the hourly counters, for the accounts that had a hard
    /// bounce or a complaint in them: the only ones a rate can pause. After a pause is lifted,
    /// only the hours after the lift's count.
    pub async fn recent_outcomes(&self) -> Result<Vec<(AccountId, Plan, Outcomes)>> {
        let hour = self.now().div_euclid(HOUR_MS) * HOUR_MS;
        let since = hour - i64::from(WINDOW_HOURS - 1) * HOUR_MS;
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT s.account_id, a.plan, s.metric, CAST(SUM(s.n) AS BIGINT) FROM stats s JOIN accounts a ON a.id = s.account_id \
             WHERE s.domain_id = '' AND s.tag = '' AND s.hour >= $1 AND a.status = 'active' \
             AND (a.judged_from IS NULL OR s.hour > a.judged_from) \
             AND s.metric IN ('accepted', 'delivered', 'bounced_hard', 'complained') \
             AND s.account_id IN (SELECT account_id FROM stats WHERE domain_id = '' AND tag = '' AND hour >= $1 \
                 AND metric IN ('bounced_hard', 'complained')) \
             GROUP BY s.account_id, a.plan, s.metric ORDER BY s.account_id",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<(AccountId, Plan, Outcomes)> = Vec::new();
        for (account, plan, metric, n) in rows {
            if out.last().is_none_or(|(a, _, _)| a.as_str() != account) {
                out.push((
                    AccountId::from_string(account),
                    crate::accounts::parse_column(&plan)?,
                    Outcomes::default(),
                ));
            }
            let o = &mut out.last_mut().expect("pushed above").2;
            let n = n.max(0) as u64;
            match metric.as_str() {
                "accepted" => o.accepted = n,
                "delivered" => o.delivered = n,
                "bounced_hard" => o.bounced_hard = n,
                _ => o.complained = n,
            }
        }
        Ok(out)
    }

    /// Deletes up to `batch` events older than `cutoff`, oldest first; returns how many went.
    /// Bounded, so that a purge never holds the database for long. Statistics stay.
    pub async fn purge_events_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE created_at < $1 ORDER BY seq LIMIT $2)",
        )
        .bind(cutoff.millis())
        .bind(i64::from(batch))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// The account's tags with counters, by name, `limit` after `after`: each with the first
    /// and last hour it was counted in.
    pub async fn tags(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TagSeen>> {
        #[derive(FromRow)]
        struct Row {
            tag: String,
            first_hour: i64,
            last_hour: i64,
        }
        let rows = sqlx::query_as::<_, Row>(
            "SELECT tag, MIN(hour) AS first_hour, MAX(hour) AS last_hour FROM stats \
             WHERE account_id = $1 AND domain_id = '' AND tag > $2 GROUP BY tag ORDER BY tag LIMIT $3",
        )
        .bind(account.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| TagSeen {
                tag: r.tag,
                first_seen: Timestamp(r.first_hour),
                last_seen: Timestamp(r.last_hour + HOUR_MS - 1),
            })
            .collect())
    }

    /// One tag's first and last hour.
    pub async fn tag(&self, account: &AccountId, tag: &str) -> Result<TagSeen> {
        #[derive(FromRow)]
        struct Row {
            first_hour: Option<i64>,
            last_hour: Option<i64>,
        }
        let row = sqlx::query_as::<_, Row>(
            "SELECT MIN(hour) AS first_hour, MAX(hour) AS last_hour FROM stats \
             WHERE account_id = $1 AND domain_id = '' AND tag = $2",
        )
        .bind(account.as_str())
        .bind(tag)
        .fetch_one(self.pool())
        .await?;
        match (row.first_hour, row.last_hour) {
            (Some(f), Some(l)) if !tag.is_empty() => Ok(TagSeen {
                tag: tag.to_owned(),
                first_seen: Timestamp(f),
                last_seen: Timestamp(l + HOUR_MS - 1),
            }),
            _ => Err(StoreError::NotFound("tag")),
        }
    }

    /// Forgets a tag: its counters go (the messages keep it).
    pub async fn delete_tag(&self, account: &AccountId, tag: &str) -> Result<()> {
        let done = sqlx::query(
            "DELETE FROM stats WHERE account_id = $1 AND domain_id = '' AND tag = $2 AND tag <> ''",
        )
        .bind(account.as_str())
        .bind(tag)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("tag"));
        }
        Ok(())
    }

    pub async fn stats(&self, account: &AccountId, q: &StatsQuery) -> Result<HourlyCounts> {
        let rows = sqlx::query_as::<_, CounterRow>(
            "SELECT hour, metric, n FROM stats WHERE account_id = $1 AND domain_id = $2 AND tag = $3 AND hour >= $4 AND hour < $5 ORDER BY hour",
        )
        .bind(account.as_str())
        .bind(q.domain_id.as_deref().unwrap_or(""))
        .bind(q.tag.as_deref().unwrap_or(""))
        .bind(q.from.millis().div_euclid(HOUR_MS) * HOUR_MS)
        .bind(q.to.millis())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (Timestamp(r.hour), r.metric, r.n))
            .collect())
    }
}
