//! Support's access to an account's data: only under a grant the account gave, until it
//! expires; every attempt, allowed or refused, is in the account's audit log.

use kuvert_core::account::ActorKind;
use kuvert_core::id::AccountId;
use kuvert_store::Store;
use serde_json::Value;

use crate::AdminError;

/// The longest a grant may last: 30 days.
pub const MAX_GRANT_HOURS: u32 = 720;

/// Lets support see the account's data for `hours` (1 to [`MAX_GRANT_HOURS`]) from now, in
/// place of any grant before; `by` is who gave it, for the audit log.
pub async fn grant(
    store: &Store,
    account: &AccountId,
    by: &str,
    hours: u32,
) -> Result<(), AdminError> {
    if !(1..=MAX_GRANT_HOURS).contains(&hours) {
        return Err(AdminError::GrantHours(hours));
    }
    let now = store.clock().now();
    let until = kuvert_core::Timestamp(now.millis() + i64::from(hours) * 3_600_000);
    store.grant_support(account, by, until).await?;
    Ok(())
}

/// The account's data as support sees it (its export), if a grant is in force.
pub async fn support_access(
    store: &Store,
    account: &AccountId,
    agent: &str,
) -> Result<Value, AdminError> {
    let Some(grant) = store.support_grant(account).await? else {
        store
            .audit(
                account,
                ActorKind::Support,
                agent,
                "support access refused: no grant",
                None,
                None,
            )
            .await?;
        return Err(AdminError::NoSupportGrant);
    };
    store
        .audit(
            account,
            ActorKind::Support,
            agent,
            &format!(
                "support read the account's data (grant by {} until {})",
                grant.granted_by,
                grant.expires_at.to_rfc3339()
            ),
            None,
            None,
        )
        .await?;
    crate::export::export_account(store, account).await
}
