//! Campaign fan-out benchmark (not a test), on SQLite: a list of N contacts (imported as the
//! import job does), an HTML template filled with each contact's address, and the campaign
//! runner (`CampaignRunner::run_one`, pages of 200, 32 copies at once, each a message of
//! its own with its `campaign_sends` row in the group commit) until every contact has a
//! copy in the queue. Reports copies a second and this process's peak RSS (VmHWM) before
//! and after the fan-out: the queue is durable, so memory must not follow the audience.
//!
//! ```text
//! cargo bench -p kuvert --bench campaign                    # 1,000,000 contacts
//! cargo bench -p kuvert --bench campaign -- --contacts 100000
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use kuvert_core::campaign::{Audience, CampaignState};

mod support;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut contacts = 1_000_000;
    support::read_flags(&mut [("--contacts", &mut contacts)]);
    let dir = tempfile::tempdir().expect("dir");
    let csv = dir.path().join("contacts.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).expect("csv"));
        writeln!(f, "email,name").expect("write");
        for i in 0..contacts {
            writeln!(f, "reader{i}@example.com,Reader {i}").expect("write");
        }
        f.flush().expect("flush");
    }
    std::fs::create_dir_all(dir.path().join("db")).expect("dir");
    let clock: Arc<dyn kuvert_core::Clock> = Arc::new(kuvert_core::SystemClock);
    let b = support::Bench::open(&dir.path().join("db"), clock).await;
    let list = b
        .store
        .create_list(&b.account, kuvert_store::ListSettings::named("all"))
        .await
        .expect("list");
    let (created, _, imported) = support::import_csv(&b.store, &b.account, &list.id, &csv).await;
    assert_eq!(created as usize, contacts);
    let before = support::peak_rss_mib(std::process::id());
    kuvert_admin::templates::create_template(
        &b.store,
        &b.account,
        "news",
        None,
        kuvert_admin::templates::VersionRequest {
            tag: None,
            comment: None,
            active: true,
            source: kuvert_template::Source {
                engine: kuvert_template::Engine::Html,
                content: format!(
                    "<p>Hello {{{{name}}}},</p><p>{}</p>",
                    support::newsletter_text(2_000)
                ),
                text: None,
                subject: Some("News for {{name}}".into()),
                defaults: Default::default(),
            },
        },
    )
    .await
    .expect("template");
    let c = b
        .store
        .create_campaign(
            &b.account,
            kuvert_store::CampaignSettings {
                name: "bench".into(),
                from: format!("news@{}", b.domain.name),
                reply_to: None,
                subject: None,
                template: "news".into(),
                version: None,
                audience: Audience {
                    lists: vec![list.id.to_string()],
                    segments: Vec::new(),
                },
                send_at: None,
                per_hour: None,
                max_errors: 10,
                ab: None,
            },
        )
        .await
        .expect("campaign");
    b.store
        .set_campaign_state(&b.account, c.id.as_str(), CampaignState::Scheduled, None)
        .await
        .expect("scheduled");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let runner = kuvert_admin::campaigns::CampaignRunner::new(
        b.store.clone(),
        b.acceptor.clone(),
        "bench",
        stopped,
    );
    let started = Instant::now();
    while runner.run_one().await.expect("run") {
        let now = b
            .store
            .campaign(&b.account, c.id.as_str())
            .await
            .expect("campaign");
        if now.state != CampaignState::Sending {
            break;
        }
    }
    let took = started.elapsed();
    let done = b
        .store
        .campaign(&b.account, c.id.as_str())
        .await
        .expect("campaign");
    assert_eq!(done.state, CampaignState::Sent, "{done:?}");
    assert_eq!(done.sent as usize, contacts, "{done:?}");
    println!("| what | time | rate | peak RSS |");
    println!("|---|---|---|---|");
    println!(
        "| import {contacts} contacts | {:.1} s | {:.0} rows/s | {before:.0} MiB |",
        imported.as_secs_f64(),
        contacts as f64 / imported.as_secs_f64()
    );
    println!(
        "| fan-out of a campaign to {contacts} contacts | {:.1} s | {:.0} copies/s | {:.0} MiB |",
        took.as_secs_f64(),
        contacts as f64 / took.as_secs_f64(),
        support::peak_rss_mib(std::process::id())
    );
    b.store.close().await;
}
