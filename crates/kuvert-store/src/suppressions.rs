use std::collections::HashMap;

use kuvert_core::Timestamp;
use kuvert_core::event::SuppressionReason;
use kuvert_core::id::AccountId;
use sqlx::{Any, FromRow, Transaction};

use crate::accounts::parse_column;
use crate::sql::placeholders;
use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    /// `None` once the address itself was erased: the keyed hash alone still blocks it.
    pub address: Option<String>,
    pub reason: SuppressionReason,
    pub created_at: Timestamp,
}

pub struct SuppressionPage {
    pub items: Vec<Suppression>,
    /// Opaque position after the last item, when there may be more.
    pub next: Option<String>,
}

/// An entry as listed, its address sealed (`None` once erased).
#[derive(FromRow)]
struct SuppressionRow {
    address_lookup: String,
    address: Option<Vec<u8>>,
    reason: String,
    created_at: i64,
}

/// Whether an address (by its keyed hash) is suppressed, and why.
#[derive(FromRow)]
struct SuppressedRow {
    address_lookup: String,
    reason: String,
}

/// Adds an entry or renews it (the newest reason wins). Binds: account id, address lookup
/// hash, sealed address, reason, time.
const UPSERT_SUPPRESSION: &str = "INSERT INTO suppressions (account_id, address_lookup, address, reason, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (account_id, address_lookup) DO UPDATE SET address = excluded.address, reason = excluded.reason, created_at = excluded.created_at";

/// Suppresses an address inside a transaction that records why (a bounce, a complaint, an
/// unsubscribe): `lookup` is its keyed hash, `sealed` the address under its account's key.
pub(crate) async fn suppress(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    lookup: &str,
    sealed: &[u8],
    reason: SuppressionReason,
    now: i64,
) -> Result<()> {
    sqlx::query(UPSERT_SUPPRESSION)
        .bind(account)
        .bind(lookup)
        .bind(sealed)
        .bind(reason.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Adds or updates an entry (the newest reason wins).
    pub async fn add_suppression(
        &self,
        account: &AccountId,
        address: &str,
        reason: SuppressionReason,
    ) -> Result<Suppression> {
        let key = self.account_key(account).await?;
        let now = self.now();
        sqlx::query(UPSERT_SUPPRESSION)
            .bind(account.as_str())
            .bind(self.lookup_hash(address))
            .bind(key.seal(address.as_bytes()))
            .bind(reason.as_str())
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(Suppression {
            address: Some(address.to_owned()),
            reason,
            created_at: Timestamp(now),
        })
    }

    pub async fn remove_suppression(&self, account: &AccountId, address: &str) -> Result<()> {
        self.remove_suppression_of(account, address, None).await
    }

    /// Removes an address's entry, only if it is of `reason` when one is given (Mailgun's
    /// tables: a bounce is not removed through the unsubscribes).
    pub async fn remove_suppression_of(
        &self,
        account: &AccountId,
        address: &str,
        reason: Option<SuppressionReason>,
    ) -> Result<()> {
        let done = sqlx::query(
            "DELETE FROM suppressions WHERE account_id = $1 AND address_lookup = $2 AND ($3 = '' OR reason = $3)",
        )
        .bind(account.as_str())
        .bind(self.lookup_hash(address))
        .bind(reason.map_or("", |r| r.as_str()))
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("suppression"));
        }
        Ok(())
    }

    /// Removes every entry of `reason`; how many went. Erased addresses stay whatever is
    /// asked: their entry is what keeps them blocked.
    pub async fn clear_suppressions(
        &self,
        account: &AccountId,
        reason: SuppressionReason,
    ) -> Result<u64> {
        if reason == SuppressionReason::Erased {
            return Ok(0);
        }
        let done = sqlx::query("DELETE FROM suppressions WHERE account_id = $1 AND reason = $2")
            .bind(account.as_str())
            .bind(reason.as_str())
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// The entry of one address.
    pub async fn suppression(&self, account: &AccountId, address: &str) -> Result<Suppression> {
        let key = self.account_key(account).await?;
        let row = sqlx::query_as::<_, SuppressionRow>(
            "SELECT address_lookup, address, reason, created_at FROM suppressions WHERE account_id = $1 AND address_lookup = $2",
        )
        .bind(account.as_str())
        .bind(self.lookup_hash(address))
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("suppression"))?;
        Ok(Suppression {
            address: key.open_opt(row.address)?,
            reason: parse_column(&row.reason)?,
            created_at: Timestamp(row.created_at),
        })
    }

    /// Newest first, optionally of one reason. `after` is a `next` from an earlier page.
    pub async fn list_suppressions(
        &self,
        account: &AccountId,
        reason: Option<SuppressionReason>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<SuppressionPage> {
        let key = self.account_key(account).await?;
        let (cursor_time, cursor_lookup) = match after.and_then(|a| a.split_once('.')) {
            Some((t, l)) => (t.parse::<i64>().unwrap_or(i64::MAX), l.to_owned()),
            None => (i64::MAX, String::new()),
        };
        let rows = sqlx::query_as::<_, SuppressionRow>(
            "SELECT address_lookup, address, reason, created_at FROM suppressions WHERE account_id = $1 \
             AND ($2 = '' OR reason = $2) AND (created_at < $3 OR (created_at = $3 AND address_lookup < $4)) \
             ORDER BY created_at DESC, address_lookup DESC LIMIT $5",
        )
        .bind(account.as_str())
        .bind(reason.map_or("", |r| r.as_str()))
        .bind(cursor_time)
        .bind(cursor_lookup)
        .bind(i64::from(limit) + 1)
        .fetch_all(self.pool())
        .await?;
        let more = rows.len() > limit as usize;
        let mut rows = rows;
        rows.truncate(limit as usize);
        let next = match rows.last() {
            Some(last) if more => Some(format!("{}.{}", last.created_at, last.address_lookup)),
            _ => None,
        };
        let items = rows
            .into_iter()
            .map(|row| {
                Ok(Suppression {
                    address: key.open_opt(row.address)?,
                    reason: parse_column(&row.reason)?,
                    created_at: Timestamp(row.created_at),
                })
            })
            .collect::<Result<_>>()?;
        Ok(SuppressionPage { items, next })
    }

    /// Which of these addresses the account suppresses, and why. An erased address is
    /// found by the keyed hash under the account's own key that is all that stays of it.
    pub async fn suppressed(
        &self,
        account: &AccountId,
        addresses: &[&str],
    ) -> Result<HashMap<String, SuppressionReason>> {
        let key = self.account_key(account).await?;
        let mut found = HashMap::new();
        let lookups: Vec<(String, &str)> = addresses
            .iter()
            .flat_map(|a| [(self.lookup_hash(a), *a), (key.lookup(a), *a)])
            .collect();
        for chunk in lookups.chunks(500) {
            let sql = format!(
                "SELECT address_lookup, reason FROM suppressions WHERE account_id = $1 AND address_lookup IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query_as::<_, SuppressedRow>(&sql).bind(account.as_str());
            for (lookup, _) in chunk {
                q = q.bind(lookup.as_str());
            }
            for row in q.fetch_all(self.pool()).await? {
                if let Some((_, addr)) = chunk.iter().find(|(l, _)| *l == row.address_lookup) {
                    let reason: SuppressionReason = parse_column(&row.reason)?;
                    // Erased outranks whatever else the address was suppressed for.
                    let slot = found.entry((*addr).to_owned()).or_insert(reason);
                    if reason == SuppressionReason::Erased {
                        *slot = reason;
                    }
                }
            }
        }
        Ok(found)
    }
}
