//! Domains re-checked daily. Records get deleted or edited long after a domain was verified:
//! each verified domain's records are looked up again once a day; what is missing is shown on
//! the API, and its owner is told once for each new set of records at fault. A missing DKIM
//! record stops the domain's mail (it would fail DKIM and DMARC); a missing SPF or
//! return-path record does not, as the mail still authenticates by DKIM; a DMARC record
//! missing or wanting is advice, shown and told, and stops nothing.

use std::time::Duration;

use kuvert_core::Timestamp;
use kuvert_core::domain::{DomainSettings, RecordProblem, RecordPurpose};
use kuvert_dns::Dns;
use kuvert_store::{Domain, Store};

use crate::AdminError;
use crate::notices::Notices;

/// A domain is re-checked when its last check is this old.
pub const CHECK_EVERY_MS: i64 = 86_400_000;

/// Domains looked at in one run: the rest wait for the next.
const PER_RUN: u32 = 500;

/// The records at fault (required and advised), in order: what makes a set new, whatever DNS
/// answered for them (its answers come in any order).
fn at_fault(d: &Domain) -> Vec<(RecordPurpose, &str)> {
    let mut out: Vec<(RecordPurpose, &str)> = d
        .problems
        .iter()
        .chain(&d.advice)
        .map(|p| (p.purpose, p.name.as_str()))
        .collect();
    out.sort();
    out
}

/// How often `serve` looks for domains due (in real time).
const LOOK_EVERY: Duration = Duration::from_secs(600);

pub struct DomainHealth {
    pub store: Store,
    pub dns: Dns,
    pub notices: Notices,
    pub settings: DomainSettings,
}

impl DomainHealth {
    /// Re-checks the domains due; returns those found with problems. One domain's failure is
    /// logged and the others are still checked.
    pub async fn check_due(&self) -> Result<Vec<Domain>, AdminError> {
        let now = self.store.clock().now();
        let due = self
            .store
            .domains_due_for_check(Timestamp(now.millis() - CHECK_EVERY_MS), PER_RUN)
            .await?;
        let mut broken = Vec::new();
        let before = Timestamp(now.millis() - CHECK_EVERY_MS);
        for domain in due {
            // On several nodes, one checks it.
            if !self.store.claim_domain_check(&domain.id, before).await? {
                continue;
            }
            match self.check(&domain).await {
                Ok(Some(d)) => broken.push(d),
                Ok(None) => {}
                Err(e) => tracing::warn!(domain = %domain.name, error = %e, "domain check failed"),
            }
        }
        Ok(broken)
    }

    /// Checks one domain; tells its owner of a set of problems it was not told of yet.
    async fn check(&self, before: &Domain) -> Result<Option<Domain>, AdminError> {
        let (after, _) =
            crate::verify_domain(&self.store, &self.dns, before, &self.settings, false).await?;
        if after.problems.is_empty() && after.advice.is_empty() {
            if !before.problems.is_empty() || !before.advice.is_empty() {
                self.store.mark_problems_told(&after.id, false).await?;
            }
            return Ok(None);
        }
        if at_fault(&after) != at_fault(before) {
            // A new set of problems is told anew.
            self.store.mark_problems_told(&after.id, false).await?;
        }
        if self.store.mark_problems_told(&after.id, true).await? {
            tracing::warn!(domain = %after.name, problems = after.problems.len(), "a domain's records broke");
            if let Err(e) = self.tell_owner(&after).await {
                tracing::warn!(domain = %after.name, error = %e, "the domain notice was not sent");
                self.store.mark_problems_told(&after.id, false).await?;
            }
        }
        Ok(Some(after))
    }

    async fn tell_owner(&self, d: &Domain) -> Result<(), AdminError> {
        let (owner, _) = self.store.owner(&d.account_id).await?;
        let what = |p: &RecordProblem| {
            format!(
                "- {} record {} {}: it must be\n    {}\n  DNS answered: {}\n",
                p.purpose,
                p.name,
                if p.purpose.stops_sending() {
                    "(sending stopped)"
                } else {
                    ""
                },
                p.expected,
                if p.found.is_empty() {
                    "nothing".to_owned()
                } else {
                    p.found.join(" | ")
                }
            )
        };
        let stopped = !d.can_send();
        let mut text = format!("The daily check of {} found:\n\n", d.name);
        if !d.problems.is_empty() {
            text.push_str(&format!(
                "Required records missing:\n{}\n{}\n\n",
                d.problems.iter().map(what).collect::<String>(),
                if stopped {
                    "Mail from this domain is refused until its DKIM record is back: without \
                     it, receivers would fail the mail's DKIM and DMARC checks."
                } else {
                    "Mail from this domain still goes out, but receivers may count it against \
                     you (SPF fails, or bounces do not come back to Kuvert)."
                }
            ));
        }
        if !d.advice.is_empty() {
            text.push_str(&format!(
                "Advised records missing or wanting:\n{}\nThey stop nothing, but Gmail and \
                 Yahoo ask bulk senders for a DMARC record, and DMARC passes on both SPF and \
                 DKIM only when SPF alignment is relaxed.\n\n",
                d.advice.iter().map(what).collect::<String>(),
            ));
        }
        text.push_str(&format!(
            "Publish them as shown, then run the domain's verification again \
             (POST /v1/domains/{}/verify).\n",
            d.name
        ));
        self.notices
            .send(
                &owner,
                &format!("The DNS records of {} need attention", d.name),
                &text,
                &["kuvert-domain"],
            )
            .await?;
        Ok(())
    }

    /// The background job of `serve`.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        let me = std::sync::Arc::new(self);
        crate::every(LOOK_EVERY, "domain checks", move || {
            let me = me.clone();
            async move { me.check_due().await.map(drop) }
        })
    }
}
