//! Delivery benchmark (not a test): the real `kuvert` binary accepts N messages over HTTP,
//! signs them with DKIM and delivers them over SMTP to a sink on loopback. Then the queue
//! benchmark: how long picking takes with a large number of deferred recipients waiting.
//!
//!     cargo bench -p kuvert --bench delivery                  # 20,000 messages, 1M deferred
//!     cargo bench -p kuvert --bench delivery -- --messages 2000 --deferred 100000
//!
//! Results go to standard output as Markdown rows for BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kuvert_core::{Clock, Timestamp};
use kuvert_testkit::{KuvertServer, ServerOptions, SinkOptions, SmtpSink};
use support::{Bench, HttpLoad, http_load, ms, peak_rss_mib, percentile, read_flags, rss_mib};

mod support;

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
    read_flags(&mut [
        ("--messages", &mut a.messages),
        ("--size", &mut a.size),
        ("--concurrency", &mut a.concurrency),
        ("--deferred", &mut a.deferred),
    ]);
    a
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
        "[plans.free]\nevent_retention_months = 3\nmonthly_quota = 100000000\ndaily_limit = 100000000\nhourly_limit = 100000000\n\
         [delivery]\nmode = \"mx\"\n[delivery.routes]\n\"*\" = \"{}\"\n",
        sink.addr()
    );
    let server = KuvertServer::start(ServerOptions::new(BIN).arg("--dev").config(&config));
    let key = server.dev_key();
    let start = Instant::now();
    let HttpLoad {
        latencies,
        took: accepted_in,
    } = http_load(&server.base_url, &key, a.messages, a.size, a.concurrency).await;
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
    let bench = Bench::open(dir.path(), clock.clone()).await;
    let fill_start = Instant::now();
    let week = Timestamp(clock.now().millis() + 6 * 86_400_000);
    let mut filled = 0;
    while filled < deferred {
        let n = (deferred - filled).min(1000);
        bench.accept(n, filled, Some(week), &[]).await;
        filled += n;
    }
    let fill = fill_start.elapsed();
    let rss_before = rss_mib(std::process::id());
    let lease = Duration::from_secs(600);
    let mut empty = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let got = bench
            .store
            .lease_due("bench", 200, lease)
            .await
            .expect("lease");
        empty.push(t.elapsed());
        assert!(got.is_empty());
    }
    let mut due = Vec::new();
    for round in 0..21 {
        bench.accept(200, deferred + round * 200, None, &[]).await;
        let t = Instant::now();
        let got = bench
            .store
            .lease_due("bench", 200, lease)
            .await
            .expect("lease");
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
        ms(percentile(&empty, 0.5)),
        ms(percentile(&due, 0.5)),
        rss_before,
        rss_after
    );
    bench.store.close().await;
}
