//! Delivery through the real binary: killed in the middle of a batch, restarted, and every
//! acknowledged recipient still arrives, with the duplicates counted and bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::Value;

use crate::common::{dev_server, message};

/// The recipient id a VERP return path names (`b-ID-MAC@host`).
fn recipient_of(mail_from: &str) -> String {
    let local = mail_from.split('@').next().unwrap_or_default();
    let inner = local.strip_prefix("b-").unwrap_or_default();
    inner
        .rsplit_once('-')
        .map(|(id, _)| id.to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_then_every_acknowledged_recipient_arrives() {
    const MESSAGES: usize = 300;
    const MAX_IN_FLIGHT: usize = 40;
    // A slow server: each message is taken, then acknowledged 30 ms later. A kill lands in
    // that window for the messages in flight.
    let sink = SmtpSink::start(SinkOptions {
        reply_delay: Some(Duration::from_millis(30)),
        ..Default::default()
    });
    let mut api = dev_server(&format!(
        "[delivery]\nmode = \"mx\"\nbatch = 20\nmax_in_flight = {MAX_IN_FLIGHT}\n[delivery.routes]\n\"*\" = \"{}\"\n",
        sink.addr()
    ));
    let sends: Vec<_> = (0..MESSAGES)
        .map(|i| {
            let body = message(&[&format!("r{i}@example.com")]);
            let (http, url, key) = (api.http.clone(), api.url("/v1/messages"), api.key.clone());
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await?
                    .json::<Value>()
                    .await
            })
        })
        .collect();
    let mut acked = BTreeSet::new();
    for s in sends {
        let answer = s.await.expect("task").expect("202");
        acked.insert(
            answer["recipients"][0]["id"]
                .as_str()
                .expect("recipient id")
                .to_owned(),
        );
    }
    assert_eq!(acked.len(), MESSAGES);

    // Kill once some, not all, have arrived.
    for _ in 0..400 {
        if sink.received().len() >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    api.server.kill();
    let at_kill = sink.received().len();
    assert!(
        (50..MESSAGES).contains(&at_kill),
        "killed mid-batch: {at_kill} of {MESSAGES} had arrived"
    );

    api.server.restart();
    let mut arrived = BTreeMap::<String, usize>::new();
    for _ in 0..600 {
        arrived.clear();
        for r in sink.received() {
            *arrived.entry(recipient_of(&r.mail_from)).or_default() += 1;
        }
        if acked.iter().all(|id| arrived.contains_key(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !arrived.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged recipients never arrived",
        missing.len()
    );
    let duplicates: usize = arrived.values().map(|n| n - 1).sum();
    eprintln!(
        "killed after {at_kill} arrivals; duplicates after restart: {duplicates} (in flight at most {MAX_IN_FLIGHT})"
    );
    assert!(
        duplicates <= MAX_IN_FLIGHT,
        "{duplicates} duplicates, more than could be in flight"
    );

    // And the record agrees: one delivered event per recipient. The killed process recorded
    // nothing for what it had in flight, and the restarted one records each once.
    let mut delivered = 0;
    for _ in 0..200 {
        delivered = 0;
        let mut cursor = String::new();
        loop {
            let (_, page) = api
                .get(&format!("/v1/events?type=delivered&limit=300{cursor}"))
                .await;
            delivered += page["items"].as_array().map_or(0, Vec::len);
            match page["next"].as_str() {
                Some(n) => cursor = format!("&cursor={n}"),
                None => break,
            }
        }
        if delivered >= MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, MESSAGES);
}
