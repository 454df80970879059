use kuvert_core::Timestamp;
use kuvert_core::domain::DomainState;
use kuvert_core::id::{AccountId, DomainId};
use kuvert_core::tracking::DomainTracking;
use sqlx::FromRow;

use crate::{Result, Store, StoreError};

pub struct NewDomain {
    pub name: String,
    pub selector: String,
    pub dkim_private_der: Vec<u8>,
    pub dkim_public: String,
    /// A sandbox domain sends without DNS verification (`serve --dev`).
    pub sandbox: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub id: DomainId,
    pub account_id: AccountId,
    pub name: String,
    pub selector: String,
    pub dkim_public: String,
    pub sandbox: bool,
    pub verified_at: Option<Timestamp>,
    pub checked_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub tracking: DomainTracking,
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

const COLUMNS: &str = "id, account_id, name, selector, dkim_public, sandbox, verified_at, checked_at, created_at, track_opens, track_clicks";
/// `COLUMNS` of a table aliased `d`, in a join.
pub(crate) const JOINED_COLUMNS: &str = "d.id, d.account_id, d.name, d.selector, d.dkim_public, d.sandbox, d.verified_at, d.checked_at, d.created_at, d.track_opens, d.track_clicks";

/// A domain as stored: the columns of `COLUMNS`.
#[derive(FromRow)]
pub(crate) struct DomainRow {
    id: String,
    account_id: String,
    name: String,
    selector: String,
    dkim_public: String,
    sandbox: i64,
    verified_at: Option<i64>,
    checked_at: Option<i64>,
    created_at: i64,
    track_opens: Option<i64>,
    track_clicks: Option<i64>,
}

impl From<DomainRow> for Domain {
    fn from(r: DomainRow) -> Self {
        Domain {
            id: DomainId::from_string(r.id),
            account_id: AccountId::from_string(r.account_id),
            name: r.name,
            selector: r.selector,
            dkim_public: r.dkim_public,
            sandbox: r.sandbox != 0,
            verified_at: r.verified_at.map(Timestamp),
            checked_at: r.checked_at.map(Timestamp),
            created_at: Timestamp(r.created_at),
            tracking: DomainTracking {
                opens: r.track_opens.map(|v| v != 0),
                clicks: r.track_clicks.map(|v| v != 0),
            },
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
        sqlx::query(
            "INSERT INTO domains (id, account_id, name, selector, dkim_private, dkim_public, sandbox, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(&name)
        .bind(&new.selector)
        .bind(key.seal(&new.dkim_private_der))
        .bind(&new.dkim_public)
        .bind(i64::from(new.sandbox))
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(StoreError::conflict("domain"))?;
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
        let done = sqlx::query("DELETE FROM domains WHERE name = $1 AND account_id = $2")
            .bind(name.to_ascii_lowercase())
            .bind(account.as_str())
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("domain"));
        }
        Ok(())
    }

    /// Records a DNS check. A passing check verifies the domain (keeping the first time it
    /// passed); a failing one withdraws the verification, as records that vanish must stop mail.
    pub async fn record_domain_check(&self, name: &str, passed: bool) -> Result<Domain> {
        let now = self.now();
        sqlx::query(
            "UPDATE domains SET checked_at = $1, verified_at = CASE WHEN $2 = 1 THEN COALESCE(verified_at, $1) ELSE NULL END WHERE name = $3",
        )
        .bind(now)
        .bind(i64::from(passed))
        .bind(name.to_ascii_lowercase())
        .execute(self.writer())
        .await?;
        self.domain(name).await
    }

    /// The domain's DKIM private key (PKCS#8 DER), unsealed.
    pub async fn dkim_private_key(&self, domain: &Domain) -> Result<Vec<u8>> {
        let sealed: Vec<u8> = sqlx::query_scalar("SELECT dkim_private FROM domains WHERE id = $1")
            .bind(domain.id.as_str())
            .fetch_one(self.pool())
            .await?;
        self.account_key(&domain.account_id).await?.open(&sealed)
    }
}
