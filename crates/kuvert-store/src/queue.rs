//! The delivery queue: pending recipients taken by lease, and the outcome of each attempt
//! written with its event in one transaction.
//!
//! A lease is the recipient's `next_attempt_at` moved to the lease's end plus a claim token in
//! `lease_owner`. Nothing else marks it: if the worker dies, the recipient falls due again when
//! the lease ends. An outcome is applied only while the token still matches, so a worker whose
//! lease ran out cannot overwrite what the next holder did.

use std::time::Duration;

use kuvert_core::Timestamp;
use kuvert_core::event::{
    Bounce, Deferral, Delivery, EventDetails, Failure, RecipientStatus, SuppressionReason,
};
use kuvert_core::id::{AccountId, DomainId, MessageId, RecipientId};
use kuvert_core::tracking::Tracking;
use rand::Rng;
use sqlx::FromRow;

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::commit::{SealedEvent, insert_events};
use crate::contacts::{ContactMark, mark_contacts};
use crate::seal::AccountKey;
use crate::sql::placeholders;
use crate::stats::Rollup;
use crate::suppressions::suppress;
use crate::{Backend, Result, Store, StoreError};

/// One recipient, taken for delivery until `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub token: String,
    pub recipient_id: RecipientId,
    pub message_id: MessageId,
    pub account_id: AccountId,
    pub address: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub until: Timestamp,
}

/// What delivery needs of a message, unsealed.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub id: MessageId,
    pub account_id: AccountId,
    pub domain_id: DomainId,
    pub mime: Vec<u8>,
    pub require_tls: bool,
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    /// The IP pool to send from: the domain's, else the account's.
    pub pool: Option<String>,
    /// What each recipient's copy carries: with any, each recipient gets a copy of its own,
    /// its links written into `mime`.
    pub tracking: Tracking,
}

/// How one attempt ended for one recipient, with what its event tells.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Delivered(Delivery),
    /// Tried again at `next_attempt_at`.
    Deferred {
        next_attempt_at: Timestamp,
        why: Deferral,
    },
    /// Refused for good by the receiving server; a hard bounce suppresses the address.
    Bounced(Bounce),
    /// Given up without a refusal: expired, TLS required but not offered, no route.
    Failed(Failure),
}

impl Outcome {
    fn status(&self) -> RecipientStatus {
        match self {
            Self::Delivered(_) => RecipientStatus::Delivered,
            Self::Deferred { .. } => RecipientStatus::Deferred,
            Self::Bounced(_) => RecipientStatus::Bounced,
            Self::Failed(_) => RecipientStatus::Failed,
        }
    }
    fn metric(&self) -> &'static str {
        match self {
            Self::Delivered(_) => "delivered",
            Self::Deferred { .. } => "deferred",
            Self::Bounced(b) if b.class.suppresses() => "bounced_hard",
            Self::Bounced(_) => "bounced_soft",
            Self::Failed(_) => "failed",
        }
    }
    fn suppresses(&self) -> bool {
        matches!(self, Self::Bounced(b) if b.class.suppresses())
    }
}

/// An outcome to record: the lease it ends and what happened.
#[derive(Clone, Debug)]
pub struct OutcomeRecord {
    pub lease: Lease,
    /// The message's tags and sending domain, for the statistics.
    pub tags: Vec<String>,
    pub domain_id: DomainId,
    pub outcome: Outcome,
}

impl OutcomeRecord {
    /// The event's details: what the outcome tells, with the attempt's number and, for a
    /// deferral, when the next is due.
    pub fn details(&self) -> EventDetails {
        let mut details = match &self.outcome {
            Outcome::Delivered(d) => EventDetails::Delivered(d.clone()),
            Outcome::Deferred {
                next_attempt_at,
                why,
            } => EventDetails::Deferred(Deferral {
                next_attempt_at: Some(next_attempt_at.to_rfc3339()),
                ..why.clone()
            }),
            Outcome::Bounced(b) => EventDetails::Bounced(b.clone()),
            Outcome::Failed(f) => EventDetails::Failed(f.clone()),
        };
        details.set_attempt(self.lease.attempts + 1);
        details
    }
}

/// A recipient just leased (`lease_due`'s RETURNING), its address sealed.
#[derive(FromRow)]
struct LeaseRow {
    id: String,
    message_id: String,
    account_id: String,
    address: Vec<u8>,
    attempts: i64,
}

impl LeaseRow {
    fn open(self, key: &AccountKey, token: &str, until: i64) -> Result<Lease> {
        Ok(Lease {
            token: token.to_owned(),
            recipient_id: RecipientId::from_string(self.id),
            message_id: MessageId::from_string(self.message_id),
            account_id: AccountId::from_string(self.account_id),
            address: key.open_string(&self.address)?,
            attempts: self.attempts.max(0) as u32,
            until: Timestamp(until),
        })
    }
}

/// A message as delivery reads it, its content sealed; `pool` is the domain's or else the
/// account's.
#[derive(FromRow)]
struct OutgoingRow {
    id: String,
    account_id: String,
    domain_id: String,
    mime: Option<Vec<u8>>,
    require_tls: i64,
    tags: String,
    created_at: i64,
    track_opens: Option<i64>,
    track_clicks: Option<i64>,
    track_unsubscribe: i64,
    pool: Option<String>,
}

impl OutgoingRow {
    fn open(self, id: MessageId, key: &AccountKey) -> Result<Outgoing> {
        Ok(Outgoing {
            id,
            account_id: AccountId::from_string(self.account_id),
            domain_id: DomainId::from_string(self.domain_id),
            mime: key.open(&self.mime.ok_or(StoreError::NotFound("message content"))?)?,
            require_tls: self.require_tls != 0,
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            created_at: Timestamp(self.created_at),
            pool: self.pool,
            tracking: Tracking {
                opens: self.track_opens.unwrap_or(0) != 0,
                clicks: self.track_clicks.unwrap_or(0) != 0,
                unsubscribe: self.track_unsubscribe != 0,
            },
        })
    }
}

/// `NODE.RANDOM`: the node part lets a restarted node take back what it held when it died.
fn claim_token(node: &str) -> String {
    let mut rng = rand::thread_rng();
    let random: String = (0..16)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect();
    format!("{node}.{random}")
}

impl Store {
    /// Takes up to `limit` recipients that are due now, the earliest first, for `lease_for`,
    /// for the node `node`. Two callers, in this process or another on the same database,
    /// never get the same recipient while its lease runs.
    pub async fn lease_due(
        &self,
        node: &str,
        limit: u32,
        lease_for: Duration,
    ) -> Result<Vec<Lease>> {
        let now = self.now();
        let until = now + lease_for.as_millis() as i64;
        let token = claim_token(node);
        // PostgreSQL: SKIP LOCKED lets concurrent pickers take disjoint rows without waiting.
        // SQLite: one writer at a time, and the statement is atomic.
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE recipients SET lease_owner = $1, next_attempt_at = $2 \
             WHERE id IN (SELECT id FROM recipients WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $3 \
                          ORDER BY next_attempt_at LIMIT $4 {lock}) \
             RETURNING id, message_id, account_id, address, attempts"
        );
        let rows = sqlx::query_as::<_, LeaseRow>(&sql)
            .bind(&token)
            .bind(until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.writer())
            .await?;
        let rows = self.hold_inactive(rows, &token, now).await?;
        let mut leases = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for r in rows {
            let id = r.id.clone();
            let lease = self
                .account_key(&AccountId::from_string(r.account_id.clone()))
                .await
                .and_then(|key| r.open(&key, &token, until));
            match lease {
                Ok(l) => leases.push(l),
                Err(e) => {
                    tracing::error!(recipient = %id, error = %e, "a queued recipient cannot be read; it fails alone");
                    unreadable.push(id);
                }
            }
        }
        // One that cannot be read would fail the same way at every lease: it fails for good
        // now, and the rest of the batch goes on.
        for chunk in unreadable.chunks(1000) {
            let sql = format!(
                "UPDATE recipients SET status = $1, next_attempt_at = NULL, lease_owner = NULL, updated_at = $2 \
                 WHERE lease_owner = $3 AND id IN ({})",
                placeholders(4, chunk.len())
            );
            let mut q = sqlx::query(&sql)
                .bind(RecipientStatus::Failed.as_str())
                .bind(now)
                .bind(&token);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(self.writer()).await?;
        }
        Ok(leases)
    }

    /// The message a lease belongs to, with its content unsealed.
    pub async fn outgoing(&self, id: &MessageId) -> Result<Outgoing> {
        self.outgoing_many(std::slice::from_ref(id))
            .await?
            .remove(id)
            .ok_or(StoreError::NotFound("message"))?
    }

    /// Of what a lease took, the recipients of accounts that may not send now (restricted or
    /// suspended) are held instead, and the rest returned. A recipient can be due while its
    /// account is on hold: its message was committed as the hold began, or it was deferred on
    /// the wire then.
    async fn hold_inactive(
        &self,
        rows: Vec<LeaseRow>,
        token: &str,
        now: i64,
    ) -> Result<Vec<LeaseRow>> {
        let mut accounts: Vec<&str> = rows.iter().map(|r| r.account_id.as_str()).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut inactive: Vec<String> = Vec::new();
        for chunk in accounts.chunks(1000) {
            let sql = format!(
                "SELECT id FROM accounts WHERE status <> 'active' AND id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for a in chunk {
                q = q.bind(*a);
            }
            inactive.extend(q.fetch_all(self.pool()).await?);
        }
        if inactive.is_empty() {
            return Ok(rows);
        }
        // Only while the account is still on hold: one lifted meanwhile has released its held
        // recipients, and these go out with this lease.
        let mut held: Vec<String> = Vec::new();
        for account in &inactive {
            held.extend(
                sqlx::query_scalar::<_, String>(
                    "UPDATE recipients SET status = 'held', next_attempt_at = NULL, lease_owner = NULL, updated_at = $1 \
                     WHERE lease_owner = $2 AND account_id = $3 \
                     AND EXISTS (SELECT 1 FROM accounts WHERE id = $3 AND status <> 'active') RETURNING id",
                )
                .bind(now)
                .bind(token)
                .bind(account)
                .fetch_all(self.writer())
                .await?,
            );
        }
        Ok(rows.into_iter().filter(|r| !held.contains(&r.id)).collect())
    }

    /// The messages of a batch of leases in one query; one that cannot be opened is an
    /// error in its place, one that is gone is missing.
    pub async fn outgoing_many(
        &self,
        ids: &[MessageId],
    ) -> Result<HashMap<MessageId, Result<Outgoing>>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let sql = format!(
                "SELECT m.id, m.account_id, m.domain_id, m.mime, m.require_tls, m.tags, m.created_at, m.track_opens, m.track_clicks, m.track_unsubscribe, COALESCE(d.pool, a.pool) AS pool \
                 FROM messages m JOIN accounts a ON a.id = m.account_id LEFT JOIN domains d ON d.id = m.domain_id WHERE m.id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, OutgoingRow>(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for r in q.fetch_all(self.pool()).await? {
                let id = MessageId::from_string(r.id.clone());
                let message = self
                    .account_key(&AccountId::from_string(r.account_id.clone()))
                    .await
                    .and_then(|key| r.open(id.clone(), &key));
                out.insert(id, message);
            }
        }
        Ok(out)
    }

    /// Records outcomes in one transaction: recipient state, event, and for hard bounces the
    /// suppression. Returns, for each record, whether its lease was still held; an outcome
    /// whose lease was lost is still logged as an event (it happened), but leaves the
    /// recipient to the lease's new holder, unless the recipient is gone (erased): then
    /// nothing is written.
    pub async fn record_outcomes(&self, records: &[OutcomeRecord]) -> Result<Vec<bool>> {
        let now = self.now();
        let mut sealed = Vec::with_capacity(records.len());
        for rec in records {
            let key = self.account_key(&rec.lease.account_id).await?;
            let lookup = self.lookup_hash(&rec.lease.address);
            let address = key.seal(rec.lease.address.as_bytes());
            let details = rec.details();
            let event = SealedEvent {
                account_id: rec.lease.account_id.to_string(),
                event_type: details.event_type().as_str(),
                message_id: Some(rec.lease.message_id.to_string()),
                recipient_id: Some(rec.lease.recipient_id.to_string()),
                recipient: Some(address.clone()),
                recipient_lookup: Some(lookup.clone()),
                tags: serde_json::to_string(&rec.tags).expect("strings serialise"),
                data: Some(key.seal(&details.to_bytes())),
                created_at: now,
                metric: rec.outcome.metric(),
                domain_id: Some(rec.domain_id.to_string()),
            };
            let mark = match &rec.outcome {
                Outcome::Delivered(_) => Some(ContactMark::Sent),
                Outcome::Bounced(b) if b.class.suppresses() => Some(ContactMark::Bounced),
                Outcome::Bounced(_) => Some(ContactMark::SoftBounce),
                _ => None,
            };
            let contact = mark.map(|m| (m, key.lookup(&rec.lease.address)));
            sealed.push((event, address, lookup, contact));
        }
        // Recipients with the same new state under the same lease: one UPDATE, which says
        // (RETURNING) whose lease still held.
        let mut groups: BTreeMap<(&str, Option<i64>, &str), Vec<&str>> = BTreeMap::new();
        for rec in records {
            let next = match rec.outcome {
                Outcome::Deferred {
                    next_attempt_at, ..
                } => Some(next_attempt_at.millis()),
                _ => None,
            };
            groups
                .entry((rec.outcome.status().as_str(), next, &rec.lease.token))
                .or_default()
                .push(rec.lease.recipient_id.as_str());
        }
        let mut tx = self.writer().begin().await?;
        // Whose lease held: (token, recipient), as a recipient may come twice in one batch,
        // under its old lease and its new one.
        let mut updated: HashSet<(&str, String)> = HashSet::new();
        for ((status, next, token), ids) in &groups {
            for chunk in ids.chunks(1000) {
                let sql = format!(
                    "UPDATE recipients SET status = $1, attempts = attempts + 1, next_attempt_at = $2, lease_owner = NULL, updated_at = $3 \
                     WHERE lease_owner = $4 AND id IN ({}) RETURNING id",
                    placeholders(5, chunk.len())
                );
                let mut q = sqlx::query_scalar::<_, String>(&sql)
                    .bind(*status)
                    .bind(*next)
                    .bind(now)
                    .bind(*token);
                for id in chunk {
                    q = q.bind(*id);
                }
                for id in q.fetch_all(&mut *tx).await? {
                    updated.insert((*token, id));
                }
            }
        }
        // A recipient whose row is gone (its address erased while it was in flight) leaves
        // no trace: its outcome would write the address back.
        let lost: Vec<&str> = records
            .iter()
            .filter(|r| {
                !updated.contains(&(r.lease.token.as_str(), r.lease.recipient_id.to_string()))
            })
            .map(|r| r.lease.recipient_id.as_str())
            .collect();
        let mut gone: HashSet<&str> = lost.iter().copied().collect();
        for chunk in lost.chunks(500) {
            let sql = format!(
                "SELECT id FROM recipients WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for id in q.fetch_all(&mut *tx).await? {
                gone.remove(id.as_str());
            }
        }
        let kept = |rec: &OutcomeRecord| !gone.contains(rec.lease.recipient_id.as_str());
        let mut rollup = Rollup::default();
        let events: Vec<&SealedEvent> = records
            .iter()
            .zip(&sealed)
            .filter(|(r, _)| kept(r))
            .map(|(_, (e, _, _, _))| e)
            .collect();
        insert_events(&mut tx, &events, &mut rollup).await?;
        // The contacts of these addresses: what their engagement summary and status show.
        let mut marks: BTreeMap<(&str, ContactMark), Vec<&str>> = BTreeMap::new();
        for (rec, (_, _, _, contact)) in records.iter().zip(&sealed) {
            if let Some((mark, lookup)) = contact
                && kept(rec)
            {
                marks
                    .entry((rec.lease.account_id.as_str(), *mark))
                    .or_default()
                    .push(lookup);
            }
        }
        for ((account, mark), lookups) in &marks {
            mark_contacts(&mut tx, account, lookups, *mark, now).await?;
        }
        for (rec, (_, address, lookup, _)) in records.iter().zip(&sealed) {
            if rec.outcome.suppresses() && kept(rec) {
                let account = rec.lease.account_id.as_str();
                suppress(
                    &mut tx,
                    account,
                    lookup,
                    address,
                    SuppressionReason::Bounce,
                    now,
                )
                .await?;
            }
        }
        self.commit_events(tx, rollup).await?;
        Ok(records
            .iter()
            .map(|r| updated.contains(&(r.lease.token.as_str(), r.lease.recipient_id.to_string())))
            .collect())
    }

    /// At start: the leases this node held when it stopped are void (nothing of that process
    /// runs any more), so their recipients are due at once rather than when the leases end.
    /// Returns how many there were: the most that can have been delivered twice.
    pub async fn reclaim_leases(&self, node: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE recipients SET next_attempt_at = $1, lease_owner = NULL WHERE lease_owner LIKE $2",
        )
        .bind(self.now())
        .bind(format!("{node}.%"))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Gives leases back unused (shutdown): the recipients are due again at once.
    pub async fn release(&self, leases: &[Lease]) -> Result<()> {
        let now = self.now();
        for l in leases {
            sqlx::query(
                "UPDATE recipients SET next_attempt_at = $1, lease_owner = NULL WHERE id = $2 AND lease_owner = $3",
            )
            .bind(now)
            .bind(l.recipient_id.as_str())
            .bind(&l.token)
            .execute(self.writer())
            .await?;
        }
        Ok(())
    }
}
