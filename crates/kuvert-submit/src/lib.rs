//! The one way in. Every entrance (the HTTP API, SMTP submission, the compatibility APIs,
//! campaigns) turns its request into a [`Submission`] and calls [`Acceptor::accept`]; the
//! checks live here once: the rules of the submission, the account's state, the sending
//! domain, the quota, the size, the suppression list. The answer comes only after the
//! message is durable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kuvert_core::Clock;
use kuvert_core::account::{AccountStatus, Plan, PlanLimits};
use kuvert_core::event::{RecipientKind, RecipientStatus, SuppressionReason};
use kuvert_core::id::{AccountId, MessageId, RecipientId};
use kuvert_core::submission::{Body, Limits, Submission, SubmissionError, SubmissionErrorKind};
use kuvert_core::tracking::Tracking;
use kuvert_mail::mime;
use kuvert_store::{CampaignCopy, NewMessage, NewRecipient, Store, StoreError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod template;

pub use template::{MAX_VARIABLES_BYTES, TemplateUse, render_prepared};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    #[error(transparent)]
    Invalid(#[from] SubmissionError),
    #[error("{0} is not a sending domain of this account")]
    UnknownDomain(String),
    #[error("{0} is not verified yet: publish its DNS records, then verify it")]
    UnverifiedDomain(String),
    #[error("the account is {0} and cannot send")]
    AccountNotActive(AccountStatus),
    /// Sending paused on the account's bounce or complaint rate, until the operator lifts it.
    #[error(
        "sending is paused: {0}; deal with the cause (clean the list), then ask the operator to lift the pause"
    )]
    Paused(kuvert_core::reputation::Pause),
    /// A quota (month, day, hour, or the warm-up's day) is reached; it names when it resets.
    #[error(transparent)]
    QuotaExceeded(kuvert_core::quota::QuotaExceeded),
    /// A recipient was erased at its owner's request: the message is refused whole, since
    /// keeping it (even as dropped) would store the address again.
    #[error("{field}: the recipient was erased at its owner's request and may not be mailed")]
    Erased { field: String },
    /// No template of that name (`version` is `None`), or no version of that tag.
    #[error("{}", match version {
        Some(v) => format!("the template {name:?} has no version {v:?}"),
        None => format!("there is no template {name:?}"),
    })]
    UnknownTemplate {
        name: String,
        version: Option<String>,
    },
    #[error(transparent)]
    Template(#[from] kuvert_template::TemplateError),
    /// The contact has this campaign's copy already.
    #[error("the contact has this campaign already")]
    AlreadySent,
    /// A blocking task failed (a bug, logged): not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One recipient as the caller will be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedRecipient {
    pub id: RecipientId,
    pub email: String,
    pub status: RecipientStatus,
    /// Why a dropped recipient will not be sent to.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub id: MessageId,
    pub recipients: Vec<AcceptedRecipient>,
}

#[derive(Clone)]
pub struct Acceptor {
    store: Store,
    clock: Arc<dyn Clock>,
    limits: Limits,
    plans: Arc<HashMap<Plan, PlanLimits>>,
    queued: Option<Arc<tokio::sync::Notify>>,
    /// From the call to the durable commit, of every accepted message.
    latency: Histogram,
    /// What was accepted, over every entrance alike.
    counts: AcceptCounts,
    /// Template versions parsed for rendering (shared by the clones).
    prepared: template::PreparedCache,
}

/// Counters are handles on shared values: the clones of an acceptor count together.
#[derive(Clone, Default)]
struct AcceptCounts {
    messages: Counter,
    queued: Counter,
    dropped: Counter,
}

/// Upper bounds of the latency buckets in seconds, fine enough to read a p99 from.
const LATENCY_BOUNDS: [f64; 20] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1,
    0.15, 0.2, 0.3, 0.5, 1.0, 5.0,
];

impl Acceptor {
    pub fn new(store: Store, limits: Limits, plans: HashMap<Plan, PlanLimits>) -> Self {
        Self {
            clock: store.clock().clone(),
            store,
            limits,
            plans: Arc::new(plans),
            queued: None,
            latency: Histogram::new(LATENCY_BOUNDS),
            counts: AcceptCounts::default(),
            prepared: template::PreparedCache::default(),
        }
    }

    /// Notified after each message with a recipient to deliver (the delivery engine's waker).
    pub fn notify_on_queue(mut self, notify: Arc<tokio::sync::Notify>) -> Self {
        self.queued = Some(notify);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn plan_limits(&self, plan: Plan) -> PlanLimits {
        self.plans
            .get(&plan)
            .copied()
            .unwrap_or_else(|| plan.default_limits())
    }

    /// Registers the accept latency histogram and the accepted counts.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "kuvert_accept_duration_seconds",
            "Time to accept a message, from its submission to its durable commit, over HTTP and SMTP",
            self.latency.clone(),
        );
        let c = &self.counts;
        registry.register(
            "kuvert_messages_accepted",
            "Messages accepted, over HTTP and SMTP",
            c.messages.clone(),
        );
        registry.register(
            "kuvert_recipients_queued",
            "Recipients queued for delivery",
            c.queued.clone(),
        );
        registry.register(
            "kuvert_recipients_dropped",
            "Recipients dropped at acceptance (suppressed)",
            c.dropped.clone(),
        );
    }

    pub async fn accept(
        &self,
        account: &AccountId,
        sub: Submission,
    ) -> Result<Accepted, AcceptError> {
        self.accept_copy(account, sub, None).await
    }

    /// Accepts a campaign's copy for one contact: refused with
    /// [`AcceptError::AlreadySent`] if that contact has this campaign's copy already.
    pub async fn accept_copy(
        &self,
        account: &AccountId,
        sub: Submission,
        campaign: Option<CampaignCopy>,
    ) -> Result<Accepted, AcceptError> {
        let started = std::time::Instant::now();
        let accepted = self.check_and_commit(account, sub, campaign).await?;
        self.latency.observe(started.elapsed().as_secs_f64());
        let dropped = accepted
            .recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Dropped)
            .count() as u64;
        let c = &self.counts;
        c.messages.inc();
        c.dropped.inc_by(dropped);
        c.queued.inc_by(accepted.recipients.len() as u64 - dropped);
        Ok(accepted)
    }

    async fn check_and_commit(
        &self,
        account: &AccountId,
        sub: Submission,
        campaign: Option<CampaignCopy>,
    ) -> Result<Accepted, AcceptError> {
        let now = self.clock.now();
        sub.check(&self.limits, now)?;
        let from_domain = sub.from.address.domain();
        let context = self
            .store
            .sending_context(account, from_domain, now)
            .await?;
        let (state, used, warmup_from) = (context.state, context.used, context.warmup_from);
        if state.status == AccountStatus::Suspended
            && let Some(pause) = self.store.suspension(account).await?
        {
            return Err(AcceptError::Paused(pause));
        }
        if state.status != AccountStatus::Active {
            return Err(AcceptError::AccountNotActive(state.status));
        }
        let plan = state.plan;
        let Some(domain) = context.domain else {
            return Err(AcceptError::UnknownDomain(from_domain.to_owned()));
        };
        if !domain.can_send() {
            return Err(AcceptError::UnverifiedDomain(domain.name));
        }
        // Only the parts Kuvert builds are tracked: a message that came whole is sent as it
        // came.
        let tracking = match sub.body {
            Body::Parts(_) => sub
                .tracking
                .resolve(&sub.tags, &domain.tracking, &state.tracking),
            Body::Raw(_) => Tracking::default(),
        };

        // One delivery per address, whichever of to, cc and bcc it first appears in.
        let mut seen = HashSet::new();
        let recipients: Vec<(RecipientKind, &str)> = [
            (RecipientKind::To, &sub.to),
            (RecipientKind::Cc, &sub.cc),
            (RecipientKind::Bcc, &sub.bcc),
        ]
        .into_iter()
        .flat_map(|(kind, list)| list.iter().map(move |m| (kind, m.address.as_str())))
        .filter(|(_, a)| seen.insert(a.to_lowercase()))
        .collect();
        let addresses: Vec<&str> = recipients.iter().map(|(_, a)| *a).collect();
        let suppressed = self.store.suppressed(account, &addresses).await?;
        if let Some(erased) = addresses
            .iter()
            .find(|a| suppressed.get(**a) == Some(&SuppressionReason::Erased))
        {
            let field = [("to", &sub.to), ("cc", &sub.cc), ("bcc", &sub.bcc)]
                .into_iter()
                .find_map(|(name, list)| {
                    list.iter()
                        .position(|m| m.address.as_str() == *erased)
                        .map(|i| format!("{name}[{i}]"))
                })
                .unwrap_or_else(|| "to".into());
            return Err(AcceptError::Erased { field });
        }
        let queued = (recipients.len() - suppressed.len()) as u64;

        // A first look, to refuse early; the commit checks again in its transaction, where
        // concurrent requests cannot pass it together.
        let quotas = kuvert_core::quota::quotas(&self.plan_limits(plan), warmup_from, now);
        if queued > 0
            && let Some(refused) = used.refusal(&quotas, queued, now)
        {
            return Err(AcceptError::QuotaExceeded(refused));
        }

        let id = MessageId::generate(now);
        // The one content of the message: when tracked, each recipient's copy is this with
        // its own links written in at delivery.
        let raw = mime::build(&sub, &id, now);
        if raw.len() > self.limits.max_message_bytes {
            return Err(SubmissionError {
                kind: SubmissionErrorKind::TooLarge,
                field: None,
                message: format!(
                    "the message is {} bytes; the limit is {} bytes",
                    raw.len(),
                    self.limits.max_message_bytes
                ),
            }
            .into());
        }

        let recipients: Vec<NewRecipient> = recipients
            .into_iter()
            .map(|(kind, address)| {
                let reason: Option<SuppressionReason> = suppressed.get(address).copied();
                NewRecipient {
                    id: RecipientId::generate(now),
                    address: address.to_owned(),
                    kind,
                    status: if reason.is_some() {
                        RecipientStatus::Dropped
                    } else {
                        RecipientStatus::Queued
                    },
                    drop_reason: reason.map(|r| format!("suppressed: {r}")),
                }
            })
            .collect();
        let answer = Accepted {
            id: id.clone(),
            recipients: recipients
                .iter()
                .map(|r| AcceptedRecipient {
                    id: r.id.clone(),
                    email: r.address.clone(),
                    status: r.status,
                    reason: r.drop_reason.clone(),
                })
                .collect(),
        };
        let is_copy = campaign.is_some();
        self.store
            .commit_message(NewMessage {
                id,
                account_id: account.clone(),
                domain_id: domain.id,
                sender: sub.from.address.to_string(),
                subject: sub.subject,
                mime: raw,
                tags: sub.tags,
                metadata: sub.metadata,
                require_tls: sub.require_tls,
                tracking,
                send_at: sub.send_at,
                created_at: now,
                quotas: quotas.to_vec(),
                recipients,
                campaign,
            })
            .await
            .map_err(|e| match e {
                StoreError::QuotaExceeded(q) => AcceptError::QuotaExceeded(q),
                StoreError::Conflict(_) if is_copy => AcceptError::AlreadySent,
                e => AcceptError::Store(e),
            })?;
        if let Some(n) = &self.queued
            && answer
                .recipients
                .iter()
                .any(|r| r.status == RecipientStatus::Queued)
        {
            n.notify_one();
        }
        Ok(answer)
    }
}
