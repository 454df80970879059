//! Publishing a new privacy policy or terms version: it takes effect 30 days after publication
//! at the earliest, and every account owner is told by a notice through Kuvert itself.

use kuvert_core::Timestamp;
use kuvert_core::account::AccountStatus;
use kuvert_core::policy::{PolicyDocument, PolicyVersion, check_effective};
use kuvert_store::Store;

use crate::AdminError;
use crate::notices::Notices;

/// Publishes the version and notifies the owners of active and restricted accounts;
/// answers how many were told.
pub async fn publish(
    store: &Store,
    notices: &Notices,
    document: PolicyDocument,
    version: &str,
    effective_at: Timestamp,
    url: Option<String>,
) -> Result<u64, AdminError> {
    let now = store.clock().now();
    check_effective(effective_at, now)?;
    store
        .publish_policy(&PolicyVersion {
            document,
            version: version.to_owned(),
            effective_at,
            published_at: now,
            url: url.clone(),
        })
        .await?;
    let name = match document {
        PolicyDocument::Privacy => "privacy policy",
        PolicyDocument::Terms => "terms of service",
    };
    let text = format!(
        "Our {name} changes: version {version} takes effect on {}.{}\n\n\
         You can object to the change, or close your account before then.\n",
        effective_at.to_rfc3339(),
        url.map(|u| format!("\n\nRead it here: {u}"))
            .unwrap_or_default()
    );
    let mut told = 0;
    for status in [AccountStatus::Active, AccountStatus::Restricted] {
        for account in store.accounts_in(status).await? {
            if &account == notices.account() {
                continue;
            }
            let (owner, _) = store.owner(&account).await?;
            notices
                .send(
                    &owner,
                    &format!("Our {name} changes on {}", &effective_at.to_rfc3339()[..10]),
                    &text,
                    &["kuvert-policy"],
                )
                .await?;
            told += 1;
        }
    }
    Ok(told)
}
