//! The daily purge: deletes what is past its retention (`Store::purge`), in bounded batches,
//! and leaves its counts in `purge_runs`. Whether a run is due is decided by the store's
//! clock and the last run's start, so several nodes on one database purge about once per
//! interval between them, and a test moves the clock instead of waiting.

use std::time::Duration;

use kuvert_store::{PurgeCounts, RetentionPolicy, Store, StoreError};

/// How often the job looks whether a purge is due (in real time).
const LOOK_EVERY: Duration = Duration::from_secs(60);

/// Runs a purge when the last one started `interval` ago or more (or never ran).
pub async fn purge_if_due(
    store: &Store,
    policy: &RetentionPolicy,
    interval: Duration,
) -> Result<Option<PurgeCounts>, StoreError> {
    let now = store.clock().now().millis();
    let last = store.purge_runs(1).await?;
    let due = last
        .first()
        .is_none_or(|r| now - r.started_at.millis() >= interval.as_millis() as i64);
    if !due {
        return Ok(None);
    }
    store.purge(policy, false).await.map(Some)
}

/// The background job of `serve`.
pub fn start_purge_job(
    store: Store,
    policy: RetentionPolicy,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match purge_if_due(&store, &policy, interval).await {
                Ok(Some(c)) => tracing::info!(
                    events = c.events,
                    message_contents = c.message_contents,
                    messages = c.messages,
                    recipients = c.recipients,
                    captures = c.captures,
                    webhook_deliveries = c.webhook_deliveries,
                    "purged what is past its retention"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed; it is tried again later"),
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    })
}
