//! Capture mode: messages kept as they would have left (serve --dev, tests), sealed.

use kuvert_core::Timestamp;
use kuvert_core::id::{AccountId, MessageId};
use sqlx::FromRow;

use crate::seal::AccountKey;
use crate::sql::placeholders;
use crate::{Result, Store, StoreError};

/// A message kept by capture mode, as it would have left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    pub seq: i64,
    pub message_id: MessageId,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub mime: Vec<u8>,
    pub created_at: Timestamp,
}

/// A captured message as stored, its recipients (JSON) and content sealed.
#[derive(FromRow)]
struct CaptureRow {
    seq: i64,
    message_id: String,
    mail_from: String,
    recipients: Vec<u8>,
    mime: Vec<u8>,
    created_at: i64,
}

impl CaptureRow {
    fn open(self, key: &AccountKey) -> Result<Capture> {
        let rcpts = key.open_string(&self.recipients)?;
        Ok(Capture {
            seq: self.seq,
            message_id: MessageId::from_string(self.message_id),
            mail_from: self.mail_from,
            recipients: serde_json::from_str(&rcpts)
                .map_err(|e| StoreError::Sealing(e.to_string()))?,
            mime: key.open(&self.mime)?,
            created_at: Timestamp(self.created_at),
        })
    }
}

impl Store {
    /// Keeps a message as capture mode delivers it, unless one of its recipients was erased
    /// meanwhile (the copy was in flight): then nothing is kept that names it.
    pub async fn capture(
        &self,
        account: &AccountId,
        message: &MessageId,
        mail_from: &str,
        recipients: &[String],
        mime: &[u8],
    ) -> Result<()> {
        let key = self.account_key(account).await?;
        let rcpts = serde_json::to_string(recipients).expect("strings serialise");
        let sql = format!(
            "INSERT INTO captures (account_id, message_id, mail_from, recipients, mime, created_at) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM suppressions \
             WHERE account_id = $1 AND reason = 'erased' AND address_lookup IN ({}))",
            placeholders(7, recipients.len().max(1))
        );
        let mut q = sqlx::query(&sql)
            .bind(account.as_str())
            .bind(message.as_str())
            .bind(mail_from)
            .bind(key.seal(rcpts.as_bytes()))
            .bind(key.seal(mime))
            .bind(self.now());
        if recipients.is_empty() {
            q = q.bind("");
        }
        for r in recipients {
            q = q.bind(key.lookup(r));
        }
        q.execute(self.writer()).await?;
        Ok(())
    }

    /// Captured mail of an account, newest first, `limit` after the position `before`.
    pub async fn list_captures(
        &self,
        account: &AccountId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Capture>> {
        let key = self.account_key(account).await?;
        let rows = sqlx::query_as::<_, CaptureRow>(
            "SELECT seq, message_id, mail_from, recipients, mime, created_at FROM captures \
             WHERE account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(account.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(|r| r.open(&key)).collect()
    }
}
