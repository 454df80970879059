//! Group commit. Every accepted message must be durable before it is acknowledged, and a
//! durable commit costs a disk flush. One committer task takes whatever messages are waiting,
//! writes them all in one transaction and answers each caller: under load, many messages share
//! one flush; idle, a message waits for nothing but its own.

use std::collections::BTreeMap;

use kuvert_core::Timestamp;
use kuvert_core::quota::{Quota, QuotaPeriod, Usage};
use prometheus_client::metrics::counter::Counter;
use sqlx::{Any, AnyPool, FromRow, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::sql::{MAX_BINDS, by_bytes, insert_rows, placeholders};
use crate::stats::Rollup;
use crate::{Result, StoreError};

/// Rows ready to write: every personal value already sealed.
pub(crate) struct SealedMessage {
    pub id: String,
    pub account_id: String,
    pub domain_id: String,
    pub sender: Vec<u8>,
    pub subject: Vec<u8>,
    pub mime: Vec<u8>,
    pub size: i64,
    pub tags: String,
    pub metadata: Option<Vec<u8>>,
    pub require_tls: i64,
    pub track_opens: i64,
    pub track_clicks: i64,
    pub track_unsubscribe: i64,
    pub send_at: Option<i64>,
    pub created_at: i64,
    /// Recipients that count against the quotas.
    pub queued: i64,
    pub quotas: Vec<Quota>,
    pub recipients: Vec<SealedRecipient>,
    pub events: Vec<SealedEvent>,
    /// The campaign and contact this message is the copy for.
    pub campaign: Option<(String, String)>,
}

pub(crate) struct SealedRecipient {
    pub id: String,
    pub address: Vec<u8>,
    pub address_lookup: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub next_attempt_at: Option<i64>,
}

pub(crate) struct SealedEvent {
    pub account_id: String,
    pub event_type: &'static str,
    pub message_id: Option<String>,
    pub recipient_id: Option<String>,
    pub recipient: Option<Vec<u8>>,
    pub recipient_lookup: Option<String>,
    pub tags: String,
    pub data: Option<Vec<u8>>,
    pub created_at: i64,
    /// What the event counts as in the statistics (`stats::METRICS`).
    pub metric: &'static str,
    pub domain_id: Option<String>,
}

type Job = (SealedMessage, oneshot::Sender<Result<()>>);

/// Most messages one transaction takes; bounds the latency a large batch adds.
const MAX_BATCH: usize = 512;

/// How well group commit is doing: messages per transaction is `messages / transactions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub transactions: u64,
    pub messages: u64,
}

/// Handles on the registry's counters (`Store::register_metrics`).
#[derive(Clone, Default)]
pub(crate) struct Counters {
    pub transactions: Counter,
    pub messages: Counter,
}

pub(crate) struct Committer {
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    pub(crate) counters: Counters,
}

impl Committer {
    pub fn start(pool: AnyPool) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let counters = Counters::default();
        let task = tokio::spawn(run(pool, rx, counters.clone()));
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
            task: tokio::sync::Mutex::new(Some(task)),
            counters,
        }
    }

    pub async fn commit(&self, message: SealedMessage) -> Result<()> {
        let sender = self
            .tx
            .lock()
            .expect("committer lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send((message, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops taking new messages and waits until every queued one is committed.
    pub async fn shutdown(&self) {
        drop(self.tx.lock().expect("committer lock").take());
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            transactions: self.counters.transactions.get(),
            messages: self.counters.messages.get(),
        }
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Job>, counters: Counters) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let messages: Vec<&SealedMessage> = batch.iter().map(|(m, _)| m).collect();
        match write(&pool, &messages).await {
            Ok(refused) => {
                counters.transactions.inc();
                counters.messages.inc_by(batch.len() as u64);
                for ((_, reply), refused) in batch.drain(..).zip(refused) {
                    let _ = reply.send(refused.map_or(Ok(()), Err));
                }
            }
            // One bad message must not fail the others: retry each on its own.
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "group commit failed; committing one by one");
                for (m, reply) in batch.drain(..) {
                    let result = write(&pool, &[&m]).await;
                    if result.is_ok() {
                        counters.transactions.inc();
                        counters.messages.inc();
                    }
                    let result = result.and_then(|mut r| r.pop().flatten().map_or(Ok(()), Err));
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// A message's usage row of `period`.
fn key(m: &SealedMessage, period: QuotaPeriod) -> (&str, QuotaPeriod, i64) {
    let start = period.start(Timestamp(m.created_at)).millis();
    (m.account_id.as_str(), period, start)
}

/// Which messages of a batch a quota refuses, in the batch's order. Every usage row the batch
/// counts in is read first, in one order (account, period, start), by an upsert that also
/// locks it on PostgreSQL (on SQLite the one writer already serialises): concurrent senders
/// cannot pass a quota together, and nodes committing batches of the same accounts wait for
/// each other instead of deadlocking.
async fn over_quota(
    tx: &mut Transaction<'_, Any>,
    messages: &[&SealedMessage],
) -> Result<Vec<Option<StoreError>>> {
    let mut used: BTreeMap<(&str, QuotaPeriod, i64), i64> = messages
        .iter()
        .filter(|m| m.queued > 0)
        .flat_map(|m| QuotaPeriod::ALL.iter().map(move |p| (key(m, *p), 0)))
        .collect();
    for ((account, period, start), n) in used.iter_mut() {
        *n = sqlx::query_scalar(
            "INSERT INTO quota_usage (account_id, period, period_start, recipients) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (account_id, period, period_start) DO UPDATE SET recipients = quota_usage.recipients \
             RETURNING recipients",
        )
        .bind(*account)
        .bind(period.as_str())
        .bind(*start)
        .fetch_one(&mut **tx)
        .await?;
    }
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        if m.queued == 0 || m.quotas.is_empty() {
            out.push(None);
            continue;
        }
        let usage = Usage {
            month: used[&key(m, QuotaPeriod::Month)].max(0) as u64,
            day: used[&key(m, QuotaPeriod::Day)].max(0) as u64,
            hour: used[&key(m, QuotaPeriod::Hour)].max(0) as u64,
        };
        let refused = usage.refusal(&m.quotas, m.queued as u64, Timestamp(m.created_at));
        if refused.is_none() {
            for period in QuotaPeriod::ALL {
                *used.get_mut(&key(m, *period)).expect("read above") += m.queued;
            }
        }
        out.push(refused.map(StoreError::QuotaExceeded));
    }
    Ok(out)
}

/// How stale `accounts.last_activity_at` may be.
const ACTIVITY_GRANULARITY_MS: i64 = 3_600_000;

/// Writes a batch in one transaction; returns, per message, the refusal of the quota (such a
/// message is not written).
async fn write(pool: &AnyPool, all: &[&SealedMessage]) -> Result<Vec<Option<StoreError>>> {
    let mut tx = pool.begin().await?;
    let refused = over_quota(&mut tx, all).await?;
    let kept: Vec<&SealedMessage> = all
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(m, _)| *m)
        .collect();
    let messages = kept.as_slice();
    let mut rollup = Rollup::default();
    // A campaign's copies first: a contact that has one already fails its message (and the
    // batch, which is then written one by one), so that no contact gets a campaign twice.
    let copies: Vec<(&SealedMessage, &(String, String))> = messages
        .iter()
        .filter_map(|m| m.campaign.as_ref().map(|c| (*m, c)))
        .collect();
    if !copies.is_empty() {
        insert_rows(
            &mut tx,
            "INSERT INTO campaign_sends (campaign_id, contact_id, account_id, message_id, created_at)",
            5,
            "",
            &copies,
            |q, (m, (campaign, contact))| {
                q.bind(campaign)
                    .bind(contact)
                    .bind(&m.account_id)
                    .bind(&m.id)
                    .bind(m.created_at)
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Database(e) => StoreError::conflict("the campaign's copy for this contact")(e),
            e => e,
        })?;
    }
    // A handful of statements per batch, not per message: the rows of each table go in
    // multi-row INSERTs.
    // Bodies are large: a statement takes at most `MAX_STATEMENT_BYTES` of them.
    for part in by_bytes(messages, |m| m.mime.len()) {
        insert_rows(
            &mut tx,
            "INSERT INTO messages (id, account_id, domain_id, sender, subject, mime, size, tags, metadata, require_tls, track_opens, track_clicks, track_unsubscribe, send_at, created_at)",
            15,
            "",
            part,
            |q, m| {
                q.bind(&m.id)
                    .bind(&m.account_id)
                    .bind(&m.domain_id)
                    .bind(&m.sender)
                    .bind(&m.subject)
                    .bind(&m.mime)
                    .bind(m.size)
                    .bind(&m.tags)
                    .bind(&m.metadata)
                    .bind(m.require_tls)
                    .bind(m.track_opens)
                    .bind(m.track_clicks)
                    .bind(m.track_unsubscribe)
                    .bind(m.send_at)
                    .bind(m.created_at)
            },
        )
        .await?;
    }
    let recipients: Vec<(&SealedMessage, &SealedRecipient)> = messages
        .iter()
        .flat_map(|m| m.recipients.iter().map(move |r| (*m, r)))
        .collect();
    insert_rows(
        &mut tx,
        "INSERT INTO recipients (id, message_id, account_id, address, address_lookup, kind, status, attempts, next_attempt_at, updated_at)",
        10,
        "",
        &recipients,
        |q, (m, r)| {
            q.bind(&r.id)
                .bind(&m.id)
                .bind(&m.account_id)
                .bind(&r.address)
                .bind(&r.address_lookup)
                .bind(r.kind)
                .bind(r.status)
                .bind(0_i64)
                .bind(r.next_attempt_at)
                .bind(m.created_at)
        },
    )
    .await?;
    let events: Vec<&SealedEvent> = messages.iter().flat_map(|m| &m.events).collect();
    insert_events(&mut tx, &events, &mut rollup).await?;
    // Usage of every period, whether or not a quota holds the message, and activity: one
    // statement per account and period in the batch.
    let mut usage: BTreeMap<(&str, QuotaPeriod, i64), i64> = BTreeMap::new();
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for m in messages {
        if m.queued > 0 {
            for period in QuotaPeriod::ALL {
                let start = period.start(Timestamp(m.created_at)).millis();
                *usage.entry((&m.account_id, *period, start)).or_default() += m.queued;
            }
        }
        let at = latest.entry(&m.account_id).or_insert(m.created_at);
        *at = (*at).max(m.created_at);
    }
    for ((account, period, start), queued) in usage {
        sqlx::query(
            "INSERT INTO quota_usage (account_id, period, period_start, recipients) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, period, period_start) DO UPDATE SET recipients = quota_usage.recipients + excluded.recipients",
        )
        .bind(account)
        .bind(period.as_str())
        .bind(start)
        .bind(queued)
        .execute(&mut *tx)
        .await?;
    }
    // Sending is activity (inactive accounts are deleted); written only when the mark is an
    // hour old.
    for (account, at) in latest {
        sqlx::query(
            "UPDATE accounts SET last_activity_at = $1, inactivity_notice_at = NULL WHERE id = $2 AND last_activity_at < $3",
        )
        .bind(at)
        .bind(account)
        .bind(at - ACTIVITY_GRANULARITY_MS)
        .execute(&mut *tx)
        .await?;
    }
    rollup.apply(&mut tx).await?;
    tx.commit().await?;
    Ok(refused)
}

/// What appending an event returns: its position.
#[derive(FromRow)]
struct EventSeqRow {
    seq: i64,
}

/// Appends one event and counts it in `rollup` (applied by the caller before it commits).
pub(crate) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    e: &SealedEvent,
    rollup: &mut Rollup,
) -> Result<()> {
    insert_events(tx, &[e], rollup).await
}

/// Appends events, counts them in `rollup`, and writes the outbox row of every webhook of
/// their accounts that wants them (an empty list wants all), in the same transaction: a
/// webhook never misses one. Outbox rows follow the events' order.
pub(crate) async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    events: &[&SealedEvent],
    rollup: &mut Rollup,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    for e in events {
        let tags: Vec<String> = serde_json::from_str(&e.tags).unwrap_or_default();
        rollup.add(
            &e.account_id,
            e.domain_id.as_deref(),
            &tags,
            e.created_at,
            e.metric,
        );
    }
    let rows = insert_rows(
        tx,
        "INSERT INTO events (account_id, type, message_id, recipient_id, recipient, recipient_lookup, tags, data, created_at)",
        9,
        "RETURNING seq",
        events,
        |q, e| {
            q.bind(&e.account_id)
                .bind(e.event_type)
                .bind(&e.message_id)
                .bind(&e.recipient_id)
                .bind(&e.recipient)
                .bind(&e.recipient_lookup)
                .bind(&e.tags)
                .bind(&e.data)
                .bind(e.created_at)
        },
    )
    .await?;
    let seqs: Vec<i64> = rows
        .iter()
        .map(|r| EventSeqRow::from_row(r).map(|r| r.seq))
        .collect::<Result<_, _>>()?;
    for chunk in seqs.chunks(MAX_BINDS) {
        let sql = format!(
            "INSERT INTO webhook_outbox (webhook_id, account_id, event_seq, event_type, attempts, next_attempt_at, created_at) \
             SELECT w.id, w.account_id, e.seq, e.type, 0, e.created_at, e.created_at FROM events e JOIN webhooks w ON w.account_id = e.account_id \
             WHERE e.seq IN ({}) AND (NOT EXISTS (SELECT 1 FROM webhook_events t WHERE t.webhook_id = w.id) \
             OR EXISTS (SELECT 1 FROM webhook_events t WHERE t.webhook_id = w.id AND t.event_type = e.type)) \
             AND (w.domain_id = '' OR EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id AND m.domain_id = w.domain_id)) \
             ORDER BY e.seq, w.id",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for seq in chunk {
            q = q.bind(*seq);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
