//! What an attempt comes to for each recipient (delivered, a retry or its end, a bounce),
//! and the writer that records outcomes, many jobs' in one transaction.

use std::sync::Arc;

use kuvert_core::Timestamp;
use kuvert_core::event::{Bounce, Deferral, Failure, FailureReason};
use kuvert_mail::bounce::bounce;
use kuvert_mail::smtp::Reply;
use kuvert_store::{Lease, Outcome, OutcomeRecord, Store};
use tokio::sync::{mpsc, oneshot};

use super::{EngineStats, Inner, Job};

/// Writes outcomes as they come, many jobs' in one transaction: under load one commit (one
/// disk flush) serves many deliveries, as group commit does for accepting.
pub(super) async fn write_outcomes(
    store: Store,
    stats: Arc<EngineStats>,
    mut rx: mpsc::Receiver<(Vec<OutcomeRecord>, oneshot::Sender<()>)>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 128).await > 0 {
        let (jobs, dones): (Vec<Vec<OutcomeRecord>>, Vec<_>) = batch.drain(..).unzip();
        let all: Vec<OutcomeRecord> = jobs.iter().flatten().cloned().collect();
        match store.record_outcomes(&all).await {
            Ok(held) => count(&stats, &all, &held),
            // One bad record must not hold back the others: each job on its own.
            Err(e) => {
                tracing::warn!(error = %e, "writing delivery outcomes together failed; writing them job by job");
                for records in &jobs {
                    match store.record_outcomes(records).await {
                        Ok(held) => count(&stats, records, &held),
                        // The leases run out and the recipients are tried again: at least once.
                        Err(e) => tracing::error!(error = %e, "cannot record delivery outcomes"),
                    }
                }
            }
        }
        for done in dones {
            let _ = done.send(());
        }
    }
}

fn count(stats: &EngineStats, records: &[OutcomeRecord], held: &[bool]) {
    for (r, held) in records.iter().zip(held) {
        let counter = match r.outcome {
            Outcome::Delivered(_) => &stats.delivered,
            Outcome::Deferred { .. } => &stats.deferred,
            Outcome::Bounced(_) => &stats.bounced,
            Outcome::Failed(_) => &stats.failed,
        };
        counter.inc();
        if !held {
            stats.lost_leases.inc();
        }
    }
}

/// Why an attempt ended before a receiving server answered for its recipients. Some end
/// the recipient at once; the rest are tried again.
#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    /// The sending domain's DKIM key cannot be read: nothing leaves unsigned.
    #[error("{0}")]
    DkimKey(String),
    /// Signing did not finish (its thread ended).
    #[error("{0}")]
    Signing(String),
    /// The message requires TLS and the server does not offer it.
    #[error("{host} does not offer STARTTLS and the message requires TLS")]
    TlsRequired { host: String },
    /// No destination yet (DNS), no connection, a capture not written: for now.
    #[error("{0}")]
    Unreachable(String),
}

impl AttemptError {
    /// Why the recipient ends here, or `None` for a failure that passes.
    fn final_reason(&self) -> Option<FailureReason> {
        match self {
            Self::DkimKey(_) => Some(FailureReason::DkimKey),
            Self::Signing(_) => Some(FailureReason::Dkim),
            Self::TlsRequired { .. } => Some(FailureReason::TlsRequired),
            Self::Unreachable(_) => None,
        }
    }
}

impl Inner {
    /// A retry, or the end when the next try would come after the message's maximum age.
    pub(super) fn deferral(&self, job: &Job, lease: &Lease, why: Deferral) -> Outcome {
        let now = self.store.clock().now();
        let next = Timestamp(now.millis() + self.config.retry_after(lease.attempts + 1).millis());
        let expires = Timestamp(job.message.created_at.millis() + self.config.max_age.millis());
        if next > expires {
            // The last failure stays beside the end: it is what a sender needs to know.
            return Outcome::Failed(Failure {
                attempt: None,
                reason: FailureReason::Expired,
                detail: format!("not delivered within {} of acceptance", self.config.max_age),
                last_reason: why.reason,
                reply: why.reply,
                mx: why.mx,
            });
        }
        Outcome::Deferred {
            next_attempt_at: next,
            why,
        }
    }

    /// A refusal by `mx`: a bounce when permanent, else a retry.
    pub(super) fn refusal(
        &self,
        job: &Job,
        lease: &Lease,
        reply: &Reply,
        mx: &Option<String>,
    ) -> Outcome {
        if reply.is_permanent() {
            return Outcome::Bounced(Bounce {
                mx: mx.clone(),
                ..bounce(reply)
            });
        }
        let why = Deferral {
            reply: Some(reply.to_string()),
            mx: mx.clone(),
            ..Deferral::default()
        };
        self.deferral(job, lease, why)
    }

    pub(super) fn record(&self, job: &Job, lease: &Lease, outcome: Outcome) -> OutcomeRecord {
        OutcomeRecord {
            lease: lease.clone(),
            tags: job.message.tags.clone(),
            domain_id: job.message.domain_id.clone(),
            outcome,
        }
    }

    /// The outcome of `error` for each of the job's recipients: the end, or a retry.
    pub(super) fn attempt_failed(&self, job: &Job, error: AttemptError) -> Vec<OutcomeRecord> {
        self.each_lease(job, |lease| match error.final_reason() {
            Some(reason) => Outcome::Failed(Failure {
                attempt: None,
                reason,
                detail: error.to_string(),
                last_reason: None,
                reply: None,
                mx: None,
            }),
            None => {
                let why = Deferral {
                    reason: Some(error.to_string()),
                    ..Deferral::default()
                };
                self.deferral(job, lease, why)
            }
        })
    }

    pub(super) fn each_lease(
        &self,
        job: &Job,
        mut f: impl FnMut(&Lease) -> Outcome,
    ) -> Vec<OutcomeRecord> {
        job.leases
            .iter()
            .map(|l| self.record(job, l, f(l)))
            .collect()
    }
}
