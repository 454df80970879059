//! Webhook endpoints and their outbox. Rows enter the outbox with the events themselves
//! (`commit::insert_event`); the dispatcher takes each endpoint's oldest pending row, so an
//! endpoint receives its events in the order they happened, and a failing endpoint holds
//! only its own queue.

use std::collections::HashMap;

use kuvert_core::Timestamp;
use kuvert_core::event::EventType;
use kuvert_core::id::{AccountId, DomainId, WebhookId};
use kuvert_core::webhook::{DeliveryState, WebhookFormat};
use sqlx::{Any, FromRow, Transaction};

use crate::accounts::parse_column;
use crate::events::{EVENT_COLUMNS, EventRecord, EventRow};
use crate::seal::AccountKey;
use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub account_id: AccountId,
    pub url: String,
    /// The event types sent, in the order of the types; empty: all.
    pub events: Vec<EventType>,
    pub signing_key: String,
    pub format: WebhookFormat,
    /// Only the events of this domain's messages; `None`: every event of the account.
    pub domain_id: Option<DomainId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An endpoint to register.
#[derive(Clone, Debug)]
pub struct NewWebhook<'a> {
    pub url: &'a str,
    /// Empty: every event.
    pub events: &'a [EventType],
    pub signing_key: &'a str,
    pub format: WebhookFormat,
    pub domain_id: Option<&'a DomainId>,
}

/// One event waiting for, or done with, one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: WebhookId,
    pub account_id: AccountId,
    pub event_seq: i64,
    pub event_type: EventType,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub done_at: Option<Timestamp>,
    pub state: DeliveryState,
    pub created_at: Timestamp,
}

const WEBHOOK_COLUMNS: &str =
    "id, account_id, url, signing_key, format, domain_id, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, account_id, event_seq, event_type, attempts, next_attempt_at, last_status, last_error, done_at, ok, created_at";

/// An endpoint as stored (`WEBHOOK_COLUMNS`), its signing key sealed.
#[derive(FromRow)]
struct WebhookRow {
    id: String,
    account_id: String,
    url: String,
    signing_key: Vec<u8>,
    format: String,
    domain_id: String,
    created_at: i64,
    updated_at: i64,
}

impl WebhookRow {
    /// The endpoint with the event types it wants (none: every event).
    fn open(self, key: &AccountKey, mut events: Vec<EventType>) -> Result<Webhook> {
        events.sort_unstable();
        Ok(Webhook {
            id: WebhookId::from_string(self.id),
            account_id: AccountId::from_string(self.account_id),
            url: self.url,
            events,
            signing_key: key.open_string(&self.signing_key)?,
            format: parse_column(&self.format)?,
            domain_id: (!self.domain_id.is_empty()).then(|| DomainId::from_string(self.domain_id)),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

/// An outbox row: the columns of `DELIVERY_COLUMNS`.
#[derive(FromRow)]
struct DeliveryRow {
    id: i64,
    webhook_id: String,
    account_id: String,
    event_seq: i64,
    event_type: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    done_at: Option<i64>,
    ok: Option<i64>,
    created_at: i64,
}

impl DeliveryRow {
    fn parse(self) -> Result<Delivery> {
        let r = self;
        Ok(Delivery {
            id: r.id,
            webhook_id: WebhookId::from_string(r.webhook_id),
            account_id: AccountId::from_string(r.account_id),
            event_seq: r.event_seq,
            event_type: parse_column(&r.event_type)?,
            attempts: r.attempts.max(0) as u32,
            next_attempt_at: Timestamp(r.next_attempt_at),
            last_status: r.last_status.map(|s| s as u16),
            last_error: r.last_error,
            done_at: r.done_at.map(Timestamp),
            // `ok`: taken by the endpoint, or given up; NULL while it is tried.
            state: match r.ok {
                None => DeliveryState::Pending,
                Some(0) => DeliveryState::Failed,
                Some(_) => DeliveryState::Delivered,
            },
            created_at: Timestamp(r.created_at),
        })
    }
}

/// The rows by which events find endpoint `webhook` (none: it wants every event), in place
/// of those it had.
async fn set_event_types(
    tx: &mut Transaction<'_, Any>,
    account: &AccountId,
    webhook: &str,
    events: &[EventType],
) -> Result<()> {
    sqlx::query("DELETE FROM webhook_events WHERE webhook_id = $1")
        .bind(webhook)
        .execute(&mut **tx)
        .await?;
    let mut distinct = events.to_vec();
    distinct.sort();
    distinct.dedup();
    for t in distinct {
        sqlx::query(
            "INSERT INTO webhook_events (webhook_id, account_id, event_type) VALUES ($1, $2, $3)",
        )
        .bind(webhook)
        .bind(account.as_str())
        .bind(t.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// An endpoint read from the database, opened with its account's key.
    async fn open_webhook(&self, row: WebhookRow) -> Result<Webhook> {
        let key = self
            .account_key(&AccountId::from_string(row.account_id.clone()))
            .await?;
        let types: Vec<String> =
            sqlx::query_scalar("SELECT event_type FROM webhook_events WHERE webhook_id = $1")
                .bind(&row.id)
                .fetch_all(self.pool())
                .await?;
        let events = types
            .iter()
            .map(|t| parse_column(t))
            .collect::<Result<_>>()?;
        row.open(&key, events)
    }

    /// The event types each of an account's endpoints wants, in one query.
    async fn event_types_by_webhook(
        &self,
        account: &AccountId,
    ) -> Result<HashMap<String, Vec<EventType>>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT webhook_id, event_type FROM webhook_events WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut out: HashMap<String, Vec<EventType>> = HashMap::new();
        for (webhook, t) in rows {
            out.entry(webhook).or_default().push(parse_column(&t)?);
        }
        Ok(out)
    }

    pub async fn create_webhook(
        &self,
        account: &AccountId,
        url: &str,
        events: &[EventType],
        signing_key: &str,
    ) -> Result<Webhook> {
        self.register_webhook(
            account,
            NewWebhook {
                url,
                events,
                signing_key,
                format: WebhookFormat::Kuvert,
                domain_id: None,
            },
        )
        .await
    }

    /// Registers an endpoint with its format and domain.
    pub async fn register_webhook(
        &self,
        account: &AccountId,
        new: NewWebhook<'_>,
    ) -> Result<Webhook> {
        let now = self.now();
        let id = WebhookId::generate(Timestamp(now));
        let key = self.account_key(account).await?;
        let mut tx = self.writer().begin().await?;
        sqlx::query(&format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
        ))
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(new.url)
        .bind(key.seal(new.signing_key.as_bytes()))
        .bind(new.format.as_str())
        .bind(new.domain_id.map_or("", DomainId::as_str))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        set_event_types(&mut tx, account, id.as_str(), new.events).await?;
        tx.commit().await?;
        self.webhook(account, id.as_str()).await
    }

    pub async fn webhook(&self, account: &AccountId, id: &str) -> Result<Webhook> {
        let row = sqlx::query_as::<_, WebhookRow>(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND account_id = $2"
        ))
        .bind(id)
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("webhook"))?;
        self.open_webhook(row).await
    }

    pub async fn list_webhooks(&self, account: &AccountId) -> Result<Vec<Webhook>> {
        let rows = sqlx::query_as::<_, WebhookRow>(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE account_id = $1 ORDER BY created_at, id"
        ))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        let key = self.account_key(account).await?;
        let mut types = self.event_types_by_webhook(account).await?;
        rows.into_iter()
            .map(|r| {
                let events = types.remove(&r.id).unwrap_or_default();
                r.open(&key, events)
            })
            .collect()
    }

    pub async fn update_webhook(
        &self,
        account: &AccountId,
        id: &str,
        url: Option<&str>,
        events: Option<&[EventType]>,
    ) -> Result<Webhook> {
        let current = self.webhook(account, id).await?;
        let events = events.unwrap_or(&current.events);
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "UPDATE webhooks SET url = $1, updated_at = $2 WHERE id = $3 AND account_id = $4",
        )
        .bind(url.unwrap_or(&current.url))
        .bind(self.now())
        .bind(id)
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
        set_event_types(&mut tx, account, id, events).await?;
        tx.commit().await?;
        self.webhook(account, id).await
    }

    /// Removes an endpoint and whatever it had not yet received.
    pub async fn delete_webhook(&self, account: &AccountId, id: &str) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("webhook"));
        }
        sqlx::query("DELETE FROM webhook_events WHERE webhook_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_outbox WHERE webhook_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        account: &AccountId,
        id: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        self.webhook(account, id).await?;
        let rows = sqlx::query_as::<_, DeliveryRow>(&format!("SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2"))
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(DeliveryRow::parse).collect()
    }

    /// The next delivery of each endpoint whose oldest pending one is due, taken for
    /// `hold_ms` (a dispatcher that dies leaves it due again then).
    pub async fn take_webhook_heads(&self, limit: u32, hold_ms: i64) -> Result<Vec<Delivery>> {
        let now = self.now();
        let rows = sqlx::query_as::<_, DeliveryRow>(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE id IN \
             (SELECT MIN(id) FROM webhook_outbox WHERE done_at IS NULL GROUP BY webhook_id) AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut taken = Vec::with_capacity(rows.len());
        for r in rows {
            let d = r.parse()?;
            let claimed = sqlx::query("UPDATE webhook_outbox SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at <= $3 AND done_at IS NULL")
                .bind(now + hold_ms)
                .bind(d.id)
                .bind(now)
                .execute(self.writer())
                .await?;
            if claimed.rows_affected() == 1 {
                taken.push(d);
            }
        }
        Ok(taken)
    }

    /// The pending deliveries of one endpoint after its head `after_id`, oldest first, whose
    /// events happened before `until`: what goes with the head when an endpoint takes events
    /// grouped (Mailjet's version 2 posts a second of events at once). Only the head is held;
    /// these stay behind it, so no other dispatcher takes them while the head is out.
    pub async fn webhook_followers(
        &self,
        webhook_id: &str,
        after_id: i64,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        sqlx::query_as::<_, DeliveryRow>(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE webhook_id = $1 AND id > $2 \
             AND done_at IS NULL AND created_at < $3 ORDER BY id LIMIT $4"
        ))
        .bind(webhook_id)
        .bind(after_id)
        .bind(until.millis())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(DeliveryRow::parse)
        .collect()
    }

    /// The outcome of one attempt: taken (`Ok`), to retry at `next`, or given up.
    pub async fn record_webhook_attempt(
        &self,
        id: i64,
        status: Option<u16>,
        error: Option<&str>,
        outcome: AttemptOutcome,
    ) -> Result<()> {
        let now = self.now();
        let (next, done_at, ok) = match outcome {
            AttemptOutcome::Taken => (now, Some(now), Some(1)),
            AttemptOutcome::Retry(at) => (at.millis(), None, None),
            AttemptOutcome::GiveUp => (now, Some(now), Some(0)),
        };
        sqlx::query("UPDATE webhook_outbox SET attempts = attempts + 1, last_status = $1, last_error = $2, next_attempt_at = $3, done_at = $4, ok = $5 WHERE id = $6")
            .bind(status.map(i64::from))
            .bind(error)
            .bind(next)
            .bind(done_at)
            .bind(ok)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// One event of an account, by its position.
    pub async fn event_by_seq(&self, account: &AccountId, seq: i64) -> Result<Option<EventRecord>> {
        let row = sqlx::query_as::<_, EventRow>(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq = $1 AND account_id = $2"
        ))
        .bind(seq)
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key = self.account_key(account).await?;
        Ok(Some(row.open(&key)?))
    }
}

/// What one webhook attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Taken,
    Retry(Timestamp),
    GiveUp,
}
