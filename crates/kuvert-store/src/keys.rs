use kuvert_core::Timestamp;
use kuvert_core::account::AccountStatus;
use kuvert_core::apikey::{NewApiKey, Scope};
use std::net::IpAddr;

use kuvert_core::id::{AccountId, ApiKeyId};
use kuvert_core::net::IpNetwork;
use sqlx::FromRow;

use crate::accounts::parse_column;
use crate::{Result, Store, StoreError};

/// A key as listed: never the secret, which only its creator saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub account_id: AccountId,
    pub name: String,
    pub prefix: String,
    pub scope: Scope,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// Who a request is, once its key checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAuth {
    pub key_id: ApiKeyId,
    pub account_id: AccountId,
    pub scope: Scope,
    pub account_status: AccountStatus,
}

/// Last use is recorded at most this often, so authentication does not write on every request.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// A key as stored: the columns of `KEY_COLUMNS`.
#[derive(FromRow)]
struct ApiKeyRow {
    id: String,
    account_id: String,
    name: String,
    prefix: String,
    scope: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl ApiKeyRow {
    fn parse(self) -> Result<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId::from_string(self.id),
            account_id: AccountId::from_string(self.account_id),
            name: self.name,
            prefix: self.prefix,
            scope: parse_column(&self.scope)?,
            created_at: Timestamp(self.created_at),
            last_used_at: self.last_used_at.map(Timestamp),
            revoked_at: self.revoked_at.map(Timestamp),
        })
    }
}

/// A key joined with its account's status: who a request with it is.
#[derive(FromRow)]
struct KeyAuthRow {
    id: String,
    account_id: String,
    scope: String,
    status: String,
}

impl KeyAuthRow {
    fn parse(self) -> Result<KeyAuth> {
        Ok(KeyAuth {
            key_id: ApiKeyId::from_string(self.id),
            account_id: AccountId::from_string(self.account_id),
            scope: parse_column(&self.scope)?,
            account_status: parse_column(&self.status)?,
        })
    }
}

/// `authenticate`'s row: the key and when it was last used.
#[derive(FromRow)]
struct AuthenticateRow {
    #[sqlx(flatten)]
    auth: KeyAuthRow,
    last_used_at: Option<i64>,
}

/// `smtp_ip_credential`'s row: the key and the networks it is bound to.
#[derive(FromRow)]
struct NetworkKeyRow {
    #[sqlx(flatten)]
    auth: KeyAuthRow,
    smtp_networks: String,
}

const KEY_COLUMNS: &str =
    "id, account_id, name, prefix, scope, created_at, last_used_at, revoked_at";

impl Store {
    pub async fn create_key(
        &self,
        account: &AccountId,
        name: &str,
        scope: Scope,
        key: &NewApiKey,
    ) -> Result<ApiKey> {
        let now = self.now();
        let id = ApiKeyId::generate(Timestamp(now));
        sqlx::query("INSERT INTO api_keys (id, account_id, name, prefix, hash, scope, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id.as_str())
            .bind(account.as_str())
            .bind(name)
            .bind(&key.prefix)
            .bind(&key.hash)
            .bind(scope.as_str())
            .bind(now)
            .execute(self.writer())
            .await
            .map_err(StoreError::conflict("API key"))?;
        Ok(ApiKey {
            id,
            account_id: account.clone(),
            name: name.to_owned(),
            prefix: key.prefix.clone(),
            scope,
            created_at: Timestamp(now),
            last_used_at: None,
            revoked_at: None,
        })
    }

    /// The key with this hash, if it exists and is not revoked; records its use.
    pub async fn authenticate(&self, key_hash: &str) -> Result<Option<KeyAuth>> {
        let row = sqlx::query_as::<_, AuthenticateRow>(
            "SELECT k.id, k.account_id, k.scope, k.last_used_at, a.status FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let auth = row.auth.parse()?;
        let now = self.now();
        if row
            .last_used_at
            .is_none_or(|l| now - l >= LAST_USED_GRANULARITY_MS)
        {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(auth.key_id.as_str())
                .execute(self.writer())
                .await?;
        }
        Ok(Some(auth))
    }

    /// Binds a key to source networks: clients connecting from them submit over SMTP as the
    /// key's account without AUTH.
    pub async fn bind_key_networks(&self, key: &ApiKeyId, networks: &[IpNetwork]) -> Result<()> {
        let list = networks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        sqlx::query("UPDATE api_keys SET smtp_networks = $1 WHERE id = $2")
            .bind(list)
            .bind(key.as_str())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The SMTP-IP credential whose networks hold `ip`, if any (not revoked).
    pub async fn smtp_ip_credential(&self, ip: IpAddr) -> Result<Option<KeyAuth>> {
        // Few such keys exist: read them all and match here, where CIDR is understood.
        let rows = sqlx::query_as::<_, NetworkKeyRow>(
            "SELECT k.id, k.account_id, k.scope, k.smtp_networks, a.status FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.smtp_networks IS NOT NULL AND k.revoked_at IS NULL ORDER BY k.created_at",
        )
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            if row
                .smtp_networks
                .split(',')
                .filter_map(|n| n.parse::<IpNetwork>().ok())
                .any(|n| n.contains(ip))
            {
                return Ok(Some(row.auth.parse()?));
            }
        }
        Ok(None)
    }

    pub async fn list_keys(&self, account: &AccountId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE account_id = $1 ORDER BY created_at, id"
        ))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(ApiKeyRow::parse).collect()
    }

    /// Revokes a key of this account; revoking twice is fine, an unknown key is `NotFound`.
    pub async fn revoke_key(&self, account: &AccountId, id: &str) -> Result<ApiKey> {
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL")
            .bind(self.now())
            .bind(id)
            .bind(account.as_str())
            .execute(self.writer())
            .await?;
        sqlx::query_as::<_, ApiKeyRow>(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND account_id = $2"
        ))
        .bind(id)
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("API key"))?
        .parse()
    }
}
