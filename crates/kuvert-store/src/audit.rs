//! The audit log and support grants: every read or change of an account's data by a key, the
//! operator or support is a row here, and support may look only while the account's grant runs.

use kuvert_core::Timestamp;
use kuvert_core::account::ActorKind;
use kuvert_core::id::AccountId;
use sqlx::FromRow;

use crate::accounts::parse_column;
use crate::seal::AccountKey;
use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub actor_kind: ActorKind,
    pub actor: String,
    /// What was done, with no personal data in it (for a request: its method and route).
    pub action: String,
    /// The particulars, which may name a person (a request's path, say
    /// `/v1/suppressions/ann@example.com`): sealed, so they go with the account's key.
    pub detail: Option<String>,
    /// `None` for the CLI, or once the account's key is destroyed.
    pub ip: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupportGrant {
    pub granted_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// An audit log entry as stored, its detail and IP address sealed.
#[derive(FromRow)]
struct AuditRow {
    seq: i64,
    actor_kind: String,
    actor: String,
    action: String,
    detail: Option<Vec<u8>>,
    ip: Option<Vec<u8>>,
    created_at: i64,
}

impl AuditRow {
    fn open(self, key: &AccountKey) -> Result<AuditEntry> {
        Ok(AuditEntry {
            seq: self.seq,
            actor_kind: parse_column(&self.actor_kind)?,
            actor: self.actor,
            action: self.action,
            detail: key.open_opt(self.detail)?,
            ip: key.open_opt(self.ip)?,
            created_at: Timestamp(self.created_at),
        })
    }
}

/// A support grant as stored.
#[derive(FromRow)]
struct SupportGrantRow {
    granted_by: String,
    created_at: i64,
    expires_at: i64,
}

impl From<SupportGrantRow> for SupportGrant {
    fn from(r: SupportGrantRow) -> Self {
        SupportGrant {
            granted_by: r.granted_by,
            created_at: Timestamp(r.created_at),
            expires_at: Timestamp(r.expires_at),
        }
    }
}

impl Store {
    /// Appends to the account's audit log. `action` is kept in clear and must name no one;
    /// `detail` and `ip` are sealed.
    pub async fn audit(
        &self,
        account: &AccountId,
        kind: ActorKind,
        actor: &str,
        action: &str,
        detail: Option<&str>,
        ip: Option<&str>,
    ) -> Result<()> {
        let (sealed_detail, sealed_ip) = if detail.is_some() || ip.is_some() {
            let key = self.account_key(account).await?;
            (
                detail.map(|d| key.seal(d.as_bytes())),
                ip.map(|ip| key.seal(ip.as_bytes())),
            )
        } else {
            (None, None)
        };
        insert_audit(
            self.writer(),
            account,
            (kind, actor),
            action,
            (sealed_detail, sealed_ip),
            self.now(),
        )
        .await
    }

    /// The account's audit log, newest first, `limit` entries before position `before`.
    pub async fn audit_log(
        &self,
        account: &AccountId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let key = self.account_key(account).await?;
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT seq, actor_kind, actor, action, detail, ip, created_at FROM audit_log WHERE account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(account.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(|r| r.open(&key)).collect()
    }

    /// The account lets support see its data until `expires_at`.
    pub async fn grant_support(
        &self,
        account: &AccountId,
        granted_by: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        if expires_at.millis() <= self.now() {
            return Err(StoreError::NotFound("future expiry"));
        }
        sqlx::query(
            "INSERT INTO support_grants (account_id, granted_by, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account.as_str())
        .bind(granted_by)
        .bind(self.now())
        .bind(expires_at.millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Ends every grant of the account now.
    pub async fn revoke_support_grants(&self, account: &AccountId) -> Result<()> {
        sqlx::query(
            "UPDATE support_grants SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL",
        )
        .bind(self.now())
        .bind(account.as_str())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The grant in force now, if any (the one that runs longest).
    pub async fn support_grant(&self, account: &AccountId) -> Result<Option<SupportGrant>> {
        let row = sqlx::query_as::<_, SupportGrantRow>(
            "SELECT granted_by, created_at, expires_at FROM support_grants \
             WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(account.as_str())
        .bind(self.now())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(SupportGrant::from))
    }
}

/// An audit entry's sealed detail, for redaction.
#[derive(FromRow)]
struct DetailRow {
    seq: i64,
    detail: Vec<u8>,
}

/// Rewrites the details of the account's audit entries that name `address` (a request's
/// path, written as sent or percent-encoded) so that they name it no more: part of an
/// erasure. Reads every detail of the account once, a page at a time.
pub(crate) async fn redact_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &AccountKey,
    account: &str,
    address: &str,
) -> Result<u64> {
    let needle = address.trim().to_lowercase();
    let encoded = needle.replace('@', "%40");
    let mut after = 0i64;
    let mut changed = 0;
    loop {
        let rows: Vec<DetailRow> = sqlx::query_as(
            "SELECT seq, detail FROM audit_log WHERE account_id = $1 AND seq > $2 AND detail IS NOT NULL ORDER BY seq LIMIT 1000",
        )
        .bind(account)
        .bind(after)
        .fetch_all(&mut **tx)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(changed);
        };
        after = last.seq;
        for row in rows {
            let Ok(detail) = key.open_string(&row.detail) else {
                continue;
            };
            let lower = detail.to_lowercase();
            if lower.contains(&needle) || lower.contains(&encoded) {
                sqlx::query("UPDATE audit_log SET detail = $1 WHERE seq = $2")
                    .bind(key.seal(b"(erased)"))
                    .bind(row.seq)
                    .execute(&mut **tx)
                    .await?;
                changed += 1;
            }
        }
    }
}

/// One audit row, its detail and address sealed already, in `db` (the pool, or a caller's
/// transaction that the entry must share).
pub(crate) async fn insert_audit<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    account: &AccountId,
    (kind, actor): (ActorKind, &str),
    action: &str,
    (detail, ip): (Option<Vec<u8>>, Option<Vec<u8>>),
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (account_id, actor_kind, actor, action, detail, ip, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(account.as_str())
    .bind(kind.as_str())
    .bind(actor)
    .bind(action)
    .bind(detail)
    .bind(ip)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}
