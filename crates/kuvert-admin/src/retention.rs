//! The daily housekeeping: inactive accounts are told and, later, deleted; then what is
//! past its retention is purged (`Store::purge`) in bounded batches, its counts left in
//! `purge_runs`. Whether a run is due is decided by the store's clock and the last run's
//! start, so several nodes on one database run it about once per interval between them,
//! and a test moves the clock instead of waiting.

use std::time::Duration;

use kuvert_store::{PurgeCounts, RetentionPolicy, Store};

use crate::AdminError;
use crate::inactivity::{InactivityCounts, InactivityPolicy, handle_inactive};
use crate::notices::Notices;

/// How often the job looks whether a run is due (in real time).
const LOOK_EVERY: Duration = Duration::from_secs(60);

pub struct Housekeeping {
    pub store: Store,
    pub retention: RetentionPolicy,
    pub inactivity: InactivityPolicy,
    pub notices: Notices,
    pub interval: Duration,
}

impl Housekeeping {
    /// Runs when the last run started `interval` ago or more (or never ran).
    pub async fn run_if_due(&self) -> Result<Option<(InactivityCounts, PurgeCounts)>, AdminError> {
        let now = self.store.clock().now().millis();
        let last = self.store.purge_runs(1).await?;
        let due = last
            .first()
            .is_none_or(|r| now - r.started_at.millis() >= self.interval.as_millis() as i64);
        if !due {
            return Ok(None);
        }
        let inactive = handle_inactive(&self.store, &self.notices, &self.inactivity).await?;
        let purged = self.store.purge(&self.retention, false).await?;
        // Subscriptions never confirmed, and addresses a form left that nobody confirmed.
        let unconfirmed = self.store.purge_unconfirmed().await?;
        if unconfirmed > 0 {
            tracing::info!(unconfirmed, "unconfirmed subscriptions purged");
        }
        Ok(Some((inactive, purged)))
    }

    /// The background job of `serve`.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_if_due().await {
                    Ok(Some((i, c))) => tracing::info!(
                        inactivity_notices = i.notified,
                        inactive_deleted = i.deleted,
                        events = c.events,
                        message_contents = c.message_contents,
                        messages = c.messages,
                        recipients = c.recipients,
                        captures = c.captures,
                        webhook_deliveries = c.webhook_deliveries,
                        accounts = c.accounts,
                        "housekeeping done"
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "housekeeping failed; it is tried again later")
                    }
                }
                tokio::time::sleep(LOOK_EVERY).await;
            }
        })
    }
}
