//! Group commit. Every accepted message must be durable before it is acknowledged, and a
//! durable commit costs a disk flush. One committer task takes whatever messages are waiting,
//! writes them all in one transaction and answers each caller: under load, many messages share
//! one flush; idle, a message waits for nothing but its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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
    pub template: Option<Vec<u8>>,
    pub size: i64,
    pub tags: String,
    pub metadata: Option<Vec<u8>>,
    pub require_tls: i64,
    pub track_opens: Option<i64>,
    pub track_clicks: Option<i64>,
    pub send_at: Option<i64>,
    pub created_at: i64,
    pub month_start: i64,
    /// Recipients that count against the quota.
    pub queued: i64,
    pub recipients: Vec<SealedRecipient>,
    pub events: Vec<SealedEvent>,
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

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    messages: AtomicU64,
}

pub(crate) struct Committer {
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl Committer {
    pub fn start(pool: AnyPool) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let counters = Arc::new(Counters::default());
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
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            messages: self.counters.messages.load(Ordering::Relaxed),
        }
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Job>, counters: Arc<Counters>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let messages: Vec<&SealedMessage> = batch.iter().map(|(m, _)| m).collect();
        match write(&pool, &messages).await {
            Ok(()) => {
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters
                    .messages
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            // One bad message must not fail the others: retry each on its own.
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "group commit failed; committing one by one");
                for (m, reply) in batch.drain(..) {
                    let result = write(&pool, &[&m]).await;
                    if result.is_ok() {
                        counters.transactions.fetch_add(1, Ordering::Relaxed);
                        counters.messages.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// How stale `accounts.last_activity_at` may be.
const ACTIVITY_GRANULARITY_MS: i64 = 3_600_000;

async fn write(pool: &AnyPool, messages: &[&SealedMessage]) -> Result<()> {
    let mut tx = pool.begin().await?;
    let mut rollup = Rollup::default();
    for m in messages {
        insert_message(&mut tx, m, &mut rollup).await?;
    }
    // Sending is activity (inactive accounts are deleted, seed 000): one statement per
    // account in the batch, and a write only when the mark is an hour old.
    let mut latest: Vec<(&str, i64)> = Vec::new();
    for m in messages {
        match latest.iter_mut().find(|(a, _)| *a == m.account_id) {
            Some((_, at)) => *at = (*at).max(m.created_at),
            None => latest.push((&m.account_id, m.created_at)),
        }
    }
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
    Ok(())
}

async fn insert_message(
    tx: &mut Transaction<'_, Any>,
    m: &SealedMessage,
    rollup: &mut Rollup,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO messages (id, account_id, domain_id, sender, subject, mime, size, tags, metadata, require_tls, track_opens, track_clicks, send_at, created_at, template) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&m.id)
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
    .bind(m.send_at)
    .bind(m.created_at)
    .bind(&m.template)
    .execute(&mut **tx)
    .await?;
    for r in &m.recipients {
        sqlx::query(
            "INSERT INTO recipients (id, message_id, account_id, address, address_lookup, kind, status, attempts, next_attempt_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
        )
        .bind(&r.id)
        .bind(&m.id)
        .bind(&m.account_id)
        .bind(&r.address)
        .bind(&r.address_lookup)
        .bind(r.kind)
        .bind(r.status)
        .bind(r.next_attempt_at)
        .bind(m.created_at)
        .execute(&mut **tx)
        .await?;
    }
    for e in &m.events {
        insert_event(tx, e, rollup).await?;
    }
    if m.queued > 0 {
        sqlx::query(
            "INSERT INTO usage (account_id, month_start, recipients) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, month_start) DO UPDATE SET recipients = usage.recipients + excluded.recipients",
        )
        .bind(&m.account_id)
        .bind(m.month_start)
        .bind(m.queued)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Appends an event and counts it in `rollup` (applied by the caller before it commits).
pub(crate) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    e: &SealedEvent,
    rollup: &mut Rollup,
) -> Result<()> {
    let tags: Vec<String> = serde_json::from_str(&e.tags).unwrap_or_default();
    rollup.add(
        &e.account_id,
        e.domain_id.as_deref(),
        &tags,
        e.created_at,
        e.metric,
    );
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO events (account_id, type, message_id, recipient_id, recipient, recipient_lookup, tags, data, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
    )
    .bind(&e.account_id)
    .bind(e.event_type)
    .bind(&e.message_id)
    .bind(&e.recipient_id)
    .bind(&e.recipient)
    .bind(&e.recipient_lookup)
    .bind(&e.tags)
    .bind(&e.data)
    .bind(e.created_at)
    .fetch_one(&mut **tx)
    .await?;
    // The outbox of every webhook of the account that wants this type (an empty list wants
    // all), written with the event: a webhook never misses one.
    sqlx::query(
        "INSERT INTO webhook_outbox (webhook_id, account_id, event_seq, event_type, attempts, next_attempt_at, created_at) \
         SELECT id, account_id, $1, $2, 0, $3, $3 FROM webhooks WHERE account_id = $4 AND (events = '[]' OR events LIKE $5)",
    )
    .bind(seq)
    .bind(e.event_type)
    .bind(e.created_at)
    .bind(&e.account_id)
    .bind(format!("%\"{}\"%", e.event_type))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
