//! Account deletion (data gone within 90 days): closing stops everything at once and destroys
//! the account's data key; the rows themselves go at the purge, within the configured period.

use kuvert_core::account::{AccountStatus, ActorKind};
use kuvert_core::event::EventDetails;
use kuvert_core::id::AccountId;
use kuvert_core::reputation::Pause;
use sqlx::FromRow;

use crate::commit::SealedEvent;
use crate::{Result, Store, StoreError};

/// Tables holding an account's rows, in the order a purge deletes them (children first),
/// with the column naming the account. A test checks that every table of the schema is here
/// or in [`NO_ACCOUNT_DATA`], so that a new table cannot be forgotten by the deletion.
pub const ACCOUNT_TABLES: &[(&str, &str)] = &[
    ("campaign_links", "account_id"),
    ("campaign_sends", "account_id"),
    ("campaigns", "account_id"),
    ("template_versions", "account_id"),
    ("templates", "account_id"),
    ("import_errors", "account_id"),
    ("import_chunks", "account_id"),
    ("imports", "account_id"),
    ("segments", "account_id"),
    ("consent_records", "account_id"),
    ("subscriptions", "account_id"),
    ("contact_values", "account_id"),
    ("contacts", "account_id"),
    ("lists", "account_id"),
    ("contact_properties", "account_id"),
    ("webhook_outbox", "account_id"),
    ("privacy_requests", "account_id"),
    ("audit_log", "account_id"),
    ("support_grants", "account_id"),
    ("webhook_events", "account_id"),
    ("webhooks", "account_id"),
    ("events", "account_id"),
    ("captures", "account_id"),
    ("recipients", "account_id"),
    ("messages", "account_id"),
    ("suppressions", "account_id"),
    ("stats", "account_id"),
    ("quota_usage", "account_id"),
    ("api_keys", "account_id"),
    ("dkim_keys", "account_id"),
    ("domains", "account_id"),
    ("users", "account_id"),
    ("accounts", "id"),
];

/// Tables without rows of any account.
pub const NO_ACCOUNT_DATA: &[&str] = &[
    "purge_runs",
    "schema_migrations",
    "policy_versions",
    // Recipient domains' policies and TLS session counts: domains, no one's address.
    "mta_sts_policies",
    "tls_sessions",
    "tls_reports",
];

/// Large tables are deleted from in batches, by their key column.
fn batch_key(table: &str) -> Option<&'static str> {
    match table {
        "events" | "captures" | "audit_log" | "consent_records" => Some("seq"),
        "campaign_sends" => Some("contact_id"),
        "webhook_outbox" => Some("id"),
        "recipients" | "messages" | "contacts" => Some("id"),
        _ => None,
    }
}

/// The owner's e-mail (sealed) and password hash.
#[derive(FromRow)]
struct OwnerRow {
    email: Vec<u8>,
    password_hash: String,
}

impl Store {
    /// The owner's e-mail and password hash.
    pub async fn owner(&self, account: &AccountId) -> Result<(String, String)> {
        let key = self.account_key(account).await?;
        let row = sqlx::query_as::<_, OwnerRow>(
            "SELECT email, password_hash FROM users WHERE account_id = $1 AND role = 'owner' ORDER BY created_at LIMIT 1",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("owner"))?;
        Ok((key.open_string(&row.email)?, row.password_hash))
    }

    /// Closes an account for good, in one transaction: it stops sending (pending recipients
    /// fail, webhooks and their pending deliveries go), its keys are revoked, and its data
    /// key is destroyed, so that nothing sealed under it can be read again. Its rows are
    /// deleted by the purge at `purge_after_ms` from now.
    pub async fn close_account(&self, account: &AccountId, purge_after_ms: i64) -> Result<()> {
        let now = self.now();
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE accounts SET status = $1, data_key = NULL, closed_at = $2, purge_due_at = $3, updated_at = $2 WHERE id = $4",
        )
        .bind(AccountStatus::Closed.as_str())
        .bind(now)
        .bind(now + purge_after_ms)
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("account"));
        }
        for sql in [
            "UPDATE api_keys SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL",
            "UPDATE recipients SET status = 'failed', next_attempt_at = NULL, lease_owner = NULL, updated_at = $2 \
             WHERE account_id = $1 AND next_attempt_at IS NOT NULL",
        ] {
            sqlx::query(sql)
                .bind(account.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        for sql in [
            "DELETE FROM webhook_outbox WHERE account_id = $1",
            "DELETE FROM webhook_events WHERE account_id = $1",
            "DELETE FROM webhooks WHERE account_id = $1",
        ] {
            sqlx::query(sql)
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.0
            .account_keys
            .lock()
            .expect("key cache lock")
            .remove(account);
        Ok(())
    }

    /// The tables of the schema (for the tests that keep [`ACCOUNT_TABLES`] complete).
    pub async fn table_names(&self) -> Result<Vec<String>> {
        let sql = match self.0.backend {
            crate::Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            crate::Backend::Postgres => {
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
            }
        };
        Ok(sqlx::query_scalar(sql).fetch_all(self.pool()).await?)
    }

    /// Rows of `account` in each table of [`ACCOUNT_TABLES`].
    pub async fn account_rows(&self, account: &AccountId) -> Result<Vec<(&'static str, i64)>> {
        let mut out = Vec::new();
        for (table, column) in ACCOUNT_TABLES {
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1"))
                    .bind(account.as_str())
                    .fetch_one(self.pool())
                    .await?;
            out.push((*table, n));
        }
        Ok(out)
    }

    /// Deletes every row of the closed accounts whose purge is due; answers how many.
    pub(crate) async fn purge_closed_accounts(
        &self,
        batch: crate::retention::Batches,
        dry_run: bool,
    ) -> Result<u64> {
        let due: Vec<String> =
            sqlx::query_scalar("SELECT id FROM accounts WHERE status = $1 AND purge_due_at <= $2")
                .bind(AccountStatus::Closed.as_str())
                .bind(self.now())
                .fetch_all(self.pool())
                .await?;
        if dry_run {
            return Ok(due.len() as u64);
        }
        for account in &due {
            for (table, column) in ACCOUNT_TABLES {
                match batch_key(table) {
                    Some(key) => {
                        let sql = format!(
                            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {column} = $1 LIMIT $2)"
                        );
                        crate::retention::until_short(batch, || {
                            sqlx::query(&sql)
                                .bind(account)
                                .bind(i64::from(batch.rows))
                                .execute(self.writer())
                        })
                        .await?;
                    }
                    None => {
                        sqlx::query(&format!("DELETE FROM {table} WHERE {column} = $1"))
                            .bind(account)
                            .execute(self.writer())
                            .await?;
                    }
                }
            }
        }
        Ok(due.len() as u64)
    }
}

/// An account that has been inactive long enough to hear about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InactiveAccount {
    pub id: AccountId,
    pub last_activity_at: kuvert_core::Timestamp,
    /// When it was told; `None`: not yet.
    pub notice_at: Option<kuvert_core::Timestamp>,
}

/// An account's last activity and inactivity notice.
#[derive(FromRow)]
struct InactiveRow {
    id: String,
    last_activity_at: i64,
    inactivity_notice_at: Option<i64>,
}

impl From<InactiveRow> for InactiveAccount {
    fn from(r: InactiveRow) -> Self {
        InactiveAccount {
            id: AccountId::from_string(r.id),
            last_activity_at: kuvert_core::Timestamp(r.last_activity_at),
            notice_at: r.inactivity_notice_at.map(kuvert_core::Timestamp),
        }
    }
}

impl Store {
    /// Active accounts whose last activity is at or before `inactive_since`, with their notice.
    pub async fn inactive_accounts(
        &self,
        inactive_since: kuvert_core::Timestamp,
    ) -> Result<Vec<InactiveAccount>> {
        let rows = sqlx::query_as::<_, InactiveRow>(
            "SELECT id, last_activity_at, inactivity_notice_at FROM accounts WHERE status = $1 AND last_activity_at <= $2 ORDER BY id",
        )
        .bind(AccountStatus::Active.as_str())
        .bind(inactive_since.millis())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(InactiveAccount::from).collect())
    }

    /// Records that the account was told of its coming deletion.
    pub async fn set_inactivity_notice(&self, account: &AccountId) -> Result<()> {
        sqlx::query("UPDATE accounts SET inactivity_notice_at = $1 WHERE id = $2")
            .bind(self.now())
            .bind(account.as_str())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Activity other than sending (a login): clears a pending inactivity notice.
    pub async fn record_activity(&self, account: &AccountId) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET last_activity_at = $1, inactivity_notice_at = NULL WHERE id = $2",
        )
        .bind(self.now())
        .bind(account.as_str())
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

impl Store {
    /// Restricts an account (its holder's right to restriction) or lifts the restriction.
    /// Restricted, it keeps its data but processes nothing: its waiting recipients are held
    /// (no next attempt) and go back to the queue, due at once, when it is lifted. Answers
    /// whether the status changed.
    pub async fn set_restricted(&self, account: &AccountId, restricted: bool) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        let (active, held) = (AccountStatus::Active, AccountStatus::Restricted);
        let change = if restricted {
            (active, held)
        } else {
            (held, active)
        };
        let changed = move_status(&mut tx, account, change, None, self.now()).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Pauses an active account's sending on its reputation: its waiting mail is held, its
    /// submissions are refused, a `suspended` event (with its webhooks) says why, and the
    /// audit log has it, all in one transaction. Answers whether it was active (only then is
    /// anything written).
    pub async fn suspend(&self, account: &AccountId, pause: &Pause) -> Result<bool> {
        let now = self.now();
        let key = self.account_key(account).await?;
        let why = serde_json::to_string(pause).expect("a pause serialises");
        let mut tx = self.writer().begin().await?;
        let change = (AccountStatus::Active, AccountStatus::Suspended);
        if !move_status(&mut tx, account, change, Some(&why), now).await? {
            return Ok(false);
        }
        let details = EventDetails::Suspended(pause.clone());
        let event = SealedEvent {
            account_id: account.to_string(),
            event_type: details.event_type().as_str(),
            message_id: None,
            recipient_id: None,
            recipient: None,
            recipient_lookup: None,
            tags: "[]".into(),
            data: Some(key.seal(&details.to_bytes())),
            created_at: now,
            metric: "",
            domain_id: None,
        };
        let mut rollup = crate::stats::Rollup::default();
        crate::commit::insert_event(&mut tx, &event, &mut rollup).await?;
        crate::audit::insert_audit(
            &mut *tx,
            account,
            (ActorKind::System, "kuvert"),
            "paused sending",
            (Some(key.seal(pause.to_string().as_bytes())), None),
            now,
        )
        .await?;
        // Wakes the webhook dispatcher and the live log.
        self.commit_events(tx, rollup).await?;
        Ok(true)
    }

    /// Lifts a pause: the account sends again, its held mail is due at once, its warm-up
    /// starts again, and the outcomes that caused the pause are not judged again (from the
    /// next hour on). Answers whether it was suspended.
    pub async fn unsuspend(&self, account: &AccountId) -> Result<bool> {
        let now = self.now();
        let mut tx = self.writer().begin().await?;
        let change = (AccountStatus::Suspended, AccountStatus::Active);
        let changed = move_status(&mut tx, account, change, None, now).await?;
        if changed {
            sqlx::query(
                "UPDATE accounts SET judged_from = $1, warmup_from = $2, pause_told_at = NULL WHERE id = $3",
            )
            .bind(now.div_euclid(3_600_000) * 3_600_000)
            .bind(now)
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Suspended accounts whose owner has not been told yet, with why.
    pub async fn untold_pauses(&self) -> Result<Vec<(AccountId, Pause)>> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT id, suspension FROM accounts WHERE status = 'suspended' AND pause_told_at IS NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, why)| {
                Some((
                    AccountId::from_string(id),
                    serde_json::from_str(why.as_deref()?).ok()?,
                ))
            })
            .collect())
    }

    /// Claims the telling of a pause: `true`, this caller tells and no other node will.
    pub async fn claim_pause_notice(&self, account: &AccountId) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET pause_told_at = $1 WHERE id = $2 AND status = 'suspended' AND pause_told_at IS NULL",
        )
        .bind(self.now())
        .bind(account.as_str())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claim back after the notice failed, so that a later check tells.
    pub async fn release_pause_notice(&self, account: &AccountId) -> Result<()> {
        sqlx::query("UPDATE accounts SET pause_told_at = NULL WHERE id = $1")
            .bind(account.as_str())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Why the account's sending is paused, while it is.
    pub async fn suspension(&self, account: &AccountId) -> Result<Option<Pause>> {
        let why: Option<String> = sqlx::query_scalar(
            "SELECT suspension FROM accounts WHERE id = $1 AND status = 'suspended'",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?
        .flatten();
        Ok(why.and_then(|w| serde_json::from_str(&w).ok()))
    }
}

/// An account from `from` to `to` (with `why` it is suspended), answering whether it was in
/// `from`. Away from active, its waiting recipients are held: those on the wire keep their
/// live lease (next_attempt_at is its end) and finish; the rest, and leases whose worker
/// died, wait. Back to active, its held recipients are due at once.
async fn move_status(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account: &AccountId,
    (from, to): (AccountStatus, AccountStatus),
    why: Option<&str>,
    now: i64,
) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE accounts SET status = $1, suspension = $2, updated_at = $3 WHERE id = $4 AND status = $5",
    )
    .bind(to.as_str())
    .bind(why)
    .bind(now)
    .bind(account.as_str())
    .bind(from.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    let recipients = if to == AccountStatus::Active {
        "UPDATE recipients SET status = 'queued', next_attempt_at = $2, updated_at = $2 \
         WHERE account_id = $1 AND status = 'held'"
    } else {
        "UPDATE recipients SET status = 'held', next_attempt_at = NULL, lease_owner = NULL, updated_at = $2 \
         WHERE account_id = $1 AND next_attempt_at IS NOT NULL AND (lease_owner IS NULL OR next_attempt_at <= $2)"
    };
    if changed {
        sqlx::query(recipients)
            .bind(account.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(changed)
}
