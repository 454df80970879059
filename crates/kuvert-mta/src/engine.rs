//! The scheduler and the destinations.
//!
//! The scheduler takes due recipients from the store by lease, at most `max_in_flight` at a
//! time, so memory follows what is in flight, never the size of the queue. It groups them into
//! jobs (one message, one recipient domain: one transaction) and starts each. A job finds its
//! destination (MX hosts or a route); jobs for the same servers share that destination's
//! connections, at most `connections` at once, each carrying up to `messages_per_connection`
//! transactions, paced to `messages_per_minute`. Every job ends by recording one outcome per
//! recipient, with its event, in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuvert_core::Timestamp;
use kuvert_core::domain::DomainSettings;
use kuvert_core::event::{Bounce, BounceClass, Deferral, Delivery, Failure};
use kuvert_core::id::{DomainId, MessageId};
use kuvert_dns::Dns;
use kuvert_mail::tracking::{RecipientLinks, Template};
use kuvert_mail::verp::{self, VerpTarget};
use kuvert_store::{Lease, Outcome, OutcomeRecord, Outgoing, Store};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{DeliveryConfig, DestinationLimits};
use crate::dkim::DkimSigner;
use crate::route::{Destination, RouteFailure, Router};
use crate::smtp::{ClientError, ConnectOptions, Connection, Envelope, Stage, tls};
use kuvert_mail::bounce::classify;
use kuvert_mail::smtp::Reply;

/// The smarthost's TLS: checked at start by `DeliveryConfig::problems`; should the file
/// have gone since, nothing is trusted rather than everything.
fn relay_tls(relay: &crate::config::Relay) -> Arc<rustls::ClientConfig> {
    if relay.insecure {
        return tls::opportunistic();
    }
    tls::verified(&relay.ca_file).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the smarthost's CA file cannot be read; no smarthost certificate will be trusted");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    })
}

/// How often the scheduler forgets destinations and keys it no longer needs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Parsed DKIM keys kept; past this the cache starts again (parsing one costs about a
/// millisecond).
const MAX_SIGNERS: usize = 1_000;

/// Counts since start, for `/metrics` and the tests.
#[derive(Default, Debug)]
pub struct EngineStats {
    pub delivered: AtomicU64,
    pub deferred: AtomicU64,
    pub bounced: AtomicU64,
    pub failed: AtomicU64,
    pub connections_opened: AtomicU64,
    /// Outcomes that arrived after their lease had passed to another worker.
    pub lost_leases: AtomicU64,
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
    in_flight: AtomicUsize,
    /// Round-robin over the addresses of a pool, one step per new connection.
    next_source: AtomicUsize,
    wake: Arc<Notify>,
    idle: Notify,
    stopping: AtomicBool,
    stats: Arc<EngineStats>,
    /// To the outcome writer: one job's outcomes, and where to say they are written.
    outcomes: mpsc::Sender<(Vec<OutcomeRecord>, oneshot::Sender<()>)>,
}

/// One job: recipients of one message at one domain, sent in one transaction.
struct Job {
    message: Arc<Outgoing>,
    domain: String,
    leases: Vec<Lease>,
}

/// The connections to one set of servers (a destination), their limits and their pace.
struct ConnectionPool {
    limits: DestinationLimits,
    /// Open connections, in use or idle, never more than `limits.connections`.
    permits: Semaphore,
    idle: Mutex<Vec<(Connection, Instant)>>,
    /// When the next transaction may start (`messages_per_minute`).
    next_slot: tokio::sync::Mutex<Instant>,
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
            router: Router::new(&config, dns),
            store,
            node: node.to_owned(),
            ehlo_name,
            return_path_prefix: domains.return_path_prefix.clone(),
            config,
            tls: tls::opportunistic(),
            signers: Mutex::default(),
            signing: Semaphore::new(signing_threads),
            destinations: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            next_source: AtomicUsize::new(0),
            wake: Arc::new(Notify::new()),
            idle: Notify::new(),
            stopping: AtomicBool::new(false),
            stats,
            outcomes,
        });
        tokio::spawn(inner.clone().schedule());
        Self(inner)
    }

    /// Notified after a message is queued, so it leaves at once rather than at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.0.wake.clone()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.0.stats
    }

    /// The engine's counters in Prometheus text format, for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let s = &self.0.stats;
        let _ = writeln!(
            out,
            "# HELP kuvert_delivery_outcomes_total Delivery attempts by outcome.\n# TYPE kuvert_delivery_outcomes_total counter"
        );
        for (outcome, n) in [
            ("delivered", &s.delivered),
            ("deferred", &s.deferred),
            ("bounced", &s.bounced),
            ("failed", &s.failed),
        ] {
            let _ = writeln!(
                out,
                "kuvert_delivery_outcomes_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP kuvert_smtp_connections_opened_total Outbound SMTP connections opened.\n# TYPE kuvert_smtp_connections_opened_total counter\nkuvert_smtp_connections_opened_total {}",
            s.connections_opened.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kuvert_delivery_lost_leases_total Outcomes that came after their lease had passed on.\n# TYPE kuvert_delivery_lost_leases_total counter\nkuvert_delivery_lost_leases_total {}",
            s.lost_leases.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kuvert_delivery_in_flight Recipients being delivered now.\n# TYPE kuvert_delivery_in_flight gauge\nkuvert_delivery_in_flight {}",
            self.in_flight()
        );
    }

    /// Recipients taken from the queue and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::SeqCst)
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
            let room = (self.config.max_in_flight as usize)
                .saturating_sub(self.in_flight.load(Ordering::SeqCst));
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
            self.in_flight.fetch_add(taken, Ordering::SeqCst);
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
                    let jobs = if message.template.is_some() {
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

    fn jobs_done(&self, n: usize) {
        if self.in_flight.fetch_sub(n, Ordering::SeqCst) == n {
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
            Err(e) => return self.each_lease(job, |_| failed("dkim_key", &e)),
        };
        let destination = match self.router.resolve(&job.domain).await {
            Ok(d) => d,
            Err(RouteFailure::Permanent { code, text }) => {
                let refusal = Bounce {
                    attempt: None,
                    class: BounceClass::Hard,
                    reply: format!("550 {code} {text}"),
                    code: code.to_owned(),
                    mx: None,
                    source: None,
                    reporting_mta: None,
                };
                return self.each_lease(job, |_| Outcome::Bounced(refusal.clone()));
            }
            Err(RouteFailure::Temporary(e)) => {
                return self.each_lease(job, |l| self.deferral(job, l, because(e.clone())));
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
            let personal = match (&job.message.template, job.leases.as_slice()) {
                (Some(_), [lease]) => Some((
                    self.config.tracking_base_url.clone(),
                    self.store.tracking_key().clone(),
                    lease.recipient_id.clone(),
                )),
                _ => None,
            };
            let signing = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
                let Some((base_url, key, recipient)) = personal else {
                    return Ok(signer.sign(&message.mime, now));
                };
                let template = message.template.as_deref().unwrap_or_default();
                // A tracked message is rendered for its one recipient first.
                let t = serde_json::from_slice::<Template>(template).map_err(|e| e.to_string())?;
                let personal = RecipientLinks {
                    base_url: &base_url,
                    key: &key,
                    account: &message.account_id,
                    recipient: &recipient,
                };
                let rendered = t.render(&message.id, message.created_at, &personal);
                Ok(signer.sign(&rendered, now))
            });
            match signing.await {
                Ok(Ok(signed)) => signed,
                Ok(Err(e)) => return self.each_lease(job, |_| failed("template", &e)),
                Err(e) => return self.each_lease(job, |_| failed("dkim", &e.to_string())),
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
                    Err(e) => {
                        self.each_lease(job, |l| self.deferral(job, l, because(e.to_string())))
                    }
                }
            }
            Destination::Smtp { key, hosts, relay } => {
                self.over_smtp(job, &key, &hosts, relay, &mail_from, &rcpts, &signed)
                    .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn over_smtp(
        &self,
        job: &Job,
        key: &str,
        hosts: &[(String, u16)],
        relay: bool,
        mail_from: &str,
        rcpts: &[String],
        signed: &[u8],
    ) -> Vec<OutcomeRecord> {
        let pool = job.message.pool.as_deref().and_then(|name| {
            let found = self.config.pools.get(name);
            if found.is_none() {
                tracing::warn!(
                    pool = name,
                    "no such IP pool in [delivery.pools]; sending from the default address"
                );
            }
            found.map(|p| (name, p))
        });
        // Connections from different source addresses are not interchangeable.
        let key = match pool {
            Some((name, _)) => format!("{name}|{key}"),
            None => key.to_owned(),
        };
        let q = self.destination(&key, &job.domain);
        // Waiting for a connection must not outlast the lease: give the recipients back.
        let wait = self.config.lease.0 / 3;
        let Ok(Ok(permit)) = tokio::time::timeout(wait, q.permits.acquire()).await else {
            if let Err(e) = self.store.release(&job.leases).await {
                tracing::warn!(error = %e, "cannot give leases back");
            }
            return vec![];
        };
        q.pace().await;
        let reused = q.idle.lock().expect("idle").pop();
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some((c, _)) => c,
            None => match self.connect(hosts, relay, pool.map(|(_, p)| p)).await {
                Ok(c) => c,
                Err(e) => {
                    drop(permit);
                    return self.each_lease(job, |l| self.deferral(job, l, because(e.to_string())));
                }
            },
        };
        if job.message.require_tls && conn.tls_version.is_none() {
            let text = format!(
                "{} does not offer STARTTLS and the message requires TLS",
                conn.host
            );
            self.park_idle(&q, conn);
            drop(permit);
            return self.each_lease(job, |_| failed("tls_required", &text));
        }
        let envelope = Envelope {
            mail_from,
            rcpt_to: rcpts,
            size: signed.len(),
        };
        let mut result = conn.send(&envelope, signed).await;
        // An idle connection the server has closed meanwhile fails at its first command,
        // before anything was taken: send once more on a new one rather than defer.
        if was_reused
            && let Err(
                ClientError::Io {
                    stage: Stage::MailFrom,
                    ..
                }
                | ClientError::Closed {
                    stage: Stage::MailFrom,
                },
            ) = &result
            && let Ok(fresh) = self.connect(hosts, relay, pool.map(|(_, p)| p)).await
            && (!job.message.require_tls || fresh.tls_version.is_some())
        {
            conn = fresh;
            result = conn.send(&envelope, signed).await;
        }
        let mx = Some(conn.host.clone());
        let records = match result {
            Ok(replies) => {
                let records = job
                    .leases
                    .iter()
                    .zip(&replies.rcpt)
                    .map(|(lease, rcpt_reply)| {
                        let reply = if rcpt_reply.is_positive() {
                            replies.data.as_ref().unwrap_or(rcpt_reply)
                        } else {
                            rcpt_reply
                        };
                        let outcome = if reply.is_positive() {
                            Outcome::Delivered(Delivery {
                                attempt: None,
                                mx: mx.clone(),
                                reply: Some(reply.to_string()),
                                tls: conn.tls_version.clone(),
                                ip: Some(conn.peer.ip().to_string()),
                            })
                        } else {
                            self.refusal(job, lease, reply, &mx)
                        };
                        self.record(job, lease, outcome)
                    })
                    .collect();
                if conn.transactions < q.limits.messages_per_connection {
                    self.park_idle(&q, conn);
                } else {
                    tokio::spawn(conn.quit());
                }
                records
            }
            Err(ClientError::Refused { reply, .. }) => {
                // MAIL FROM refused: the connection is still good.
                self.park_idle(&q, conn);
                self.each_lease(job, |l| self.refusal(job, l, &reply, &mx))
            }
            Err(e) => self.each_lease(job, |l| {
                let why = Deferral {
                    reason: Some(e.to_string()),
                    mx: mx.clone(),
                    ..Deferral::default()
                };
                self.deferral(job, l, why)
            }),
        };
        drop(permit);
        records
    }

    /// Tries each host and each of its addresses until one greets us.
    async fn connect(
        &self,
        hosts: &[(String, u16)],
        relay: bool,
        pool: Option<&crate::config::Pool>,
    ) -> Result<Connection, String> {
        let mut last = String::from("no mail server to try");
        let (source, ehlo_name) = match pool {
            Some(p) if !p.addresses.is_empty() => {
                let a = &p.addresses
                    [self.next_source.fetch_add(1, Ordering::Relaxed) % p.addresses.len()];
                (Some(a.ip), a.ehlo.as_str())
            }
            _ => (None, self.ehlo_name.as_str()),
        };
        for (host, port) in hosts {
            let addrs = match self.router.dns().addresses(host).await {
                Ok(a) if a.is_empty() => {
                    last = format!("{host} has no address");
                    continue;
                }
                Ok(a) => a,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            for ip in addrs {
                let options = ConnectOptions {
                    host,
                    addr: std::net::SocketAddr::new(ip, *port),
                    source,
                    ehlo_name,
                    timeouts: &self.config.timeouts,
                    tls: Some(if relay {
                        self.relay_tls.clone()
                    } else {
                        self.tls.clone()
                    }),
                };
                match Connection::open(options).await {
                    Ok(mut c) => {
                        self.stats
                            .connections_opened
                            .fetch_add(1, Ordering::Relaxed);
                        let auth = &self.config.relay;
                        if relay && !auth.username.is_empty() {
                            if c.tls_version.is_none() {
                                last = format!(
                                    "{host} offers no TLS; the relay password is not sent in clear"
                                );
                                continue;
                            }
                            if let Err(e) = c.auth_plain(&auth.username, &auth.password).await {
                                last = format!("{host}: {e}");
                                continue;
                            }
                        }
                        return Ok(c);
                    }
                    Err(e) => last = format!("{host} ({ip}): {e}"),
                }
            }
        }
        Err(last)
    }

    /// Puts a connection back for the next job, and closes it if none comes in time.
    fn park_idle(&self, q: &Arc<ConnectionPool>, conn: Connection) {
        let since = Instant::now();
        q.idle.lock().expect("idle").push((conn, since));
        let q = q.clone();
        let idle_for = self.config.timeouts.idle.0;
        tokio::spawn(async move {
            tokio::time::sleep(idle_for).await;
            let expired: Vec<Connection> = {
                let mut idle = q.idle.lock().expect("idle");
                let (old, fresh): (Vec<_>, Vec<_>) =
                    idle.drain(..).partition(|(_, t)| t.elapsed() >= idle_for);
                *idle = fresh;
                old.into_iter().map(|(c, _)| c).collect()
            };
            for c in expired {
                c.quit().await;
            }
        });
    }

    /// Forgets destinations that hold nothing (no job, no connection, no pace to keep) and,
    /// past [`MAX_SIGNERS`], the parsed DKIM keys: both maps are keyed by what senders
    /// choose (recipient domains, sending domains), so they must not only grow.
    fn prune(&self) {
        prune_destinations(
            &mut self.destinations.lock().expect("destinations"),
            Instant::now(),
        );
        let now_ms = self.store.clock().now().millis();
        let mut signers = self.signers.lock().expect("signers");
        signers.retain(|_, (_, at)| (0..kuvert_store::KEY_RECHECK_MS).contains(&(now_ms - *at)));
        if signers.len() > MAX_SIGNERS {
            signers.clear();
        }
    }

    fn destination(&self, key: &str, domain: &str) -> Arc<ConnectionPool> {
        let mut all = self.destinations.lock().expect("destinations");
        all.entry(key.to_owned())
            .or_insert_with(|| {
                let limits = self.config.limits_for(domain);
                Arc::new(ConnectionPool {
                    permits: Semaphore::new(limits.connections as usize),
                    limits,
                    idle: Mutex::default(),
                    next_slot: tokio::sync::Mutex::new(Instant::now()),
                })
            })
            .clone()
    }

    async fn signer(&self, domain: &DomainId) -> Result<Arc<DkimSigner>, String> {
        let now = self.store.clock().now().millis();
        let fresh = |at: i64| (0..kuvert_store::KEY_RECHECK_MS).contains(&(now - at));
        if let Some((s, at)) = self.signers.lock().expect("signers").get(domain)
            && fresh(*at)
        {
            return Ok(s.clone());
        }
        // Read again: a key whose account is gone must fail here, not sign from the cache.
        self.signers.lock().expect("signers").remove(domain);
        let d = self
            .store
            .domain_by_id(domain)
            .await
            .map_err(|e| e.to_string())?;
        let der = self
            .store
            .dkim_private_key(&d)
            .await
            .map_err(|e| e.to_string())?;
        let signer = tokio::task::spawn_blocking(move || {
            DkimSigner::from_pkcs8_der(&d.name, &d.selector, &der)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let signer = Arc::new(signer);
        self.signers
            .lock()
            .expect("signers")
            .insert(domain.clone(), (signer.clone(), now));
        Ok(signer)
    }

    /// A retry, or the end when the next try would come after the message's maximum age.
    fn deferral(&self, job: &Job, lease: &Lease, why: Deferral) -> Outcome {
        let now = self.store.clock().now();
        let next = Timestamp(now.millis() + self.config.retry_after(lease.attempts + 1).millis());
        let expires = Timestamp(job.message.created_at.millis() + self.config.max_age.millis());
        if next > expires {
            // The last failure stays beside the end: it is what a sender needs to know.
            return Outcome::Failed(Failure {
                attempt: None,
                reason: "expired".into(),
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
    fn refusal(&self, job: &Job, lease: &Lease, reply: &Reply, mx: &Option<String>) -> Outcome {
        if reply.is_permanent() {
            return Outcome::Bounced(Bounce {
                attempt: None,
                class: classify(reply),
                code: reply.enhanced_string(),
                reply: reply.to_string(),
                mx: mx.clone(),
                source: None,
                reporting_mta: None,
            });
        }
        let why = Deferral {
            reply: Some(reply.to_string()),
            mx: mx.clone(),
            ..Deferral::default()
        };
        self.deferral(job, lease, why)
    }

    fn record(&self, job: &Job, lease: &Lease, outcome: Outcome) -> OutcomeRecord {
        OutcomeRecord {
            lease: lease.clone(),
            tags: job.message.tags.clone(),
            outcome,
        }
    }

    fn each_lease(&self, job: &Job, mut f: impl FnMut(&Lease) -> Outcome) -> Vec<OutcomeRecord> {
        job.leases
            .iter()
            .map(|l| self.record(job, l, f(l)))
            .collect()
    }
}

/// Writes outcomes as they come, many jobs' in one transaction: under load one commit (one
/// disk flush) serves many deliveries, as group commit does for accepting.
async fn write_outcomes(
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
        counter.fetch_add(1, Ordering::Relaxed);
        if !held {
            stats.lost_leases.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Drops the destinations nothing holds: no job has it, no connection is open, and its pace
/// has no slot ahead to keep.
fn prune_destinations(all: &mut HashMap<String, Arc<ConnectionPool>>, now: Instant) {
    all.retain(|_, q| {
        let unused = Arc::strong_count(q) == 1
            && q.permits.available_permits() == q.limits.connections as usize
            && q.idle.lock().expect("idle").is_empty()
            && q.next_slot.try_lock().is_ok_and(|at| *at <= now);
        !unused
    });
}

impl ConnectionPool {
    /// Waits for this destination's next slot under `messages_per_minute`.
    async fn pace(&self) {
        let rate = self.limits.messages_per_minute;
        if rate == 0 {
            return;
        }
        let at = {
            let mut next = self.next_slot.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + Duration::from_secs(60) / rate;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// A retry for a failure before any reply.
fn because(reason: String) -> Deferral {
    Deferral {
        reason: Some(reason),
        ..Deferral::default()
    }
}

fn failed(reason: &str, detail: &str) -> Outcome {
    Outcome::Failed(Failure {
        reason: reason.to_owned(),
        detail: detail.to_owned(),
        ..Failure::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(per_minute: u32) -> ConnectionPool {
        let limits = DestinationLimits {
            messages_per_minute: per_minute,
            ..Default::default()
        };
        ConnectionPool {
            permits: Semaphore::new(limits.connections as usize),
            limits,
            idle: Mutex::default(),
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn destinations_nothing_holds_are_forgotten() {
        let mut all: HashMap<String, Arc<ConnectionPool>> = HashMap::new();
        for i in 0..1000 {
            all.insert(format!("mx{i}.example"), Arc::new(queue(0)));
        }
        let held = Arc::new(queue(0));
        all.insert("held".into(), held.clone());
        let paced = Arc::new(queue(6));
        paced.pace().await;
        all.insert("paced".into(), paced.clone());
        drop(paced);
        prune_destinations(&mut all, Instant::now());
        let mut left: Vec<&str> = all.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, ["held", "paced"], "one in use, one with a slot ahead");
        tokio::time::advance(Duration::from_secs(11)).await;
        prune_destinations(&mut all, Instant::now());
        assert_eq!(all.len(), 1);
        drop(held);
    }

    /// Tokio's paused clock stands in for time: the pacing is measured, not slept through.
    #[tokio::test(start_paused = true)]
    async fn messages_per_minute_spaces_the_transactions() {
        let q = queue(6);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..4 {
            q.pace().await;
            at.push((Instant::now() - start).as_secs());
        }
        assert_eq!(at, [0, 10, 20, 30], "six a minute: one every ten seconds");

        let unlimited = queue(0);
        let start = Instant::now();
        for _ in 0..100 {
            unlimited.pace().await;
        }
        assert_eq!(Instant::now(), start, "0 means no limit");
    }
}
