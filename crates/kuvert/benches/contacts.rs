//! Contacts benchmark (not a test), on SQLite and then PostgreSQL (`KUVERT_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432/test`; a database of its own is made with
//! `psql` and dropped after):
//!
//! 1. Import: a CSV of N rows with five columns (email, name, city, age, vip) written to a
//!    file, uploaded in 1 MiB pieces (`Upload`) and worked by the import job
//!    (`Importer::run_one`): rows a second for the whole import and for its writing phase.
//! 2. Export: every contact as CSV, to a sink that only counts bytes.
//! 3. Segment count over the N contacts (age >= 30 and city = Berlin, and list members who
//!    never opened), the median of 5.
//!
//! Peak RSS is this process's high-water mark (VmHWM) after each part.
//!
//! ```text
//! cargo bench -p kuvert --bench contacts                   # 1,000,000 rows
//! cargo bench -p kuvert --bench contacts -- --rows 100000 --postgres 0
//! cargo bench -p kuvert --bench contacts -- --sqlite 0     # PostgreSQL alone
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuvert_core::contact::PropertyKind;
use kuvert_store::{Store, StoreOptions};

mod support;

struct Counter(u64);

impl kuvert_admin::export::ExportSink for Counter {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), kuvert_admin::AdminError> {
        self.0 += bytes.len() as u64;
        Ok(())
    }
}

fn peak_mib() -> f64 {
    support::peak_rss_mib(std::process::id())
}

fn write_csv(path: &std::path::Path, rows: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("csv"));
    writeln!(f, "email,name,city,age,vip").expect("write");
    for i in 0..rows {
        let city = ["Berlin", "Paris", "Lyon", "Hamburg"][i % 4];
        writeln!(
            f,
            "user{i}@example.com,User {i},{city},{},{}",
            i % 90,
            i % 7 == 0
        )
        .expect("write");
    }
    f.flush().expect("flush");
}

async fn run(label: &str, store: Store, csv: &std::path::Path, rows: usize) {
    let (account, _) = kuvert_testkit::world::sandbox_account(
        &store,
        "bench@contacts.test",
        "contacts.test",
        kuvert_core::account::Plan::Premium,
    )
    .await;
    let a = account.id;
    for (name, kind) in [
        ("city", PropertyKind::String),
        ("age", PropertyKind::Integer),
        ("vip", PropertyKind::Boolean),
    ] {
        store
            .define_property(&a, name, kind)
            .await
            .expect("property");
    }
    let list = store
        .create_list(&a, kuvert_store::ListSettings::named("all"))
        .await
        .expect("list");

    let (created, uploaded, total) = support::import_csv(&store, &a, &list.id, csv).await;
    assert_eq!(created as usize, rows);
    let write_phase = total - uploaded;
    println!(
        "| {label} | import {rows} rows | {:.1} s | {:.0} rows/s | upload {:.1} s, then scan and write {:.0} rows/s | {:.0} MiB |",
        total.as_secs_f64(),
        rows as f64 / total.as_secs_f64(),
        uploaded.as_secs_f64(),
        rows as f64 / write_phase.as_secs_f64(),
        peak_mib()
    );

    let started = Instant::now();
    let mut sink = Counter(0);
    kuvert_admin::contacts::export(
        &store,
        &a,
        None,
        kuvert_admin::contacts::Format::Csv,
        &mut sink,
    )
    .await
    .expect("export");
    let took = started.elapsed();
    println!(
        "| {label} | export {rows} contacts (CSV, {:.0} MiB) | {:.1} s | {:.0} contacts/s | | {:.0} MiB |",
        sink.0 as f64 / 1_048_576.0,
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        peak_mib()
    );

    for (what, filter) in [
        (
            "age >= 30 and city = Berlin",
            serde_json::json!({"all": [
                {"property": {"name": "age", "op": "gte", "value": 30}},
                {"property": {"name": "city", "op": "eq", "value": "Berlin"}}
            ]}),
        ),
        (
            "in the list, never opened",
            serde_json::json!({"all": [
                {"list": {"list": list.id.as_str()}},
                {"engagement": {"kind": "opened", "never": true}}
            ]}),
        ),
    ] {
        let filter = serde_json::from_value(filter).expect("filter");
        let mut times: Vec<Duration> = Vec::new();
        let mut count = 0;
        for _ in 0..5 {
            let t = Instant::now();
            count = store.segment_count(&a, &filter).await.expect("count");
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "| {label} | segment count over {rows}: {what} ({count}) | {:.0} ms median of 5 | | | |",
            support::ms(times[2])
        );
    }
    store.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (mut rows, mut sqlite, mut postgres) = (1_000_000, 1, 1);
    support::read_flags(&mut [
        ("--rows", &mut rows),
        ("--sqlite", &mut sqlite),
        ("--postgres", &mut postgres),
    ]);
    let dir = tempfile::tempdir().expect("dir");
    let csv = dir.path().join("contacts.csv");
    write_csv(&csv, rows);
    println!("| store | what | time | rate | detail | peak RSS |");
    println!("|---|---|---|---|---|---|");
    // The real clock: ids sort by their time part, and an import that runs for minutes makes
    // ids that grow with it. A clock stopped for the whole run would make a million ids in
    // one millisecond, ordered only by their random part, and every index of a contact id
    // would take its insertions at random places, as no import ever does.
    let clock: Arc<dyn kuvert_core::Clock> = Arc::new(kuvert_core::SystemClock);
    std::fs::create_dir_all(dir.path().join("db")).expect("dir");
    if sqlite != 0 {
        let store = kuvert_testkit::world::store_at(&dir.path().join("db"), clock.clone()).await;
        run("SQLite", store, &csv, rows).await;
    }
    if postgres == 0 {
        return;
    }
    let admin = std::env::var("KUVERT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let db = format!("kuvert_bench_contacts_{}", std::process::id());
    let psql = |sql: &str| {
        let ok = std::process::Command::new("psql")
            .args([admin.as_str(), "-q", "-c", sql])
            .status()
            .expect("psql runs")
            .success();
        assert!(ok, "psql: {sql}");
    };
    psql(&format!("CREATE DATABASE {db}"));
    let url = format!(
        "{}/{db}",
        &admin[..admin.rfind('/').expect("a database in the URL")]
    );
    let store = Store::open(StoreOptions {
        url,
        master_key: [9; 32],
        clock,
    })
    .await
    .expect("PostgreSQL");
    run("PostgreSQL", store, &csv, rows).await;
    psql(&format!("DROP DATABASE {db} WITH (FORCE)"));
}
