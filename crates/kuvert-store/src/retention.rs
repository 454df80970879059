//! Retention: events are kept as long as the account's plan says (3 months, 13 on premium), a
//! message's content a few days after its last delivery attempt, and then they are deleted,
//! in bounded batches so that sending keeps its latency. Statistics stay: they hold no
//! personal data. Each run leaves its counts in `purge_runs`.

use std::collections::HashMap;

use kuvert_core::Timestamp;
use kuvert_core::account::Plan;
use serde::Serialize;
use sqlx::FromRow;

use crate::accounts::parse_column;
use crate::sql::placeholders;
use crate::{Result, Store};

/// How long things are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Event retention per plan, in calendar months.
    pub event_months: HashMap<Plan, u32>,
    /// Message content, after the message's last delivery attempt.
    pub content_ms: i64,
    /// Rows per delete statement.
    pub batch: u32,
    /// Rest between two statements, so that the writes of sending get the database.
    pub pause: std::time::Duration,
}

/// How a purge deletes: `rows` per statement, `pause` between statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Batches {
    pub rows: u32,
    pub pause: std::time::Duration,
}

impl RetentionPolicy {
    pub(crate) fn batches(&self) -> Batches {
        Batches {
            rows: self.batch.max(1),
            pause: self.pause,
        }
    }

    fn months(&self, plan: Plan) -> u32 {
        self.event_months
            .get(&plan)
            .copied()
            .unwrap_or_else(|| plan.default_limits().event_retention_months)
    }
}

/// What a purge deleted (or, on a dry run, would delete).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    pub events: u64,
    pub webhook_deliveries: u64,
    /// Messages whose content (MIME) went; their metadata stays.
    pub message_contents: u64,
    /// Messages (with their recipients) older than the event retention.
    pub messages: u64,
    pub recipients: u64,
    pub captures: u64,
    /// Closed accounts whose every row went (their deletion period is over).
    pub accounts: u64,
    /// Audit log entries past the plan's retention.
    pub audit_entries: u64,
}

/// A past purge run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeRun {
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub counts: PurgeCounts,
}

/// An account and its plan, whose retention applies to it.
#[derive(FromRow)]
struct AccountPlanRow {
    id: String,
    plan: String,
}

/// A purge run as stored.
#[derive(FromRow)]
struct PurgeRunRow {
    started_at: i64,
    finished_at: i64,
    events: i64,
    webhook_deliveries: i64,
    message_contents: i64,
    messages: i64,
    recipients: i64,
    captures: i64,
    accounts: i64,
    audit_entries: i64,
}

impl From<PurgeRunRow> for PurgeRun {
    fn from(r: PurgeRunRow) -> Self {
        PurgeRun {
            started_at: Timestamp(r.started_at),
            finished_at: Timestamp(r.finished_at),
            counts: PurgeCounts {
                events: r.events as u64,
                webhook_deliveries: r.webhook_deliveries as u64,
                message_contents: r.message_contents as u64,
                messages: r.messages as u64,
                recipients: r.recipients as u64,
                captures: r.captures as u64,
                accounts: r.accounts as u64,
                audit_entries: r.audit_entries as u64,
            },
        }
    }
}

/// A message is finished when none of its recipients waits for an attempt (or is held).
const FINISHED: &str = "NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = messages.id AND (r.next_attempt_at IS NOT NULL OR r.status = 'held'))";

impl Store {
    /// Deletes what is past its retention; with `dry_run`, only counts it.
    pub async fn purge(&self, policy: &RetentionPolicy, dry_run: bool) -> Result<PurgeCounts> {
        let started = self.now();
        let mut c = PurgeCounts::default();
        let content_cutoff = started - policy.content_ms;
        c.accounts = self
            .purge_closed_accounts(policy.batches(), dry_run)
            .await?;
        let accounts = sqlx::query_as::<_, AccountPlanRow>("SELECT id, plan FROM accounts")
            .fetch_all(self.pool())
            .await?;
        for row in accounts {
            let account = row.id;
            let plan: Plan = parse_column(&row.plan)?;
            let cutoff = Timestamp(started)
                .months_before(policy.months(plan))
                .millis();
            c.events += self
                .purge_rows(
                    "SELECT seq FROM events WHERE account_id = $1 AND created_at < $2",
                    "DELETE FROM events WHERE seq IN",
                    &account,
                    cutoff,
                    policy.batches(),
                    dry_run,
                )
                .await?;
            c.audit_entries += self
                .purge_rows(
                    "SELECT seq FROM audit_log WHERE account_id = $1 AND created_at < $2",
                    "DELETE FROM audit_log WHERE seq IN",
                    &account,
                    cutoff,
                    policy.batches(),
                    dry_run,
                )
                .await?;
            c.webhook_deliveries += self
                .purge_rows(
                    "SELECT id FROM webhook_outbox WHERE account_id = $1 AND created_at < $2",
                    "DELETE FROM webhook_outbox WHERE id IN",
                    &account,
                    cutoff,
                    policy.batches(),
                    dry_run,
                )
                .await?;
            let (messages, recipients) = self
                .purge_messages(&account, cutoff, policy.batches(), dry_run)
                .await?;
            c.messages += messages;
            c.recipients += recipients;
            // Captured mail is message content.
            c.captures += self
                .purge_rows(
                    "SELECT seq FROM captures WHERE account_id = $1 AND created_at < $2",
                    "DELETE FROM captures WHERE seq IN",
                    &account,
                    content_cutoff,
                    policy.batches(),
                    dry_run,
                )
                .await?;
        }
        c.message_contents = self
            .purge_contents(content_cutoff, policy.batches(), dry_run)
            .await?;
        if !dry_run {
            // The counts of past hours and days serve no quota any more (a month's stay: the
            // account page shows it).
            sqlx::query(
                "DELETE FROM quota_usage WHERE period IN ('hour', 'day') AND period_start < $1",
            )
            .bind(started - 2 * 86_400_000)
            .execute(self.writer())
            .await?;
            sqlx::query(
                "INSERT INTO purge_runs (started_at, finished_at, events, webhook_deliveries, message_contents, messages, recipients, captures, accounts, audit_entries) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(started)
            .bind(self.now())
            .bind(c.events as i64)
            .bind(c.webhook_deliveries as i64)
            .bind(c.message_contents as i64)
            .bind(c.messages as i64)
            .bind(c.recipients as i64)
            .bind(c.captures as i64)
            .bind(c.accounts as i64)
            .bind(c.audit_entries as i64)
            .execute(self.writer())
            .await?;
        }
        Ok(c)
    }

    /// Deletes, `batch` at a time, the rows that `select` (binding `$1` = account, `$2` =
    /// cutoff, and a `LIMIT`) finds; on a dry run counts them.
    async fn purge_rows(
        &self,
        select: &str,
        delete: &str,
        account: &str,
        cutoff: i64,
        batch: Batches,
        dry_run: bool,
    ) -> Result<u64> {
        if dry_run {
            return self
                .count_of(&select_count(select), &[account], cutoff)
                .await;
        }
        let sql = format!("{delete} ({select} LIMIT $3)");
        until_short(batch, || {
            sqlx::query(&sql)
                .bind(account)
                .bind(cutoff)
                .bind(i64::from(batch.rows))
                .execute(self.writer())
        })
        .await
    }

    /// Messages older than the account's event retention, with every recipient finished, go
    /// with their recipients. Returns (messages, recipients).
    async fn purge_messages(
        &self,
        account: &str,
        cutoff: i64,
        batch: Batches,
        dry_run: bool,
    ) -> Result<(u64, u64)> {
        let select = format!(
            "SELECT id FROM messages WHERE account_id = $1 AND created_at < $2 AND {FINISHED}"
        );
        let (mut messages, mut recipients) = (0, 0);
        if dry_run {
            let n = self
                .count_of(&select_count(&select), &[account], cutoff)
                .await?;
            let r = self
                .count_of(
                    &format!("SELECT COUNT(*) FROM recipients WHERE message_id IN ({select})"),
                    &[account],
                    cutoff,
                )
                .await?;
            return Ok((n, r));
        }
        loop {
            let ids: Vec<String> = sqlx::query_scalar(&format!("{select} LIMIT $3"))
                .bind(account)
                .bind(cutoff)
                .bind(i64::from(batch.rows.min(500)))
                .fetch_all(self.pool())
                .await?;
            if ids.is_empty() {
                return Ok((messages, recipients));
            }
            let list = placeholders(1, ids.len());
            let mut tx = self.writer().begin().await?;
            let (del_recipients, del_messages) = (
                format!("DELETE FROM recipients WHERE message_id IN ({list})"),
                format!("DELETE FROM messages WHERE id IN ({list})"),
            );
            let mut del = sqlx::query(&del_recipients);
            for id in &ids {
                del = del.bind(id);
            }
            recipients += del.execute(&mut *tx).await?.rows_affected();
            let mut del = sqlx::query(&del_messages);
            for id in &ids {
                del = del.bind(id);
            }
            messages += del.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
        }
    }

    /// Content of finished messages whose last attempt is older than `cutoff`: the MIME
    /// goes, metadata (sender, subject, size, tags, states) stays.
    async fn purge_contents(&self, cutoff: i64, batch: Batches, dry_run: bool) -> Result<u64> {
        let select = format!(
            "SELECT id FROM messages WHERE content_purged_at IS NULL AND created_at < $1 AND {FINISHED} \
             AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = messages.id AND r.updated_at >= $1)"
        );
        if dry_run {
            return self.count_of(&select_count(&select), &[], cutoff).await;
        }
        let sql = format!(
            "UPDATE messages SET mime = NULL, content_purged_at = $2 WHERE id IN ({select} LIMIT $3)"
        );
        let now = self.now();
        until_short(batch, || {
            sqlx::query(&sql)
                .bind(cutoff)
                .bind(now)
                .bind(i64::from(batch.rows))
                .execute(self.writer())
        })
        .await
    }

    /// A dry run's count: `sql` binds the account (when given), then the cutoff.
    async fn count_of(&self, sql: &str, account: &[&str], cutoff: i64) -> Result<u64> {
        let mut q = sqlx::query_scalar::<_, i64>(sql);
        for a in account {
            q = q.bind(*a);
        }
        Ok(q.bind(cutoff).fetch_one(self.pool()).await? as u64)
    }

    /// The most recent purge runs, newest first.
    pub async fn purge_runs(&self, limit: u32) -> Result<Vec<PurgeRun>> {
        let rows = sqlx::query_as::<_, PurgeRunRow>(
            "SELECT started_at, finished_at, events, webhook_deliveries, message_contents, messages, recipients, captures, accounts, audit_entries \
             FROM purge_runs ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(PurgeRun::from).collect())
    }
}

/// How many rows `select` finds.
fn select_count(select: &str) -> String {
    format!("SELECT COUNT(*) FROM ({select}) t")
}

/// Runs one bounded statement again and again until it affects fewer than `batch` rows;
/// answers the rows affected in all.
pub(crate) async fn until_short<F, Fut>(batch: Batches, mut statement: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<sqlx::any::AnyQueryResult, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let done = statement().await?.rows_affected();
        total += done;
        if done < u64::from(batch.rows) {
            return Ok(total);
        }
        if !batch.pause.is_zero() {
            tokio::time::sleep(batch.pause).await;
        }
    }
}
