//! Deleting an account: the owner confirms with the password, a confirmation goes to the owner,
//! then the account is closed and its data key destroyed at once; its rows go at the purge
//! within the deletion period (never more than 90 days).

use std::time::Duration;

use kuvert_core::Timestamp;
use kuvert_core::id::AccountId;
use kuvert_core::password;
use kuvert_store::Store;

use crate::AdminError;
use crate::notices::Notices;

/// The longest an account's rows may outlive its deletion: its data is gone within 90 days.
pub const MAX_PURGE_AFTER: Duration = Duration::from_secs(90 * 86_400);

/// Who asks for the deletion.
pub enum Requester<'a> {
    /// The owner, who must give the password.
    Owner { password: &'a str },
    /// The operator, answering a request that came by other means (the CLI).
    Operator,
    /// Nobody: the account stayed inactive after its notice.
    Inactivity,
}

/// Deletes `account`: checks the requester, sends the owner a confirmation (while the
/// address can still be read), then closes the account. Its rows go after `purge_after`
/// (clamped to 90 days).
pub async fn delete_account(
    store: &Store,
    notices: &Notices,
    account: &AccountId,
    requester: Requester<'_>,
    purge_after: Duration,
) -> Result<Timestamp, AdminError> {
    let (owner_email, hash) = store.owner(account).await?;
    if let Requester::Owner { password } = requester {
        // Argon2 takes tens of milliseconds of a core: not on the async workers.
        let password = password.to_owned();
        let right = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
            .await
            .unwrap_or(false);
        if !right {
            return Err(AdminError::WrongPassword);
        }
    }
    let purge_after = purge_after.min(MAX_PURGE_AFTER);
    let purge_at = Timestamp(store.clock().now().millis() + purge_after.as_millis() as i64);
    let why = match requester {
        Requester::Inactivity => "because it was not used after our notice",
        _ => "as you asked",
    };
    let text = format!(
        "Your Kuvert account {account} has been deleted, {why}.\n\n\
         It can no longer send, its API keys no longer work, and its data is encrypted under a \
         key that has now been destroyed, so it can no longer be read. What is left of it is \
         removed from our databases by {}.\n",
        purge_at.to_rfc3339()
    );
    let by = match requester {
        Requester::Owner { .. } => Some("the owner, with the password"),
        Requester::Operator => Some("the operator"),
        Requester::Inactivity => None,
    };
    if let Some(by) = by {
        store
            .record_privacy_request(
                account,
                kuvert_core::account::PrivacyRight::Erasure,
                by,
                true,
            )
            .await?;
    }
    notices
        .send(
            &owner_email,
            "Your Kuvert account has been deleted",
            &text,
            &["kuvert-account-deleted"],
        )
        .await?;
    store
        .close_account(account, purge_after.as_millis() as i64)
        .await?;
    Ok(purge_at)
}
