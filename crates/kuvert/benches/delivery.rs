//! Delivery benchmark (not a test): the real `kuvert` binary accepts N messages over HTTP,
//! signs them with DKIM and delivers them over SMTP to a sink on loopback. Then the queue
//! benchmark: how long picking takes with a large number of deferred recipients waiting.
//!
//!     cargo bench -p kuvert --bench delivery                  # 20,000 messages, 1M deferred
//!     cargo bench -p kuvert --bench delivery -- --messages 2000 --deferred 100000
//!
//! Results go to standard output as Markdown rows for BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kuvert_core::account::Plan;
use kuvert_core::domain::DomainSettings;
use kuvert_core::submission::{Limits, Submission};
use kuvert_core::{Clock, Mailbox, Timestamp};
use kuvert_store::{Store, StoreOptions};
use kuvert_submit::Acceptor;
use kuvert_testkit::{KuvertServer, ServerOptions, SinkOptions, SmtpSink};

const BIN: &str = env!("CARGO_BIN_EXE_kuvert");

struct Args {
    messages: usize,
    size: usize,
    concurrency: usize,
    deferred: usize,
}

fn args() -> Args {
    let mut a = Args {
        messages: 20_000,
        size: 5 * 1024,
        concurrency: 32,
        deferred: 1_000_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--messages" => a.messages = value(),
            "--size" => a.size = value(),
            "--concurrency" => a.concurrency = value(),
            "--deferred" => a.deferred = value(),
            // cargo bench passes --bench; nothing else is expected.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Peak resident memory of a process, from /proc (Linux).
fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

/// Resident memory now.
fn rss_mib(pid: u32) -> f64 {
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

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        http_to_smtp(&a).await;
        if a.deferred > 0 {
            picking(a.deferred).await;
        }
    });
}

async fn http_to_smtp(a: &Args) {
    let sink = SmtpSink::start(SinkOptions::default());
    // The demo account is on the free plan: lift its monthly quota for the run.
    let config = format!(
        "[plans.free]\nevent_retention_days = 92\nmonthly_quota = 100000000\n\
         [delivery]\nmode = \"mx\"\n[delivery.routes]\n\"*\" = \"{}\"\n",
        sink.addr()
    );
    let server = KuvertServer::start(ServerOptions::new(BIN).arg("--dev").config(&config));
    let key = server
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("API key:"))
        .map(|k| k.trim().to_owned())
        .expect("the dev banner shows the key");
    let http = reqwest::Client::new();
    let url = server.url("/v1/messages");
    // A 5 KB text body of ordinary words, with line breaks, as a newsletter would have.
    let text: String = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        .repeat(a.size / 57 + 1)
        .as_bytes()[..a.size]
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..a.concurrency)
        .map(|_| {
            let (http, url, key, text, next, n) = (
                http.clone(),
                url.clone(),
                key.clone(),
                text.clone(),
                next.clone(),
                a.messages,
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
    let mut latencies = Vec::with_capacity(a.messages);
    for w in workers {
        latencies.extend(w.await.expect("worker"));
    }
    let accepted_in = start.elapsed();
    while sink.received_count() < a.messages {
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "deliveries stalled at {}",
            sink.received_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered_in = start.elapsed();
    let signed = sink
        .received()
        .iter()
        .filter(|r| r.data.starts_with(b"DKIM-Signature:"))
        .count();
    assert_eq!(signed, a.messages, "every message arrives signed");
    latencies.sort();
    let rss = server.pid().map_or(0.0, peak_rss_mib);
    let n = a.messages as f64;
    println!(
        "\n## HTTP to SMTP: {} messages of {} bytes, {} clients",
        a.messages, a.size, a.concurrency
    );
    println!(
        "| accepted/s | delivered/s (end to end) | accept p50 | accept p99 | server peak RSS |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {:.0} | {:.0} | {:.1} ms | {:.1} ms | {:.0} MiB |",
        n / accepted_in.as_secs_f64(),
        n / delivered_in.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        rss
    );
}

/// Fills a store with `deferred` recipients scheduled a week ahead, then times picking.
async fn picking(deferred: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let clock = Arc::new(kuvert_core::SystemClock);
    let store = Store::open(StoreOptions {
        url: StoreOptions::sqlite_url(dir.path()),
        master_key: [3; 32],
        clock: clock.clone(),
    })
    .await
    .expect("store");
    let (account, _) = kuvert_admin::create_account(
        &store,
        kuvert_admin::AccountRequest {
            email: "bench@bench.test".into(),
            password: "b3nch-mark".into(),
            plan: Plan::Premium,
            region: Default::default(),
            company: Default::default(),
            owner: Default::default(),
        },
    )
    .await
    .expect("account");
    kuvert_admin::add_domain(
        &store,
        &account.id,
        "bench.test",
        &DomainSettings::default(),
        true,
    )
    .await
    .expect("domain");
    let plans = [(
        Plan::Premium,
        kuvert_core::account::PlanLimits {
            event_retention_days: 396,
            monthly_quota: u64::MAX,
        },
    )]
    .into();
    let acceptor = Acceptor::new(store.clone(), Limits::default(), plans);
    let submission = |n: usize, at: Option<Timestamp>, offset: usize| Submission {
        from: Mailbox::parse("b@bench.test").expect("from"),
        to: (0..n)
            .map(|i| Mailbox::parse(&format!("r{}@example.com", offset + i)).expect("to"))
            .collect(),
        cc: vec![],
        bcc: vec![],
        reply_to: None,
        subject: "later".into(),
        text: Some("x".into()),
        html: None,
        headers: vec![],
        attachments: vec![],
        tags: vec![],
        metadata: Default::default(),
        send_at: at,
        tracking: Default::default(),
        require_tls: false,
        raw: None,
    };
    let fill_start = Instant::now();
    let week = Timestamp(clock.now().millis() + 6 * 86_400_000);
    let mut filled = 0;
    while filled < deferred {
        let n = (deferred - filled).min(1000);
        acceptor
            .accept(&account.id, submission(n, Some(week), filled))
            .await
            .expect("accept");
        filled += n;
    }
    let fill = fill_start.elapsed();
    let rss_before = rss_mib(std::process::id());
    let lease = Duration::from_secs(600);
    let mut empty = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let got = store.lease_due("bench", 200, lease).await.expect("lease");
        empty.push(t.elapsed());
        assert!(got.is_empty());
    }
    let mut due = Vec::new();
    for round in 0..21 {
        acceptor
            .accept(&account.id, submission(200, None, deferred + round * 200))
            .await
            .expect("accept");
        let t = Instant::now();
        let got = store.lease_due("bench", 200, lease).await.expect("lease");
        due.push(t.elapsed());
        assert_eq!(got.len(), 200);
    }
    empty.sort();
    due.sort();
    let rss_after = rss_mib(std::process::id());
    println!(
        "\n## Picking with {deferred} deferred recipients (SQLite), filled in {:.0} s",
        fill.as_secs_f64()
    );
    println!(
        "| pick 200, none due (p50) | pick 200 due among them (p50) | RSS before picking | after 42 picks |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {:.2} ms | {:.2} ms | {:.0} MiB | {:.0} MiB |",
        percentile(&empty, 0.5).as_secs_f64() * 1000.0,
        percentile(&due, 0.5).as_secs_f64() * 1000.0,
        rss_before,
        rss_after
    );
    store.close().await;
}
