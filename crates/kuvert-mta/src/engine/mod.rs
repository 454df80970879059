//! The scheduler and the destinations.
//!
//! The scheduler takes due recipients from the store by lease, at most `max_in_flight` at a
//! time, so memory follows what is in flight, never the size of the queue. It groups them into
//! jobs (one message, one recipient domain: one transaction) and starts each. A job finds its
//! destination (MX hosts or a route); jobs for the same servers share that destination's
//! connections, at most `connections` at once, each carrying up to `messages_per_connection`
//! transactions, paced to `messages_per_minute`. Every job ends by recording one outcome per
//! recipient, with its event, in one transaction.
//!
//! Here: the scheduler and a job's way from lease to signed message. Beside it: `pool`
//! (connections per destination), `send` (a job over SMTP), `outcome` (what an attempt
//! comes to, and the writer), `signers` (the DKIM key cache), `metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuvert_core::domain::DomainSettings;
use kuvert_core::event::Delivery;
use kuvert_core::id::{DomainId, MessageId};
use kuvert_core::mta_sts::TLSRPT_TAG;
use kuvert_dns::Dns;
use kuvert_mail::bounce::bounce;
use kuvert_mail::tracking::{RecipientLinks, personalise};
use kuvert_mail::verp::{self, VerpTarget};
use kuvert_store::{Lease, Outcome, OutcomeRecord, Outgoing, Store};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::DeliveryConfig;
use crate::dkim::DkimSigner;
use crate::mta_sts::Sts;
use crate::route::{Destination, RouteFailure, Router};
use crate::smtp::{Envelope, tls};

mod metrics;
mod outcome;
mod pool;
mod send;
mod signers;

use outcome::{AttemptError, write_outcomes};
use pool::{ConnectionPool, PRUNE_EVERY};
use send::relay_tls;

/// Counts since start, for `/metrics` and the tests. Each counter is a handle on its series
/// in the registry, so counting is one relaxed increment.
#[derive(Debug)]
pub struct EngineStats {
    outcomes: Family<[(&'static str, &'static str); 1], Counter>,
    pub delivered: Counter,
    pub deferred: Counter,
    pub bounced: Counter,
    pub failed: Counter,
    pub connections_opened: Counter,
    /// Outcomes that arrived after their lease had passed to another worker.
    pub lost_leases: Counter,
    /// Recipients taken from the queue and not yet finished.
    in_flight: Gauge,
}

impl Default for EngineStats {
    fn default() -> Self {
        let outcomes = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let outcome = |name| outcomes.get_or_create(&[("outcome", name)]).clone();
        Self {
            delivered: outcome("delivered"),
            deferred: outcome("deferred"),
            bounced: outcome("bounced"),
            failed: outcome("failed"),
            outcomes,
            connections_opened: Counter::default(),
            lost_leases: Counter::default(),
            in_flight: Gauge::default(),
        }
    }
}

#[derive(Clone)]
pub struct Engine(Arc<Inner>);

struct Inner {
    store: Store,
    /// This process's name in leases (`kuvert_store::Store::lease_due`).
    node: String,
    config: DeliveryConfig,
    ehlo_name: String,
    return_path_prefix: String,
    router: Router,
    /// Opportunistic STARTTLS to MX hosts.
    tls: Arc<rustls::ClientConfig>,
    /// STARTTLS to the smarthost, its certificate checked.
    relay_tls: Arc<rustls::ClientConfig>,
    /// Parsed DKIM keys, with when (store clock, ms) each was read: after
    /// `kuvert_store::KEY_RECHECK_MS` it is read again, so a key whose account was deleted
    /// (here or by another process) stops being used.
    signers: Mutex<HashMap<DomainId, (Arc<DkimSigner>, i64)>>,
    /// Signatures being made now, at most `signing_threads`.
    signing: Semaphore,
    destinations: Mutex<HashMap<String, Arc<ConnectionPool>>>,
    /// Round-robin over the addresses of a pool, one step per new connection.
    next_source: AtomicUsize,
    wake: Arc<Notify>,
    idle: Notify,
    stopping: AtomicBool,
    stats: Arc<EngineStats>,
    /// The account whose messages tagged [`TLSRPT_TAG`] are TLS reports, sent whatever the
    /// receiving domain's MTA-STS policy says (the notices account).
    report_sender: std::sync::OnceLock<kuvert_core::id::AccountId>,
    /// To the outcome writer: one job's outcomes, and where to say they are written.
    outcomes: mpsc::Sender<(Vec<OutcomeRecord>, oneshot::Sender<()>)>,
}

/// Where a job goes over SMTP: its destination's key, hosts in order, whether through the
/// smarthost, and the recipient domain's MTA-STS policy.
struct Target<'a> {
    key: &'a str,
    hosts: &'a [(String, u16)],
    relay: bool,
    sts: Option<&'a crate::mta_sts::Applied>,
}

/// One job: recipients of one message at one domain, sent in one transaction.
struct Job {
    message: Arc<Outgoing>,
    domain: String,
    leases: Vec<Lease>,
}

impl Engine {
    /// Starts the scheduler. `node` names this process in leases: stable across restarts of
    /// the same node (its data directory), different between nodes sharing a database.
    pub fn start(
        store: Store,
        config: DeliveryConfig,
        dns: Dns,
        domains: &DomainSettings,
        node: &str,
    ) -> Self {
        let ehlo_name = if config.ehlo_name.is_empty() {
            domains.hostname.clone()
        } else {
            config.ehlo_name.clone()
        };
        let stats = Arc::new(EngineStats::default());
        let signing_threads = config.signing_threads();
        let (outcomes, rx) = mpsc::channel(1024);
        tokio::spawn(write_outcomes(store.clone(), stats.clone(), rx));
        let relay_tls = relay_tls(&config.relay);
        let inner = Arc::new(Inner {
            relay_tls,
            router: Router::new(
                &config,
                dns.clone(),
                (config.mode == crate::Mode::Mx && config.mta_sts.enabled)
                    .then(|| Arc::new(Sts::new(store.clone(), dns, &config.mta_sts))),
            ),
            store,
            node: node.to_owned(),
            ehlo_name,
            return_path_prefix: domains.return_path_prefix.clone(),
            config,
            tls: tls::opportunistic(),
            signers: Mutex::default(),
            signing: Semaphore::new(signing_threads),
            destinations: Mutex::default(),
            next_source: AtomicUsize::new(0),
            wake: Arc::new(Notify::new()),
            idle: Notify::new(),
            stopping: AtomicBool::new(false),
            stats,
            outcomes,
            report_sender: std::sync::OnceLock::new(),
        });
        tokio::spawn(inner.clone().schedule());
        Self(inner)
    }

    /// Names the account that sends TLS reports: its messages tagged [`TLSRPT_TAG`] are
    /// delivered without MTA-STS and not counted (RFC 8460 §5.3). Set once; a tag alone,
    /// which any sender can set, changes nothing.
    pub fn exempt_reports_of(&self, account: kuvert_core::id::AccountId) {
        let _ = self.0.report_sender.set(account);
    }

    /// Notified after a message is queued, so it leaves at once rather than at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.0.wake.clone()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.0.stats
    }

    /// Recipients taken from the queue and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight()
    }

    /// Stops taking work, lets what is in flight finish (up to `grace`), closes idle
    /// connections. What does not finish keeps its lease and is taken again after it ends.
    pub async fn shutdown(&self, grace: Duration) {
        self.0.stopping.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
        let deadline = Instant::now() + grace;
        loop {
            let idle = self.0.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so a finish in between is not missed.
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                tracing::warn!(
                    in_flight = self.in_flight(),
                    "delivery still in flight at shutdown; its leases will be taken again"
                );
                break;
            }
        }
        let queues: Vec<Arc<ConnectionPool>> = self
            .0
            .destinations
            .lock()
            .expect("destinations")
            .values()
            .cloned()
            .collect();
        for q in queues {
            let idle: Vec<_> = q.idle.lock().expect("idle").drain(..).collect();
            for (c, _) in idle {
                c.quit().await;
            }
        }
        self.flush_tls_sessions().await;
    }

    /// Writes the TLS sessions counted under MTA-STS policies to the store, for the daily
    /// report (done every minute, and at shutdown).
    pub async fn flush_tls_sessions(&self) {
        if let Some(sts) = self.0.router.sts() {
            sts.flush().await;
        }
    }
}

impl Inner {
    async fn schedule(self: Arc<Self>) {
        match self.store.reclaim_leases(&self.node).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                recipients = n,
                "took back what this node held when it stopped; some may be delivered twice"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot take back this node's old leases; they end on their own")
            }
        }
        let poll = self.config.poll_interval.0;
        let mut pruned = Instant::now();
        while !self.stopping.load(Ordering::SeqCst) {
            self.fill().await;
            if pruned.elapsed() >= PRUNE_EVERY {
                self.prune();
                if let Some(sts) = self.router.sts() {
                    sts.flush().await;
                }
                pruned = Instant::now();
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Leases due recipients while there is room, and starts their jobs.
    async fn fill(self: &Arc<Self>) {
        let batch = self.config.batch as usize;
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let room = (self.config.max_in_flight as usize).saturating_sub(self.in_flight());
            if room == 0 {
                return;
            }
            let want = room.min(batch) as u32;
            let leases = match self
                .store
                .lease_due(&self.node, want, self.config.lease.0)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take recipients from the queue");
                    return;
                }
            };
            let taken = leases.len();
            if taken == 0 {
                return;
            }
            self.stats.in_flight.inc_by(taken as i64);
            let mut by_message: BTreeMap<MessageId, Vec<Lease>> = BTreeMap::new();
            for l in leases {
                by_message.entry(l.message_id.clone()).or_default().push(l);
            }
            let ids: Vec<MessageId> = by_message.keys().cloned().collect();
            let mut messages = match self.store.outgoing_many(&ids).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load queued messages; they stay queued");
                    self.jobs_done(taken);
                    return;
                }
            };
            for (id, leases) in by_message {
                let message = match messages.remove(&id) {
                    Some(Ok(m)) => Arc::new(m),
                    found => {
                        let error = match found {
                            Some(Err(e)) => e.to_string(),
                            _ => "message not found".to_owned(),
                        };
                        tracing::warn!(message = %id, error, "cannot load a queued message; it stays queued");
                        self.jobs_done(leases.len());
                        continue;
                    }
                };
                let mut by_domain: BTreeMap<String, Vec<Lease>> = BTreeMap::new();
                for l in leases {
                    let domain = l
                        .address
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_ascii_lowercase())
                        .unwrap_or_default();
                    by_domain.entry(domain).or_default().push(l);
                }
                for (domain, leases) in by_domain {
                    // A tracked message differs per recipient: one transaction each.
                    let jobs = if message.tracking.any() {
                        leases.into_iter().map(|l| vec![l]).collect()
                    } else {
                        vec![leases]
                    };
                    for leases in jobs {
                        let job = Job {
                            message: message.clone(),
                            domain: domain.clone(),
                            leases,
                        };
                        tokio::spawn(self.clone().run(job));
                    }
                }
            }
            if taken < want as usize {
                return;
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.stats.in_flight.get().max(0) as usize
    }

    fn jobs_done(&self, n: usize) {
        // The gauge is the one count of what is in flight; the decrement that takes it to
        // zero wakes a waiting shutdown.
        if self.stats.in_flight.dec_by(n as i64) == n as i64 {
            self.idle.notify_waiters();
        }
        self.wake.notify_one();
    }

    async fn run(self: Arc<Self>, job: Job) {
        let n = job.leases.len();
        let records = self.attempt(&job).await;
        if !records.is_empty() {
            let (done, written) = oneshot::channel();
            if self.outcomes.send((records, done)).await.is_ok() {
                let _ = written.await;
            }
        }
        self.jobs_done(n);
    }

    /// One attempt for the job's recipients; returns their outcomes (none if given back).
    async fn attempt(&self, job: &Job) -> Vec<OutcomeRecord> {
        let signer = match self.signer(&job.message.domain_id).await {
            Ok(s) => s,
            Err(e) => return self.attempt_failed(job, AttemptError::DkimKey(e)),
        };
        let exempt = self.report_sender.get() == Some(&job.message.account_id)
            && job.message.tags.iter().any(|t| t == TLSRPT_TAG);
        let destination = match self.router.resolve(&job.domain, exempt).await {
            Ok(d) => d,
            Err(RouteFailure::Permanent(reply)) => {
                let refusal = bounce(&reply);
                return self.each_lease(job, |_| Outcome::Bounced(refusal.clone()));
            }
            Err(RouteFailure::Temporary(e)) => {
                return self.attempt_failed(job, AttemptError::Unreachable(e));
            }
        };
        let now = self.store.clock().now();
        let signed = {
            // Rendering a tracked copy and RSA both take CPU in proportion to the message:
            // on the blocking threads, `signing_threads` at a time, so that the
            // request-serving threads stay free to accept.
            let Ok(_permit) = self.signing.acquire().await else {
                if let Err(e) = self.store.release(&job.leases).await {
                    tracing::warn!(error = %e, "cannot give leases back");
                }
                return vec![];
            };
            let (signer, message) = (signer.clone(), job.message.clone());
            let personal = match (job.message.tracking.any(), job.leases.as_slice()) {
                (true, [lease]) => Some((
                    self.config.tracking_base_url.clone(),
                    self.store.tracking_key().clone(),
                    lease.recipient_id.clone(),
                )),
                _ => None,
            };
            let signing = tokio::task::spawn_blocking(move || {
                let Some((base_url, key, recipient)) = personal else {
                    return signer.sign(&message.mime, now);
                };
                // A tracked message gets its recipient's links first.
                let links = RecipientLinks {
                    base_url: &base_url,
                    key: &key,
                    account: &message.account_id,
                    recipient: &recipient,
                };
                signer.sign(&personalise(&message.mime, message.tracking, &links), now)
            });
            match signing.await {
                Ok(signed) => signed,
                Err(e) => return self.attempt_failed(job, AttemptError::Signing(e.to_string())),
            }
        };
        let host = format!("{}.{}", self.return_path_prefix, signer.domain());
        let target = match job.leases.as_slice() {
            [one] => VerpTarget::Recipient(one.recipient_id.clone()),
            _ => VerpTarget::Message(job.message.id.clone()),
        };
        let mail_from = verp::encode(self.store.verp_key(), &target, &host);
        let rcpts: Vec<String> = job.leases.iter().map(|l| l.address.clone()).collect();
        match destination {
            Destination::Capture => {
                match self
                    .store
                    .capture(
                        &job.message.account_id,
                        &job.message.id,
                        &mail_from,
                        &rcpts,
                        &signed,
                    )
                    .await
                {
                    Ok(()) => self.each_lease(job, |_| {
                        Outcome::Delivered(Delivery {
                            mx: Some("capture".into()),
                            ..Delivery::default()
                        })
                    }),
                    Err(e) => self.attempt_failed(job, AttemptError::Unreachable(e.to_string())),
                }
            }
            Destination::Smtp {
                key,
                hosts,
                relay,
                sts,
            } => {
                let envelope = Envelope {
                    mail_from: &mail_from,
                    rcpt_to: &rcpts,
                    size: signed.len(),
                };
                let to = Target {
                    key: &key,
                    hosts: &hosts,
                    relay,
                    sts: sts.as_deref(),
                };
                self.over_smtp(job, &to, &envelope, &signed).await
            }
        }
    }
}
