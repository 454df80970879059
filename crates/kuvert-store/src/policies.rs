//! Published policy and terms versions (`kuvert_core::policy`).

use kuvert_core::Timestamp;
use kuvert_core::account::AccountStatus;
use kuvert_core::id::AccountId;
use kuvert_core::policy::PolicyVersion;
use sqlx::FromRow;

use crate::accounts::parse_column;
use crate::{Result, Store};

/// A published version as stored.
#[derive(FromRow)]
struct PolicyVersionRow {
    document: String,
    version: String,
    effective_at: i64,
    published_at: i64,
    url: Option<String>,
}

impl PolicyVersionRow {
    fn parse(self) -> Result<PolicyVersion> {
        Ok(PolicyVersion {
            document: parse_column(&self.document)?,
            version: self.version,
            effective_at: Timestamp(self.effective_at),
            published_at: Timestamp(self.published_at),
            url: self.url,
        })
    }
}

impl Store {
    pub async fn publish_policy(&self, v: &PolicyVersion) -> Result<()> {
        sqlx::query(
            "INSERT INTO policy_versions (document, version, effective_at, published_at, url) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(v.document.as_str())
        .bind(&v.version)
        .bind(v.effective_at.millis())
        .bind(v.published_at.millis())
        .bind(v.url.as_deref())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Every published version, oldest first.
    pub async fn policy_versions(&self) -> Result<Vec<PolicyVersion>> {
        let rows = sqlx::query_as::<_, PolicyVersionRow>(
            "SELECT document, version, effective_at, published_at, url FROM policy_versions ORDER BY effective_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(PolicyVersionRow::parse).collect()
    }

    /// Accounts in a status, by id (who must hear of a policy change).
    pub async fn accounts_in(&self, status: AccountStatus) -> Result<Vec<AccountId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM accounts WHERE status = $1 ORDER BY id")
                .bind(status.as_str())
                .fetch_all(self.pool())
                .await?;
        Ok(ids.into_iter().map(AccountId::from_string).collect())
    }
}
