use kuvert_core::Timestamp;
use kuvert_core::domain::{
    DkimAlgorithm, DkimChange, DkimKey, DkimKeyPair, DkimKeyState, DomainState, RecordProblem,
};
use kuvert_core::id::{AccountId, DomainId};
use kuvert_core::tracking::DomainTracking;
use sqlx::FromRow;

use crate::{Result, Store, StoreError};

pub struct NewDomain {
    pub name: String,
    /// Its first DKIM key, which is active: the domain sends only once verified, and
    /// verification requires this key's record.
    pub selector: String,
    pub dkim: DkimKeyPair,
    /// A sandbox domain sends without DNS verification (`serve --dev`).
    pub sandbox: bool,
}

/// An active key's private half, unsealed: what the signer needs.
pub struct DkimPrivate {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub pkcs8_der: Vec<u8>,
}

#[derive(FromRow)]
struct DkimKeyRow {
    selector: String,
    algorithm: String,
    public: String,
    state: String,
    created_at: i64,
    active_at: Option<i64>,
    retire_at: Option<i64>,
}

impl TryFrom<DkimKeyRow> for DkimKey {
    type Error = StoreError;
    fn try_from(r: DkimKeyRow) -> Result<Self> {
        Ok(DkimKey {
            algorithm: crate::accounts::parse_column(&r.algorithm)?,
            state: crate::accounts::parse_column(&r.state)?,
            selector: r.selector,
            public_b64: r.public,
            created_at: Timestamp(r.created_at),
            active_at: r.active_at.map(Timestamp),
            retire_at: r.retire_at.map(Timestamp),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub id: DomainId,
    pub account_id: AccountId,
    pub name: String,
    pub sandbox: bool,
    pub verified_at: Option<Timestamp>,
    pub checked_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub tracking: DomainTracking,
    /// The required records the last check did not find.
    pub problems: Vec<RecordProblem>,
    /// The advised records (DMARC) it did not find, or found wanting.
    pub advice: Vec<RecordProblem>,
}

impl Domain {
    pub fn can_send(&self) -> bool {
        self.state() != DomainState::Unverified
    }

    pub fn state(&self) -> DomainState {
        match (self.sandbox, self.verified_at) {
            (true, _) => DomainState::Sandbox,
            (false, Some(_)) => DomainState::Verified,
            (false, None) => DomainState::Unverified,
        }
    }
}

const COLUMNS: &str = "id, account_id, name, sandbox, verified_at, checked_at, created_at, track_opens, track_clicks, problems, advice";
/// `COLUMNS` of a table aliased `d`, in a join.
pub(crate) const JOINED_COLUMNS: &str = "d.id, d.account_id, d.name, d.sandbox, d.verified_at, d.checked_at, d.created_at, d.track_opens, d.track_clicks, d.problems, d.advice";

/// A domain as stored: the columns of `COLUMNS`.
#[derive(FromRow)]
pub(crate) struct DomainRow {
    id: String,
    account_id: String,
    name: String,
    sandbox: i64,
    verified_at: Option<i64>,
    checked_at: Option<i64>,
    created_at: i64,
    track_opens: Option<i64>,
    track_clicks: Option<i64>,
    problems: Option<String>,
    advice: Option<String>,
}

impl From<DomainRow> for Domain {
    fn from(r: DomainRow) -> Self {
        Domain {
            id: DomainId::from_string(r.id),
            account_id: AccountId::from_string(r.account_id),
            name: r.name,
            sandbox: r.sandbox != 0,
            verified_at: r.verified_at.map(Timestamp),
            checked_at: r.checked_at.map(Timestamp),
            created_at: Timestamp(r.created_at),
            tracking: DomainTracking {
                opens: r.track_opens.map(|v| v != 0),
                clicks: r.track_clicks.map(|v| v != 0),
            },
            problems: r
                .problems
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or_default(),
            advice: r
                .advice
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or_default(),
        }
    }
}

impl Store {
    /// Gives a domain (by name) an IP pool, or takes it away (`None`).
    pub async fn set_domain_pool(&self, domain: &str, pool: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE domains SET pool = $1 WHERE name = $2")
            .bind(pool)
            .bind(domain.to_ascii_lowercase())
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("domain"));
        }
        Ok(())
    }

    /// Adds a domain. A name belongs to one account on the whole instance: `Conflict` otherwise.
    pub async fn add_domain(&self, account: &AccountId, new: NewDomain) -> Result<Domain> {
        let now = self.now();
        let key = self.account_key(account).await?;
        let id = DomainId::generate(Timestamp(now));
        let name = new.name.to_ascii_lowercase();
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO domains (id, account_id, name, sandbox, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(&name)
        .bind(i64::from(new.sandbox))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict("domain"))?;
        insert_key(
            &mut tx,
            &id,
            account,
            &new.selector,
            &new.dkim,
            key.seal(&new.dkim.private_pkcs8_der),
            DkimKeyState::Active,
            now,
        )
        .await?;
        tx.commit().await?;
        self.domain(&name).await
    }

    /// A domain by name, whichever account owns it.
    pub async fn domain(&self, name: &str) -> Result<Domain> {
        self.domain_where("name", &name.to_ascii_lowercase()).await
    }

    pub async fn domain_by_id(&self, id: &DomainId) -> Result<Domain> {
        self.domain_where("id", id.as_str()).await
    }

    /// The domain whose `column` (a unique one) holds `value`.
    async fn domain_where(&self, column: &'static str, value: &str) -> Result<Domain> {
        let row = sqlx::query_as::<_, DomainRow>(&format!(
            "SELECT {COLUMNS} FROM domains WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("domain"))?;
        Ok(row.into())
    }

    /// A domain by name if this account owns it; another account's domain is `NotFound` too,
    /// so that an account learns nothing of the others.
    pub async fn account_domain(&self, account: &AccountId, name: &str) -> Result<Domain> {
        let d = self.domain(name).await?;
        if &d.account_id != account {
            return Err(StoreError::NotFound("domain"));
        }
        Ok(d)
    }

    pub async fn set_domain_tracking(
        &self,
        account: &AccountId,
        name: &str,
        t: DomainTracking,
    ) -> Result<Domain> {
        let done = sqlx::query(
            "UPDATE domains SET track_opens = $1, track_clicks = $2 WHERE name = $3 AND account_id = $4",
        )
        .bind(t.opens.map(i64::from))
        .bind(t.clicks.map(i64::from))
        .bind(name.to_ascii_lowercase())
        .bind(account.as_str())
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("domain"));
        }
        self.account_domain(account, name).await
    }

    pub async fn list_domains(&self, account: &AccountId) -> Result<Vec<Domain>> {
        let rows = sqlx::query_as::<_, DomainRow>(&format!(
            "SELECT {COLUMNS} FROM domains WHERE account_id = $1 ORDER BY name"
        ))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Domain::from).collect())
    }

    pub async fn delete_domain(&self, account: &AccountId, name: &str) -> Result<()> {
        let d = self.account_domain(account, name).await?;
        let mut tx = self.writer().begin().await?;
        sqlx::query("DELETE FROM dkim_keys WHERE domain_id = $1")
            .bind(d.id.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM domains WHERE id = $1 AND account_id = $2")
            .bind(d.id.as_str())
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("domain"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a DNS check and the required records it did not find. With none missing the
    /// domain is verified (keeping the first time it passed); a domain not yet verified stays
    /// so while any is missing; a verified one loses its verification only for a missing
    /// record that stops sending (a DKIM key's), and keeps sending without the others while
    /// they are shown.
    ///
    /// `inconclusive`: a look-up failed (a timeout, say), so what it was to find is neither
    /// missing nor there; nothing is verified, and nothing withdrawn for it.
    pub async fn record_domain_check(
        &self,
        name: &str,
        problems: &[RecordProblem],
        advice: &[RecordProblem],
        inconclusive: bool,
    ) -> Result<Domain> {
        let now = self.now();
        let stops = problems.iter().any(|p| p.purpose.stops_sending());
        sqlx::query(
            "UPDATE domains SET checked_at = $1, problems = $4, advice = $6, dns_override = 0, \
             verified_at = CASE WHEN $2 = 1 THEN COALESCE(verified_at, $1) WHEN $3 = 1 THEN NULL ELSE verified_at END \
             WHERE name = $5",
        )
        .bind(now)
        .bind(i64::from(problems.is_empty() && !inconclusive))
        .bind(i64::from(stops))
        .bind((!problems.is_empty()).then(|| serde_json::to_string(problems).expect("problems serialise")))
        .bind(name.to_ascii_lowercase())
        .bind((!advice.is_empty()).then(|| serde_json::to_string(advice).expect("advice serialises")))
        .execute(self.writer())
        .await?;
        self.domain(name).await
    }

    /// The operator's override: the domain is verified without a look-up, and the daily
    /// re-check leaves it alone until a verification looks again.
    pub async fn verify_domain_without_dns(&self, name: &str) -> Result<Domain> {
        sqlx::query(
            "UPDATE domains SET checked_at = $1, problems = NULL, advice = NULL, dns_override = 1, \
             verified_at = COALESCE(verified_at, $1) WHERE name = $2",
        )
        .bind(self.now())
        .bind(name.to_ascii_lowercase())
        .execute(self.writer())
        .await?;
        self.domain(name).await
    }

    /// Domains (not sandboxes, nor verified by the operator's override) of accounts not closed, verified or with problems found (one a
    /// check stopped comes back by itself once its records do), last checked before
    /// `before`: due for their daily re-check, oldest first, at most `limit`.
    pub async fn domains_due_for_check(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<Domain>> {
        let rows = sqlx::query_as::<_, DomainRow>(&format!(
            "SELECT {JOINED_COLUMNS} FROM domains d JOIN accounts a ON a.id = d.account_id \
             WHERE d.sandbox = 0 AND d.dns_override = 0 \
             AND (d.verified_at IS NOT NULL OR d.problems IS NOT NULL) \
             AND a.status <> 'closed' AND (d.checked_at IS NULL OR d.checked_at < $1) \
             ORDER BY d.checked_at LIMIT $2"
        ))
        .bind(before.millis())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Domain::from).collect())
    }

    /// Claims a domain's due re-check (`true`: this node checks it; on several nodes one
    /// does), by moving its `checked_at` on.
    pub async fn claim_domain_check(&self, domain: &DomainId, before: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE domains SET checked_at = $1 WHERE id = $2 AND (checked_at IS NULL OR checked_at < $3)",
        )
        .bind(self.now())
        .bind(domain.as_str())
        .bind(before.millis())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims the telling of a domain's problems to its owner (`true`: not told yet, and this
    /// caller tells), or forgets the telling (`None`), so that the next set of problems is
    /// told.
    pub async fn mark_problems_told(&self, domain: &DomainId, told: bool) -> Result<bool> {
        let done = if told {
            sqlx::query(
                "UPDATE domains SET problems_told_at = $1 WHERE id = $2 AND problems_told_at IS NULL",
            )
            .bind(self.now())
            .bind(domain.as_str())
            .execute(self.writer())
            .await?
        } else {
            sqlx::query("UPDATE domains SET problems_told_at = NULL WHERE id = $1")
                .bind(domain.as_str())
                .execute(self.writer())
                .await?
        };
        Ok(done.rows_affected() == 1)
    }

    /// Domains with a DKIM key on its way in (pending) or out (retiring).
    pub async fn domains_with_dkim_changes(&self) -> Result<Vec<Domain>> {
        let rows = sqlx::query_as::<_, DomainRow>(&format!(
            "SELECT {COLUMNS} FROM domains WHERE id IN \
             (SELECT domain_id FROM dkim_keys WHERE state IN ('pending', 'retiring')) ORDER BY name"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Domain::from).collect())
    }

    /// The domain's DKIM keys, oldest first.
    pub async fn dkim_keys(&self, domain: &DomainId) -> Result<Vec<DkimKey>> {
        sqlx::query_as::<_, DkimKeyRow>(
            "SELECT selector, algorithm, public, state, created_at, active_at, retire_at \
             FROM dkim_keys WHERE domain_id = $1 ORDER BY created_at, selector",
        )
        .bind(domain.as_str())
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(DkimKey::try_from)
        .collect()
    }

    /// Adds a key to a domain; `state` is `Pending` but for a sandbox, which has no DNS.
    pub async fn add_dkim_key(
        &self,
        domain: &Domain,
        selector: &str,
        pair: &DkimKeyPair,
        state: DkimKeyState,
    ) -> Result<()> {
        let sealed = self
            .account_key(&domain.account_id)
            .await?
            .seal(&pair.private_pkcs8_der);
        let mut tx = self.writer().begin().await?;
        insert_key(
            &mut tx,
            &domain.id,
            &domain.account_id,
            selector,
            pair,
            sealed,
            state,
            self.now(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies what a DKIM check decided, in one transaction: a new key never signs beside
    /// the one it replaces, nor does a domain go without one.
    pub async fn apply_dkim_changes(
        &self,
        domain: &DomainId,
        changes: &[DkimChange],
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut tx = self.writer().begin().await?;
        for change in changes {
            let q = match change {
                DkimChange::Activate { selector } => sqlx::query(
                    "UPDATE dkim_keys SET state = 'active', active_at = $3 WHERE domain_id = $1 AND selector = $2 AND state = 'pending'",
                )
                .bind(domain.as_str())
                .bind(selector)
                .bind(now),
                DkimChange::Retire { selector, at } => sqlx::query(
                    "UPDATE dkim_keys SET state = 'retiring', retire_at = $3 WHERE domain_id = $1 AND selector = $2 AND state = 'active'",
                )
                .bind(domain.as_str())
                .bind(selector)
                .bind(at.0),
                DkimChange::Remove { selector } => sqlx::query(
                    "DELETE FROM dkim_keys WHERE domain_id = $1 AND selector = $2 AND state = 'retiring'",
                )
                .bind(domain.as_str())
                .bind(selector),
            };
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The domain's active keys, their private halves unsealed: what signs its mail. Pending
    /// and retiring keys are never read here.
    pub async fn dkim_signing_keys(&self, domain: &Domain) -> Result<Vec<DkimPrivate>> {
        let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT selector, algorithm, private FROM dkim_keys WHERE domain_id = $1 AND state = 'active' ORDER BY algorithm, selector",
        )
        .bind(domain.id.as_str())
        .fetch_all(self.pool())
        .await?;
        let key = self.account_key(&domain.account_id).await?;
        rows.into_iter()
            .map(|(selector, algorithm, sealed)| {
                Ok(DkimPrivate {
                    algorithm: crate::accounts::parse_column(&algorithm)?,
                    pkcs8_der: key.open(&sealed)?,
                    selector,
                })
            })
            .collect()
    }
}

/// One key row, in the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    domain: &DomainId,
    account: &AccountId,
    selector: &str,
    pair: &DkimKeyPair,
    sealed: Vec<u8>,
    state: DkimKeyState,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO dkim_keys (domain_id, selector, account_id, algorithm, private, public, state, created_at, active_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(domain.as_str())
    .bind(selector)
    .bind(account.as_str())
    .bind(pair.algorithm.as_str())
    .bind(sealed)
    .bind(&pair.public_b64)
    .bind(state.as_str())
    .bind(now)
    .bind((state == DkimKeyState::Active).then_some(now))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::conflict("DKIM selector"))?;
    Ok(())
}
