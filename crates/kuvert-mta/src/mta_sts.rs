//! MTA-STS on delivery (RFC 8461): each recipient domain's policy, looked up, fetched over
//! HTTPS and cached (in memory for [`RECHECK_MS`], in the store until it expires), and the
//! TLS sessions counted for the daily report of RFC 8460, which `kuvert-admin` sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kuvert_core::Timestamp;
use kuvert_core::domain::RecordType;
use kuvert_core::mta_sts::{MAX_POLICY_BYTES, ResultType, StsMode, StsPolicy, StsRecord};
use kuvert_dns::Dns;
use kuvert_dns::http::{HttpResolver, error_chain};
use kuvert_store::{CachedPolicy, Store, TlsSessions};

use crate::config::MtaSts as Config;
use crate::smtp::tls::{CertificateCheck, roots};

/// How long what was learnt of a domain (its policy, or that it has none, or that its policy
/// could not be fetched) is used before DNS is asked again: RFC 8461 §3.3 asks for no more
/// than one fetch per five minutes after a failure.
pub const RECHECK_MS: i64 = 5 * 60_000;

/// A domain's policy, as delivery applies it.
#[derive(Debug)]
pub struct Applied {
    pub domain: String,
    /// The id of the record it was fetched under.
    pub id: String,
    pub policy: StsPolicy,
    lines: Vec<String>,
}

impl Applied {
    pub fn enforced(&self) -> bool {
        self.policy.mode == StsMode::Enforce
    }
}

/// Day, policy domain, policy id, MX host, result.
type TallyKey = (i64, String, String, String, Option<ResultType>);
/// Kinds of sessions counted between two flushes, at most: should the store refuse them for
/// long, the count stops growing rather than memory.
const MAX_TALLY: usize = 100_000;
/// Takes a domain off the map of looks in progress when dropped.
struct Forget<'a>(
    &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    &'a str,
);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Ok(mut looking) = self.0.lock() {
            looking.remove(self.1);
        }
    }
}

/// What was learnt of a domain (`None`: no policy applies), and when (store clock, ms).
type Learnt = (Option<Arc<Applied>>, i64);

pub struct Sts {
    store: Store,
    dns: Dns,
    http: reqwest::Client,
    port: u16,
    pub certificates: CertificateCheck,
    /// What was last learnt of each domain (`None`: no policy applies), with when.
    memory: Mutex<HashMap<String, Learnt>>,
    /// The domains being looked up now, each behind its own lock.
    looking: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Sessions counted since the last flush, and the policy lines of each domain's.
    tally: Mutex<HashMap<TallyKey, (Vec<String>, u64)>>,
}

impl Sts {
    /// Checked at start (`DeliveryConfig::problems`): an unreadable `ca_file` trusts only the
    /// public roots.
    pub fn new(store: Store, dns: Dns, config: &Config) -> Self {
        let roots = roots(&config.ca_file).unwrap_or_else(|e| {
            tracing::error!(error = %e, "[delivery.mta_sts] ca_file cannot be read; only the public roots are trusted");
            roots("").expect("the built-in roots")
        });
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .no_proxy()
            // RFC 8461 §3.3: no redirects, no HTTP caching (reqwest keeps none).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.fetch_timeout.0)
            .dns_resolver(Arc::new(HttpResolver {
                dns: dns.clone(),
                allow_private: config.allow_private,
                setting: "[delivery.mta_sts] allow_private",
            }))
            .user_agent("Kuvert-MTA-STS/1");
        if !config.ca_file.is_empty()
            && let Ok(pem) = std::fs::read(&config.ca_file)
            && let Ok(certs) = reqwest::Certificate::from_pem_bundle(&pem)
        {
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        Self {
            store,
            dns,
            http: http.build().expect("an HTTP client"),
            port: config.policy_port,
            certificates: CertificateCheck::new(roots),
            memory: Mutex::default(),
            looking: Mutex::default(),
            tally: Mutex::default(),
        }
    }

    /// The policy that applies to mail for `domain` now, if any (`none` mode is none).
    pub async fn policy(&self, domain: &str) -> Option<Arc<Applied>> {
        if domain.starts_with('[') {
            // An address literal names no domain that could publish a policy.
            return None;
        }
        let now = self.store.clock().now();
        if let Some(known) = self.known(domain, now) {
            return known;
        }
        // One look per domain at a time: the jobs of a first batch to a large domain would
        // otherwise each fetch its policy at once.
        let lock = self
            .looking
            .lock()
            .expect("sts looking")
            .entry(domain.to_owned())
            .or_default()
            .clone();
        let _one = lock.lock().await;
        // Taken off the map however this ends (a look cancelled at shutdown included).
        let _gone = Forget(&self.looking, domain);
        // The clock read again: what the look before this one learnt is not older than now.
        let now = self.store.clock().now();
        if let Some(known) = self.known(domain, now) {
            return known;
        }
        let found = self.look(domain, now).await.and_then(|c| {
            (c.policy.mode != StsMode::None).then(|| {
                Arc::new(Applied {
                    domain: domain.to_owned(),
                    id: c.id,
                    lines: c.policy.lines(),
                    policy: c.policy,
                })
            })
        });
        self.memory
            .lock()
            .expect("sts memory")
            .insert(domain.to_owned(), (found.clone(), now.millis()));
        found
    }

    /// What was learnt of `domain` less than [`RECHECK_MS`] ago, if anything.
    fn known(&self, domain: &str, now: Timestamp) -> Option<Option<Arc<Applied>>> {
        let memory = self.memory.lock().expect("sts memory");
        let (known, at) = memory.get(domain)?;
        (0..RECHECK_MS)
            .contains(&(now.millis() - at))
            .then(|| known.clone())
    }

    /// DNS, then the cache, then the policy host. A cached policy applies until it expires
    /// even when its record is gone or the host fails (RFC 8461 §5.1): an attacker who
    /// removes them gains nothing. One past half its `max_age` is fetched again (RFC 8461
    /// §10.2), so that it does not lapse for want of a single fetch at its end.
    async fn look(&self, domain: &str, now: Timestamp) -> Option<CachedPolicy> {
        let cached = match self.store.sts_policy(domain).await {
            Ok(c) => c.filter(|c| c.expires_at > now),
            Err(e) => {
                tracing::warn!(error = %e, domain, "cannot read the cached MTA-STS policy");
                None
            }
        };
        let record = match self
            .dns
            .lookup(&format!("_mta-sts.{domain}"), RecordType::Txt)
            .await
        {
            Ok(answers) => StsRecord::find(&answers).ok().flatten(),
            Err(_) => None,
        };
        let Some(record) = record else {
            return cached;
        };
        let fresh_enough = |c: &CachedPolicy| {
            c.expires_at.millis() - now.millis() > i64::from(c.policy.max_age) * 500
        };
        if cached
            .as_ref()
            .is_some_and(|c| c.id == record.id && fresh_enough(c))
        {
            return cached;
        }
        match self.fetch(domain).await {
            Ok(policy) => {
                let fresh = CachedPolicy {
                    id: record.id,
                    expires_at: now.plus_millis(i64::from(policy.max_age) * 1000),
                    policy,
                };
                if let Err(e) = self.store.save_sts_policy(domain, &fresh).await {
                    tracing::warn!(error = %e, domain, "cannot keep an MTA-STS policy");
                }
                Some(fresh)
            }
            Err((kind, why)) => {
                tracing::info!(domain, error = %why, "MTA-STS policy not fetched");
                match &cached {
                    Some(c) => self.add(domain, &c.id, &c.policy.lines(), "", Some(kind)),
                    None => self.add(domain, "", &[], "", Some(kind)),
                }
                cached
            }
        }
    }

    async fn fetch(&self, domain: &str) -> Result<StsPolicy, (ResultType, String)> {
        let port = match self.port {
            443 => String::new(),
            p => format!(":{p}"),
        };
        let url = format!("https://mta-sts.{domain}{port}/.well-known/mta-sts.txt");
        let failed = |kind, why: String| (kind, format!("{url}: {why}"));
        let mut response = self.http.get(&url).send().await.map_err(|e| {
            let why = error_chain(&e);
            let kind = if why.contains("certificate") {
                ResultType::StsWebpkiInvalid
            } else {
                ResultType::StsPolicyFetchError
            };
            failed(kind, why)
        })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(failed(
                ResultType::StsPolicyFetchError,
                format!("HTTP {}", response.status()),
            ));
        }
        let media = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if media.as_deref() != Some("text/plain") {
            return Err(failed(
                ResultType::StsPolicyInvalid,
                format!("served as {media:?}, not text/plain"),
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(ResultType::StsPolicyFetchError, error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_POLICY_BYTES {
                return Err(failed(
                    ResultType::StsPolicyInvalid,
                    "longer than 64 KiB".into(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body)
            .map_err(|_| failed(ResultType::StsPolicyInvalid, "not UTF-8".into()))?;
        StsPolicy::parse(&text).map_err(|e| failed(ResultType::StsPolicyInvalid, e.to_string()))
    }

    /// Counts one session with `mx_host` under a domain's policy (`None`: it succeeded).
    pub fn count(&self, applied: &Applied, mx_host: &str, result: Option<ResultType>) {
        self.add(
            &applied.domain,
            &applied.id,
            &applied.lines,
            mx_host,
            result,
        );
    }

    fn add(
        &self,
        domain: &str,
        id: &str,
        lines: &[String],
        mx_host: &str,
        result: Option<ResultType>,
    ) {
        let day = self.store.clock().now().seconds().div_euclid(86_400);
        let key = (
            day,
            domain.to_owned(),
            id.to_owned(),
            mx_host.to_ascii_lowercase(),
            result,
        );
        let mut tally = self.tally.lock().expect("sts tally");
        if tally.len() >= MAX_TALLY && !tally.contains_key(&key) {
            return;
        }
        let entry = tally.entry(key).or_insert_with(|| (Vec::new(), 0));
        // The key holds the policy's id, so its lines are copied once, not per session.
        if entry.0.is_empty() && !lines.is_empty() {
            entry.0 = lines.to_vec();
        }
        entry.1 += 1;
    }

    /// Writes the sessions counted so far to the store; they are kept for the next try if
    /// that fails.
    pub async fn flush(&self) {
        let taken: Vec<(TallyKey, (Vec<String>, u64))> =
            self.tally.lock().expect("sts tally").drain().collect();
        if taken.is_empty() {
            return;
        }
        let sessions: Vec<TlsSessions> = taken
            .iter()
            .map(|((day, domain, id, mx, result), (lines, n))| TlsSessions {
                day: *day,
                policy_domain: domain.clone(),
                policy_id: id.clone(),
                mx_host: mx.clone(),
                result: *result,
                policy: lines.clone(),
                count: *n,
            })
            .collect();
        if let Err(e) = self.store.add_tls_sessions(&sessions).await {
            tracing::warn!(error = %e, "cannot write the TLS session counts; kept for the next try");
            let mut tally = self.tally.lock().expect("sts tally");
            for (k, (lines, n)) in taken {
                if tally.len() >= MAX_TALLY && !tally.contains_key(&k) {
                    continue;
                }
                let entry = tally.entry(k).or_insert_with(|| (lines, 0));
                entry.1 += n;
            }
        }
    }

    /// Forgets what was learnt longer ago than [`RECHECK_MS`]: the map is keyed by recipient
    /// domains, which senders choose.
    pub fn prune(&self) {
        let now = self.store.clock().now().millis();
        self.memory
            .lock()
            .expect("sts memory")
            .retain(|_, (_, at)| (0..RECHECK_MS).contains(&(now - *at)));
    }
}
