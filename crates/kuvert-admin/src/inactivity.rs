//! Inactive accounts: an account that sent nothing (and where nobody logged in) for 12 months
//! is told so, and is deleted like any other if it stays inactive 30 days more. Both periods
//! are configurable; the store's clock decides, so tests move it.

use std::time::Duration;

use kuvert_store::Store;

use crate::AdminError;
use crate::deletion::{Requester, delete_account};
use crate::notices::Notices;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InactivityPolicy {
    /// Months without activity before the notice.
    pub notice_after_months: u32,
    /// Time after the notice before the deletion.
    pub delete_after: Duration,
    /// How long a deleted account's rows remain (as for any deletion).
    pub purge_after: Duration,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InactivityCounts {
    pub notified: u64,
    pub deleted: u64,
}

/// Notifies the accounts that became inactive and deletes those whose notice has run out.
/// The system account (the notices' sender) is never touched.
pub async fn handle_inactive(
    store: &Store,
    notices: &Notices,
    policy: &InactivityPolicy,
) -> Result<InactivityCounts, AdminError> {
    let now = store.clock().now();
    let mut counts = InactivityCounts::default();
    let grace_ms = policy.delete_after.as_millis() as i64;
    for account in store
        .inactive_accounts(now.months_before(policy.notice_after_months))
        .await?
    {
        if &account.id == notices.account() {
            continue;
        }
        match account.notice_at {
            None => {
                let (owner, _) = store.owner(&account.id).await?;
                let deadline = kuvert_core::Timestamp(now.millis() + grace_ms);
                let text = format!(
                    "Your Kuvert account {} has not been used since {}.\n\n\
                     Accounts without activity are deleted together with their data. Yours will \
                     be deleted on {} unless it sends a message or someone logs in before then.\n",
                    account.id,
                    account.last_activity_at.to_rfc3339(),
                    deadline.to_rfc3339()
                );
                notices
                    .send(
                        &owner,
                        "Your Kuvert account will be deleted for inactivity",
                        &text,
                        &["kuvert-inactivity"],
                    )
                    .await?;
                store.set_inactivity_notice(&account.id).await?;
                counts.notified += 1;
            }
            Some(at) if now.millis() - at.millis() >= grace_ms => {
                delete_account(
                    store,
                    notices,
                    &account.id,
                    Requester::Inactivity,
                    policy.purge_after,
                )
                .await?;
                counts.deleted += 1;
            }
            Some(_) => {}
        }
    }
    Ok(counts)
}
