//! Account holders' rights: access (the export), rectification, restriction; erasure is
//! `deletion`. Each use is recorded as a privacy request, answered at once, with who asked;
//! requests that come by e-mail are recorded by the operator.

use kuvert_core::EmailAddress;
use kuvert_core::account::{CompanyProfile, PrivacyRight, UserProfile};
use kuvert_core::id::{AccountId, UserId};
use kuvert_store::Store;
use serde_json::Value;

use crate::AdminError;

/// The export, recorded as an access request by `by`.
pub async fn access(store: &Store, account: &AccountId, by: &str) -> Result<Value, AdminError> {
    let export = crate::export::export_account(store, account).await?;
    store
        .record_privacy_request(account, PrivacyRight::Access, by, true)
        .await?;
    Ok(export)
}

/// Records an access request by `by`, answered by the export that follows
/// (`export::write_export`, streamed to the account holder).
pub async fn record_access(store: &Store, account: &AccountId, by: &str) -> Result<(), AdminError> {
    store.account(account).await?;
    store
        .record_privacy_request(account, PrivacyRight::Access, by, true)
        .await?;
    Ok(())
}

/// Replaces the account's company fields.
pub async fn rectify_account(
    store: &Store,
    account: &AccountId,
    profile: &CompanyProfile,
    by: &str,
) -> Result<(), AdminError> {
    store.update_account_profile(account, profile).await?;
    store
        .record_privacy_request(account, PrivacyRight::Rectification, by, true)
        .await?;
    Ok(())
}

/// Replaces a user's e-mail and personal fields.
pub async fn rectify_user(
    store: &Store,
    account: &AccountId,
    user: &UserId,
    email: &str,
    profile: &UserProfile,
    by: &str,
) -> Result<(), AdminError> {
    let email = EmailAddress::parse(email)?;
    store
        .update_user(account, user, &email.to_string(), profile)
        .await?;
    store
        .record_privacy_request(account, PrivacyRight::Rectification, by, true)
        .await?;
    Ok(())
}

/// Puts the account on hold, or takes it off; answers whether anything changed.
pub async fn restrict(
    store: &Store,
    account: &AccountId,
    restricted: bool,
    by: &str,
) -> Result<bool, AdminError> {
    let changed = store.set_restricted(account, restricted).await?;
    if changed && restricted {
        store
            .record_privacy_request(account, PrivacyRight::Restriction, by, true)
            .await?;
    }
    Ok(changed)
}
