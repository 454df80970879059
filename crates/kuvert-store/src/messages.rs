use kuvert_core::Timestamp;
use kuvert_core::event::{Dropped, EventDetails, EventType, RecipientKind, RecipientStatus};
use kuvert_core::id::{AccountId, DomainId, MessageId, RecipientId};
use kuvert_core::quota::{Quota, QuotaPeriod};
use kuvert_core::tracking::Tracking;
use serde_json::{Map, Value};
use sqlx::FromRow;

use crate::accounts::parse_column;
use crate::commit::{SealedEvent, SealedMessage, SealedRecipient};
use crate::seal::AccountKey;
use crate::{Result, Store, StoreError};

pub struct NewRecipient {
    pub id: RecipientId,
    pub address: String,
    pub kind: RecipientKind,
    /// `Queued`, or `Dropped` with the reason (suppressed) when it will not be sent.
    pub status: RecipientStatus,
    pub drop_reason: Option<String>,
}

pub struct NewMessage {
    pub id: MessageId,
    pub account_id: AccountId,
    pub domain_id: DomainId,
    pub sender: String,
    pub subject: String,
    pub mime: Vec<u8>,
    pub tags: Vec<String>,
    pub metadata: Map<String, Value>,
    pub require_tls: bool,
    /// What each recipient's copy carries; written into `mime` at delivery.
    pub tracking: Tracking,
    pub send_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub recipients: Vec<NewRecipient>,
    /// The account's quotas: the commit refuses the message if its queued recipients would
    /// take a period's usage past one (checked in the transaction, so concurrent senders
    /// cannot overshoot it together). Empty: not held to any (its recipients still count).
    pub quotas: Vec<Quota>,
    /// A campaign's copy for one contact: committed with a row that refuses a second.
    pub campaign: Option<CampaignCopy>,
}

/// Which campaign a message is the copy of, and for which contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignCopy {
    pub campaign: kuvert_core::id::CampaignId,
    pub contact: kuvert_core::id::ContactId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientView {
    pub id: RecipientId,
    pub email: String,
    pub kind: RecipientKind,
    pub status: RecipientStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MessageView {
    pub id: MessageId,
    pub from: String,
    pub subject: String,
    pub size: i64,
    pub tags: Vec<String>,
    pub metadata: Map<String, Value>,
    pub send_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// `None` once retention removed the content.
    pub mime: Option<Vec<u8>>,
    pub recipients: Vec<RecipientView>,
}

/// A message as `message` reads it, its personal values and content sealed.
#[derive(FromRow)]
struct MessageRow {
    id: String,
    sender: Vec<u8>,
    subject: Vec<u8>,
    size: i64,
    tags: String,
    metadata: Option<Vec<u8>>,
    send_at: Option<i64>,
    created_at: i64,
    mime: Option<Vec<u8>>,
}

impl MessageRow {
    fn open(self, key: &AccountKey, recipients: Vec<RecipientView>) -> Result<MessageView> {
        let metadata = match key.open_opt(self.metadata)? {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| StoreError::Sealing(e.to_string()))?
            }
            None => Map::new(),
        };
        Ok(MessageView {
            id: MessageId::from_string(self.id),
            from: key.open_string(&self.sender)?,
            subject: key.open_string(&self.subject)?,
            size: self.size,
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            metadata,
            send_at: self.send_at.map(Timestamp),
            created_at: Timestamp(self.created_at),
            mime: self.mime.map(|m| key.open(&m)).transpose()?,
            recipients,
        })
    }
}

/// A recipient of a message, its address sealed.
#[derive(FromRow)]
struct RecipientRow {
    id: String,
    address: Vec<u8>,
    kind: String,
    status: String,
    attempts: i64,
    next_attempt_at: Option<i64>,
    updated_at: i64,
}

impl RecipientRow {
    fn open(self, key: &AccountKey) -> Result<RecipientView> {
        Ok(RecipientView {
            id: RecipientId::from_string(self.id),
            email: key.open_string(&self.address)?,
            kind: parse_column(&self.kind)?,
            status: parse_column(&self.status)?,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at.map(Timestamp),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

impl Store {
    /// Stores a message, one row per recipient and their first events, durably: it returns
    /// only after the commit. Concurrent calls are committed together (group commit).
    /// Sealing happens here, on the caller's task, so the single committer only writes.
    pub async fn commit_message(&self, m: NewMessage) -> Result<()> {
        let key = self.account_key(&m.account_id).await?;
        let tags = serde_json::to_string(&m.tags).expect("strings serialise");
        let now = m.created_at.millis();
        let due = m.send_at.map_or(now, |t| t.millis().max(now));
        let mut recipients = Vec::with_capacity(m.recipients.len());
        let mut events = Vec::with_capacity(m.recipients.len());
        let mut queued = 0i64;
        for r in &m.recipients {
            let lookup = self.lookup_hash(&r.address);
            let sealed_address = key.seal(r.address.as_bytes());
            let (event_type, data) = if r.status == RecipientStatus::Dropped {
                let details = EventDetails::Dropped(Dropped {
                    reason: r.drop_reason.clone(),
                });
                (EventType::Dropped, Some(details.to_bytes()))
            } else {
                queued += 1;
                (EventType::Accepted, None)
            };
            events.push(SealedEvent {
                account_id: m.account_id.to_string(),
                event_type: event_type.as_str(),
                message_id: Some(m.id.to_string()),
                recipient_id: Some(r.id.to_string()),
                recipient: Some(sealed_address.clone()),
                recipient_lookup: Some(lookup.clone()),
                tags: tags.clone(),
                data: data.map(|d| key.seal(&d)),
                created_at: now,
                metric: event_type.as_str(),
                domain_id: Some(m.domain_id.to_string()),
            });
            recipients.push(SealedRecipient {
                id: r.id.to_string(),
                address: sealed_address,
                address_lookup: lookup,
                kind: r.kind.as_str(),
                status: r.status.as_str(),
                next_attempt_at: (r.status == RecipientStatus::Queued).then_some(due),
            });
        }
        let sealed = SealedMessage {
            id: m.id.to_string(),
            account_id: m.account_id.to_string(),
            domain_id: m.domain_id.to_string(),
            sender: key.seal(m.sender.as_bytes()),
            subject: key.seal(m.subject.as_bytes()),
            size: m.mime.len() as i64,
            mime: key.seal(&m.mime),
            tags,
            metadata: (!m.metadata.is_empty())
                .then(|| key.seal(Value::Object(m.metadata).to_string().as_bytes())),
            require_tls: i64::from(m.require_tls),
            track_opens: i64::from(m.tracking.opens),
            track_clicks: i64::from(m.tracking.clicks),
            track_unsubscribe: i64::from(m.tracking.unsubscribe),
            send_at: m.send_at.map(Timestamp::millis),
            created_at: now,
            quotas: m.quotas,
            queued,
            recipients,
            events,
            campaign: m
                .campaign
                .map(|c| (c.campaign.to_string(), c.contact.to_string())),
        };
        self.0.committer.commit(sealed).await?;
        self.events_written();
        Ok(())
    }

    pub async fn message(&self, account: &AccountId, id: &str) -> Result<MessageView> {
        let row = sqlx::query_as::<_, MessageRow>(
            "SELECT id, sender, subject, size, tags, metadata, send_at, created_at, mime FROM messages WHERE id = $1 AND account_id = $2",
        )
        .bind(id)
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("message"))?;
        let key = self.account_key(account).await?;
        let rows = sqlx::query_as::<_, RecipientRow>(
            "SELECT id, address, kind, status, attempts, next_attempt_at, updated_at FROM recipients WHERE message_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let recipients = rows
            .into_iter()
            .map(|r| r.open(&key))
            .collect::<Result<Vec<_>>>()?;
        row.open(&key, recipients)
    }

    /// One recipient of the account's messages by its id, with the id of its message
    /// (Mailjet's API numbers each recipient's copy as a message of its own).
    pub async fn recipient(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<(MessageId, RecipientView)> {
        #[derive(FromRow)]
        struct Row {
            message_id: String,
            #[sqlx(flatten)]
            recipient: RecipientRow,
        }
        let row = sqlx::query_as::<_, Row>(
            "SELECT message_id, id, address, kind, status, attempts, next_attempt_at, updated_at FROM recipients WHERE id = $1 AND account_id = $2",
        )
        .bind(id)
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("message"))?;
        let key = self.account_key(account).await?;
        Ok((
            MessageId::from_string(row.message_id),
            row.recipient.open(&key)?,
        ))
    }

    /// Recipients of the account's messages by id, with their messages' ids, one statement
    /// for a page (at most 1,000 ids); ids of other accounts are not in the answer.
    pub async fn recipients(
        &self,
        account: &AccountId,
        ids: &[RecipientId],
    ) -> Result<std::collections::HashMap<RecipientId, (MessageId, RecipientView)>> {
        #[derive(FromRow)]
        struct Row {
            message_id: String,
            #[sqlx(flatten)]
            recipient: RecipientRow,
        }
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(out);
        }
        let key = self.account_key(account).await?;
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT message_id, id, address, kind, status, attempts, next_attempt_at, updated_at FROM recipients WHERE account_id = $1 AND id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query_as::<_, Row>(&sql).bind(account.as_str());
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for row in q.fetch_all(self.pool()).await? {
                let r = row.recipient.open(&key)?;
                out.insert(r.id.clone(), (MessageId::from_string(row.message_id), r));
            }
        }
        Ok(out)
    }

    /// What a list of events shows of each of their messages (sender, subject, size, tags,
    /// metadata), one statement for a page, without the content. Ids of other accounts, or
    /// of messages gone, are not in the answer.
    pub async fn message_summaries(
        &self,
        account: &AccountId,
        ids: &[MessageId],
    ) -> Result<std::collections::HashMap<MessageId, MessageView>> {
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(out);
        }
        let key = self.account_key(account).await?;
        // A page is at most a few hundred events; the bound keeps one statement's parameters
        // well within both databases' limits.
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT id, sender, subject, size, tags, metadata, send_at, created_at, NULL AS mime FROM messages WHERE account_id = $1 AND id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query_as::<_, MessageRow>(&sql).bind(account.as_str());
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for row in q.fetch_all(self.pool()).await? {
                let view = row.open(&key, vec![])?;
                out.insert(view.id.clone(), view);
            }
        }
        Ok(out)
    }

    /// The ids of an account's messages in id order, `limit` after `after` (for the export).
    pub async fn message_ids(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MessageId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(account.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().map(MessageId::from_string).collect())
    }

    /// Recipients sent to in the `period` holding `at` (quotas count recipients, not
    /// messages).
    pub async fn usage(
        &self,
        account: &AccountId,
        period: QuotaPeriod,
        at: Timestamp,
    ) -> Result<u64> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT recipients FROM quota_usage WHERE account_id = $1 AND period = $2 AND period_start = $3",
        )
        .bind(account.as_str())
        .bind(period.as_str())
        .bind(period.start(at).millis())
        .fetch_optional(self.pool())
        .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Recipients waiting for delivery, for the metrics endpoint.
    /// Recipients waiting for delivery (queued, deferred or in flight).
    pub async fn queue_depth(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            // Through the partial index of waiting recipients: the cost follows the queue,
            // not every recipient ever sent.
            QUEUE_DEPTH_SQL,
        )
        .fetch_one(self.pool())
        .await?)
    }

    pub fn commit_stats(&self) -> crate::CommitStats {
        self.0.committer.stats()
    }

    /// Registers group commit's counters: messages per transaction is their ratio.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let c = &self.0.committer.counters;
        registry.register(
            "kuvert_commit_transactions",
            "Group-commit transactions",
            c.transactions.clone(),
        );
        registry.register(
            "kuvert_commit_messages",
            "Messages written by group commit",
            c.messages.clone(),
        );
    }
}

/// `queue_depth`'s statement, public for the test that checks its plan.
pub const QUEUE_DEPTH_SQL: &str =
    "SELECT COUNT(*) FROM recipients WHERE next_attempt_at IS NOT NULL";
