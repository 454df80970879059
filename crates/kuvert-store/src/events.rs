use kuvert_core::Timestamp;
use kuvert_core::event::{EventDetails, EventType};
use kuvert_core::id::{AccountId, MessageId, RecipientId};
use serde_json::{Map, Value};
use sqlx::FromRow;

use crate::accounts::parse_column;
use crate::seal::AccountKey;
use crate::{Result, Store, StoreError};

/// Which events to list. All given conditions must hold.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub types: Vec<EventType>,
    pub recipient: Option<String>,
    pub message_id: Option<String>,
    /// Only the events of one recipient (with `message_id`, whose index finds them).
    pub recipient_id: Option<String>,
    pub tag: Option<String>,
    /// Only events of messages sent from this domain (by its id).
    pub domain: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Only events older than this position (a `next` of an earlier page).
    pub before: Option<i64>,
    /// Only events newer than this position (the live log's last one).
    pub after: Option<i64>,
    /// Oldest first (the live log) rather than newest first.
    pub oldest_first: bool,
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub event_type: EventType,
    pub message_id: Option<MessageId>,
    pub recipient_id: Option<RecipientId>,
    pub recipient: Option<String>,
    pub tags: Vec<String>,
    pub details: EventDetails,
    pub created_at: Timestamp,
}

impl EventRecord {
    /// The details as the JSON object that the API, webhooks and the live log show.
    pub fn data(&self) -> Map<String, Value> {
        self.details.to_json()
    }
}

pub struct EventPage {
    pub items: Vec<EventRecord>,
    pub next: Option<i64>,
}

/// Escapes LIKE wildcards so a tag is matched literally.
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The columns of an event, as [`EventRow`] reads them.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, type, message_id, recipient_id, recipient, tags, data, created_at";

/// An event as stored, its recipient and details sealed under its account's key.
#[derive(FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    #[sqlx(rename = "type")]
    event_type: String,
    message_id: Option<String>,
    recipient_id: Option<String>,
    recipient: Option<Vec<u8>>,
    tags: String,
    data: Option<Vec<u8>>,
    created_at: i64,
}

impl EventRow {
    /// The event, opened with its account's key.
    pub(crate) fn open(self, key: &AccountKey) -> Result<EventRecord> {
        let event_type: EventType = parse_column(&self.event_type)?;
        let data = match key.open_opt(self.data)? {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| StoreError::Sealing(e.to_string()))?
            }
            None => Value::Null,
        };
        let details = EventDetails::from_json(event_type, data).map_err(|e| {
            StoreError::Sealing(format!("the details of a {event_type} event: {e}"))
        })?;
        Ok(EventRecord {
            seq: self.seq,
            event_type,
            message_id: self.message_id.map(MessageId::from_string),
            recipient_id: self.recipient_id.map(RecipientId::from_string),
            recipient: key.open_opt(self.recipient)?,
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            details,
            created_at: Timestamp(self.created_at),
        })
    }
}

impl Store {
    /// The position of the account's newest event (0 when it has none).
    pub async fn latest_event_seq(&self, account: &AccountId) -> Result<i64> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM events WHERE account_id = $1")
                .bind(account.as_str())
                .fetch_one(self.pool())
                .await?;
        Ok(seq.unwrap_or(0))
    }

    /// The account's events, newest first.
    pub async fn list_events(&self, account: &AccountId, f: &EventFilter) -> Result<EventPage> {
        let key = self.account_key(account).await?;
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE account_id = $1");
        let mut texts: Vec<String> = vec![account.to_string()];
        let mut ints: Vec<i64> = Vec::new();
        // Text parameters are numbered first, integers after them; the SQL is built to match.
        let mut text_param = |sql: &mut String, clause: &str, value: String| {
            texts.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", texts.len())));
        };
        if !f.types.is_empty() {
            let list: Vec<String> = f
                .types
                .iter()
                .map(|t| format!("'{}'", t.as_str()))
                .collect();
            sql.push_str(&format!(" AND type IN ({})", list.join(", ")));
        }
        if let Some(r) = &f.recipient {
            text_param(&mut sql, " AND recipient_lookup = ?", self.lookup_hash(r));
        }
        if let Some(m) = &f.message_id {
            text_param(&mut sql, " AND message_id = ?", m.clone());
        }
        if let Some(r) = &f.recipient_id {
            text_param(&mut sql, " AND recipient_id = ?", r.clone());
        }
        if let Some(t) = &f.tag {
            text_param(
                &mut sql,
                " AND tags LIKE ? ESCAPE '\\'",
                format!("%\"{}\"%", like_literal(t)),
            );
        }
        if let Some(d) = &f.domain {
            text_param(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM messages m WHERE m.id = events.message_id AND m.domain_id = ?)",
                d.clone(),
            );
        }
        let mut int_clauses = Vec::new();
        if let Some(from) = f.from {
            int_clauses.push(("created_at >=", from.millis()));
        }
        if let Some(to) = f.to {
            int_clauses.push(("created_at <", to.millis()));
        }
        if let Some(before) = f.before {
            int_clauses.push(("seq <", before));
        }
        if let Some(after) = f.after {
            int_clauses.push(("seq >", after));
        }
        for (clause, value) in int_clauses {
            ints.push(value);
            sql.push_str(&format!(" AND {clause} ${}", texts.len() + ints.len()));
        }
        sql.push_str(&format!(
            " ORDER BY seq {} LIMIT {}",
            if f.oldest_first { "ASC" } else { "DESC" },
            u64::from(f.limit) + 1
        ));
        let mut q = sqlx::query_as::<_, EventRow>(&sql);
        for t in &texts {
            q = q.bind(t.as_str());
        }
        for i in &ints {
            q = q.bind(*i);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let more = rows.len() > f.limit as usize;
        let mut items = Vec::with_capacity(rows.len().min(f.limit as usize));
        for row in rows.into_iter().take(f.limit as usize) {
            items.push(row.open(&key)?);
        }
        let next = if more {
            items.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(EventPage { items, next })
    }
}
