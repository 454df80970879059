//! Event benchmark (not a test). Two parts, on SQLite:
//!
//! 1. Appends: events/s through `accept()` (each recipient is a recipient row, an `accepted`
//!    event, its statistics counters, and one outbox row per webhook endpoint), with no
//!    endpoint and with two endpoints that want every event.
//! 2. Statistics over many events: N `accepted` events spread over a year (4 tags, 2
//!    domains), then `GET /v1/stats`'s query timed over 30 days and a year, for the account,
//!    a tag and a domain.
//! 3. The retention purge of those N events (`Store::purge`, in batches) while 4
//!    tasks send one-recipient messages, with their accept latency beside that of 20 s of
//!    sending without the purge; then the statistics are checked again.
//!
//! ```text
//! cargo bench -p kuvert --bench events                      # 10,000,000 events
//! cargo bench -p kuvert --bench events -- --events 100000 --append 20000
//! ```
//!
//! Results go to standard output as Markdown rows for BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kuvert_core::domain::DomainSettings;
use kuvert_core::{Clock, ManualClock, Timestamp};
use kuvert_store::StatsQuery;
use support::{Bench, ms, percentile, read_flags, rss_mib, submission};

mod support;

const DAY_MS: i64 = 86_400_000;
const TAGS: [&str; 4] = ["news", "billing", "alerts", "welcome"];

struct Args {
    events: usize,
    append: usize,
    purge_batch: usize,
    purge_pause_ms: usize,
}

fn args() -> Args {
    let mut a = Args {
        events: 10_000_000,
        append: 200_000,
        purge_batch: 1_000,
        purge_pause_ms: 10,
    };
    read_flags(&mut [
        ("--events", &mut a.events),
        ("--append", &mut a.append),
        ("--purge-batch", &mut a.purge_batch),
        ("--purge-pause-ms", &mut a.purge_pause_ms),
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
        appends(a.append).await;
        statistics(a.events, a.purge_batch, a.purge_pause_ms).await;
    });
}

/// Accepts `total` recipients, 100 per message, from 4 tasks (so that the group commit
/// batches them as it would under load); answers events per second.
async fn append_rate(bench: Arc<Bench>, total: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (bench, next) = (bench.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let offset = next.fetch_add(100, Ordering::Relaxed);
                    if offset >= total {
                        return;
                    }
                    bench.accept(100, offset, None, &["news"]).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn appends(total: usize) {
    let mut rates = Vec::new();
    for endpoints in [0, 2] {
        let dir = tempfile::tempdir().expect("dir");
        let bench = Arc::new(Bench::open(dir.path(), Arc::new(kuvert_core::SystemClock)).await);
        for i in 0..endpoints {
            bench
                .store
                .create_webhook(
                    &bench.account,
                    &format!("https://hooks{i}.example/"),
                    &[],
                    "key",
                )
                .await
                .expect("webhook");
        }
        rates.push((endpoints, append_rate(bench.clone(), total).await));
        bench.store.close().await;
    }
    println!("\n## Event appends through accept(), {total} recipients, 100 per message, 4 tasks");
    println!("| statistics | webhook endpoints | events/s |");
    println!("|---|---|---|");
    for (endpoints, rate) in &rates {
        println!("| on | {endpoints} | {rate:.0} |");
    }
    println!(
        "with two endpoints: {:.2} of the rate without",
        rates[1].1 / rates[0].1
    );
}

/// How long sending is measured without the purge.
const SEND_WINDOW: std::time::Duration = std::time::Duration::from_secs(20);

enum SendUntil {
    For(std::time::Duration),
    Done(tokio::task::JoinHandle<(u64, std::time::Duration)>),
}

/// Accept latencies of one-recipient messages sent from 4 tasks until the window ends or
/// the task finishes (whose result comes back too).
async fn send_latencies(
    bench: Arc<Bench>,
    until: SendUntil,
) -> (Vec<std::time::Duration>, Option<(u64, std::time::Duration)>) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(50_000_000));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (bench, stop, next) = (bench.clone(), stop.clone(), next.clone());
            tokio::spawn(async move {
                let mut l = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    bench.accept(1, i, None, &["news"]).await;
                    l.push(t.elapsed());
                }
                l
            })
        })
        .collect();
    let result = match until {
        SendUntil::For(d) => {
            tokio::time::sleep(d).await;
            None
        }
        SendUntil::Done(task) => Some(task.await.expect("task")),
    };
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for s in senders {
        all.extend(s.await.expect("sender"));
    }
    all.sort();
    (all, result)
}

async fn statistics(total: usize, purge_batch: usize, purge_pause_ms: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let year_ago = Timestamp(1_764_547_200_000); // 2025-12-01
    let clock = ManualClock::new(year_ago);
    let bench = Bench::open(dir.path(), Arc::new(clock.clone())).await;
    let (second, _) = kuvert_admin::add_domain(
        &bench.store,
        &bench.account,
        "bench2.test",
        &DomainSettings::default(),
        true,
    )
    .await
    .expect("domain");

    // A year of mail, 1,000 recipients per message, the clock moving between messages.
    let messages = total.div_ceil(1000);
    let step = 365 * DAY_MS / messages as i64;
    let fill_start = Instant::now();
    let mut filled = 0;
    for m in 0..messages {
        let n = (total - filled).min(1000);
        let mut s = submission(n, filled, None, &[TAGS[m % TAGS.len()]]);
        if m % 2 == 1 {
            s.from = kuvert_core::Mailbox::parse("b@bench2.test").expect("from");
        }
        bench
            .acceptor
            .accept(&bench.account, s)
            .await
            .expect("accept");
        filled += n;
        clock.advance_millis(step);
    }
    let fill = fill_start.elapsed();
    let now = clock.now();
    let month = StatsQuery {
        from: Timestamp(now.millis() - 30 * DAY_MS),
        to: now,
        domain_id: None,
        tag: None,
    };
    let year = StatsQuery {
        from: Timestamp(now.millis() - 366 * DAY_MS),
        ..month.clone()
    };
    let queries = [
        ("30 days, account", month),
        ("a year, account", year.clone()),
        (
            "a year, one tag",
            StatsQuery {
                tag: Some("news".into()),
                ..year.clone()
            },
        ),
        (
            "a year, one domain",
            StatsQuery {
                domain_id: Some(second.id.to_string()),
                ..year.clone()
            },
        ),
    ];
    let mut rows = Vec::new();
    for (name, q) in &queries {
        let mut times = Vec::new();
        let mut got = 0;
        for _ in 0..21 {
            let t = Instant::now();
            got = bench
                .store
                .stats(&bench.account, q)
                .await
                .expect("stats")
                .len();
            times.push(t.elapsed());
        }
        times.sort();
        rows.push((
            *name,
            got,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        ));
    }
    let accepted = |counts: &[(Timestamp, String, i64)]| -> i64 {
        counts
            .iter()
            .filter(|(_, m, _)| m == "accepted")
            .map(|(_, _, n)| n)
            .sum()
    };
    let before = accepted(
        &bench
            .store
            .stats(&bench.account, &year)
            .await
            .expect("stats"),
    );
    assert_eq!(before, total as i64, "the counters match the events");

    // Sending alone, then sending while the retention purge deletes every one of the
    // events (a policy of zero months), in batches; the statistics stay.
    let bench = Arc::new(bench);
    let quiet = send_latencies(bench.clone(), SendUntil::For(SEND_WINDOW)).await;
    let policy = kuvert_store::RetentionPolicy {
        event_months: [(kuvert_core::account::Plan::Premium, 0)].into(),
        content_ms: i64::MAX / 2,
        batch: purge_batch as u32,
        pause: std::time::Duration::from_millis(purge_pause_ms as u64),
    };
    let purging = {
        let bench = bench.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let c = bench.store.purge(&policy, false).await.expect("purge");
            (c.events, start.elapsed())
        })
    };
    let during = send_latencies(bench.clone(), SendUntil::Done(purging)).await;
    let (purged, purge) = during.1.expect("purge result");
    let during = during.0;
    assert_eq!(purged, total as u64);
    let after = accepted(
        &bench
            .store
            .stats(&bench.account, &year)
            .await
            .expect("stats"),
    );
    assert_eq!(after, before, "the statistics outlive the events");
    let rss = rss_mib(std::process::id());

    println!(
        "\n## Statistics over {total} events (SQLite; filled in {:.0} s, {:.0} events/s)",
        fill.as_secs_f64(),
        total as f64 / fill.as_secs_f64()
    );
    println!("| query | hourly rows | p50 | p99 (of 21) |");
    println!("|---|---|---|---|");
    for (name, got, p50, p99) in rows {
        println!("| {name} | {got} | {:.2} ms | {:.2} ms |", ms(p50), ms(p99));
    }
    println!(
        "\n## Retention purge of {purged} events (batches of {purge_batch}, {purge_pause_ms} ms apart) in {:.1} s ({:.0}/s); totals after: {after} accepted, as before; bench RSS {rss:.0} MiB",
        purge.as_secs_f64(),
        purged as f64 / purge.as_secs_f64().max(f64::EPSILON)
    );
    println!("| sends (1 recipient, 4 tasks) | messages | accept p50 | accept p99 |");
    println!("|---|---|---|---|");
    for (name, l) in [
        ("without the purge", &quiet.0),
        ("during the purge", &during),
    ] {
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms |",
            l.len(),
            ms(percentile(l, 0.5)),
            ms(percentile(l, 0.99))
        );
    }
    bench.store.close().await;
}
