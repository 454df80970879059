//! What the benchmarks share: percentiles, memory from /proc, and a store with a premium
//! account (no quota to speak of), a sandbox domain and an acceptor.

#![allow(dead_code)] // each bench uses its own part

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kuvert_core::account::{Plan, PlanLimits};
use kuvert_core::id::AccountId;
use kuvert_core::submission::{Limits, Submission};
use kuvert_core::{Clock, Mailbox, Timestamp};
use kuvert_store::{Domain, Store};
use kuvert_submit::Acceptor;

/// Reads `--name NUMBER` flags (`_` allowed in numbers) into their places; `--bench`, which
/// cargo passes, is skipped, and anything else stops the bench.
pub fn read_flags(flags: &mut [(&str, &mut usize)]) {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue;
        }
        let Some((_, slot)) = flags.iter_mut().find(|(name, _)| name == flag) else {
            panic!("unknown argument {flag}");
        };
        **slot = it
            .next()
            .and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak resident memory of a process, from /proc (Linux).
pub fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

/// Resident memory now.
pub fn rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmRSS:")
}

fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A SQLite store in `dir` with one premium account and the sandbox domain `bench.test`.
pub struct Bench {
    pub store: Store,
    pub account: AccountId,
    pub domain: Domain,
    pub acceptor: Acceptor,
}

impl Bench {
    pub async fn open(dir: &Path, clock: Arc<dyn Clock>) -> Self {
        let store = kuvert_testkit::world::store_at(dir, clock).await;
        let (account, domain) = kuvert_testkit::world::sandbox_account(
            &store,
            "bench@bench.test",
            "bench.test",
            Plan::Premium,
        )
        .await;
        let plans = [(
            Plan::Premium,
            PlanLimits {
                monthly_quota: u64::MAX,
                daily_limit: u64::MAX,
                hourly_limit: u64::MAX,
                ..Plan::Premium.default_limits()
            },
        )]
        .into();
        let acceptor = Acceptor::new(store.clone(), Limits::default(), plans);
        Self {
            store,
            account: account.id,
            domain,
            acceptor,
        }
    }

    /// Accepts one message to `n` recipients `r{offset}@example.com` and on.
    pub async fn accept(&self, n: usize, offset: usize, at: Option<Timestamp>, tags: &[&str]) {
        self.acceptor
            .accept(&self.account, submission(n, offset, at, tags))
            .await
            .expect("accept");
    }
}

pub fn submission(n: usize, offset: usize, at: Option<Timestamp>, tags: &[&str]) -> Submission {
    let to = (offset..offset + n)
        .map(|i| Mailbox::parse(&format!("r{i}@example.com")).expect("to"))
        .collect();
    let mut s = Submission::plain(
        Mailbox::parse("b@bench.test").expect("from"),
        to,
        "bench",
        "x",
    );
    s.tags = tags.iter().map(|t| (*t).to_owned()).collect();
    s.send_at = at;
    s
}

/// About `size` bytes of ordinary words in lines of 76, as a newsletter's text would be.
pub fn newsletter_text(size: usize) -> String {
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        .repeat(size / 57 + 1)
        .as_bytes()[..size]
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `http_load` measured: every request's latency (sorted) and the time to the last 202.
pub struct HttpLoad {
    pub latencies: Vec<Duration>,
    pub took: Duration,
}

/// Sends `n` messages of `size` bytes of text, one recipient each (`reader{i}@example.com`),
/// through `POST /v1/messages` from `clients` concurrent clients; every answer must be 202.
pub async fn http_load(
    base_url: &str,
    key: &str,
    n: usize,
    size: usize,
    clients: usize,
) -> HttpLoad {
    let http = reqwest::Client::new();
    let url = format!("{base_url}/v1/messages");
    let text = newsletter_text(size);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, key, text, next) = (
                http.clone(),
                url.clone(),
                key.to_owned(),
                text.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return latencies;
                    }
                    let body = serde_json::json!({
                        "from": "Bench <bench@sandbox.kuvert.test>",
                        "to": [format!("reader{i}@example.com")],
                        "subject": format!("Issue {i}"),
                        "text": text,
                    });
                    let t = Instant::now();
                    let r = http
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(r.status().as_u16(), 202, "{:?}", r.text().await);
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    for w in workers {
        latencies.extend(w.await.expect("worker"));
    }
    let took = start.elapsed();
    latencies.sort();
    HttpLoad { latencies, took }
}

/// Imports the CSV file at `csv` into `list` (mode add) as the import job does: uploaded in
/// 1 MiB pieces, then worked by `Importer::run_one`. Returns how many contacts it created,
/// the time the upload took and the whole import's.
pub async fn import_csv(
    store: &Store,
    account: &AccountId,
    list: &kuvert_core::id::ListId,
    csv: &Path,
) -> (u64, Duration, Duration) {
    use kuvert_admin::contacts::import::{Importer, Upload};
    let started = Instant::now();
    let id = store
        .create_import(
            account,
            Some(list),
            kuvert_core::contact::ImportMode::Add,
            None,
        )
        .await
        .expect("import");
    let mut upload = Upload::new(store, account.clone(), id.clone(), u64::MAX);
    let mut f = std::fs::File::open(csv).expect("csv");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).expect("read");
        if n == 0 {
            break;
        }
        upload.push(&buf[..n]).await.expect("upload");
    }
    upload.finish().await.expect("uploaded");
    let uploaded = started.elapsed();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let importer = Importer::new(store.clone(), "bench", stopped);
    assert!(importer.run_one(account, &id).await.expect("import runs"));
    let total = started.elapsed();
    let done = store.import(account, id.as_str()).await.expect("import");
    (done.created, uploaded, total)
}
