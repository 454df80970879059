//! A 202 is a promise: the message is on disk before the answer leaves. Killing the server
//! mid-stream (SIGKILL, no chance to flush) must not lose one acknowledged message.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{Api, dev_server, message};

/// Every acknowledged message is there, with its recipients and its `accepted` event.
async fn assert_all_present(api: &Api, acked: &BTreeSet<String>) {
    let mut events = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api
            .get(&format!("/v1/events?type=accepted&limit=300{cursor}"))
            .await;
        assert_eq!(status, 200, "{page}");
        for e in page["items"].as_array().expect("items") {
            events.insert(e["message_id"].as_str().expect("message id").to_owned());
        }
        match page["next"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    for id in acked {
        let (status, m) = api.get(&format!("/v1/messages/{id}")).await;
        assert_eq!(status, 200, "acknowledged message {id} is lost: {m}");
        assert_eq!(m["recipients"].as_array().map(Vec::len), Some(2), "{m}");
        assert!(events.contains(id), "the accepted event of {id} is lost");
    }
}

#[tokio::test]
async fn sigkill_while_sending_loses_nothing_acknowledged() {
    let mut api = dev_server("");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..300 {
        let (http, url, key, tx) = (
            api.http.clone(),
            api.url("/v1/messages"),
            api.key.clone(),
            tx.clone(),
        );
        tokio::spawn(async move {
            let body = message(&[&format!("a{i}@example.com"), &format!("b{i}@example.com")]);
            let answer = match http.post(url).bearer_auth(key).json(&body).send().await {
                Ok(r) if r.status().as_u16() == 202 => r.json::<Value>().await.ok(),
                _ => None,
            };
            let _ = tx.send(answer.and_then(|v| v["id"].as_str().map(str::to_owned)));
        });
    }
    drop(tx);
    let mut acked = BTreeSet::new();
    let mut answered = 0;
    while let Some(result) = rx.recv().await {
        answered += 1;
        acked.extend(result);
        // Kill while most requests are still in flight.
        if acked.len() == 60 {
            api.server.kill();
        }
    }
    assert_eq!(answered, 300);
    assert!(
        acked.len() >= 60,
        "the kill came after 60 acknowledgements: {}",
        acked.len()
    );
    api.server.restart();
    assert_all_present(&api, &acked).await;
}

#[tokio::test]
async fn sigterm_exits_zero_and_keeps_everything_acknowledged() {
    let mut api = dev_server("");
    let mut acked = BTreeSet::new();
    let sends: Vec<_> = (0..100)
        .map(|i| {
            let body = message(&[&format!("a{i}@example.com"), &format!("b{i}@example.com")]);
            let (http, url, key) = (api.http.clone(), api.url("/v1/messages"), api.key.clone());
            tokio::spawn(async move { http.post(url).bearer_auth(key).json(&body).send().await })
        })
        .collect();
    for s in sends {
        let r = s
            .await
            .expect("task")
            .expect("the server answers every request before it stops");
        assert_eq!(r.status().as_u16(), 202);
        acked.insert(
            r.json::<Value>().await.expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    assert_eq!(api.server.terminate(), Some(0), "SIGTERM is a clean exit");
    api.server.restart();
    assert_all_present(&api, &acked).await;
    assert_eq!(acked.len(), 100);
}

/// A crash in the middle of a run: 32 clients send one-recipient messages to a sink on
/// loopback, the server is killed (SIGKILL) when half are acknowledged, started again, and
/// every acknowledged message must reach the sink (some may arrive twice: at least once).
/// `KILL_TEST_MESSAGES` sets the size (2,000 by default; 10,000 for the full run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_every_acknowledged_message_reaches_the_sink() {
    let n: usize = std::env::var("KILL_TEST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let sink = kuvert_testkit::SmtpSink::start(kuvert_testkit::SinkOptions::default());
    let mut api = crate::common::server_with_sink(
        &sink,
        "[plans.free]\nmonthly_quota = 1000000\ndaily_limit = 1000000\nhourly_limit = 1000000",
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..32 {
        let (http, url, key, tx, next) = (
            api.http.clone(),
            api.url("/v1/messages"),
            api.key.clone(),
            tx.clone(),
            next.clone(),
        );
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let to = format!("k{i}@example.com");
                let sent = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&message(&[&to]))
                    .send()
                    .await;
                let acked = matches!(&sent, Ok(r) if r.status().as_u16() == 202);
                // After the kill every request fails; the senders stop.
                if tx.send(acked.then_some(to)).is_err() || sent.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut acked = BTreeSet::new();
    while let Some(result) = rx.recv().await {
        acked.extend(result);
        if acked.len() == n / 2 {
            api.server.kill();
        }
    }
    assert!(
        acked.len() >= n / 2,
        "killed after {} acknowledgements",
        acked.len()
    );
    assert!(acked.len() < n, "the kill came before the end of the run");
    api.server.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let arrived: BTreeSet<String> = sink
            .received()
            .into_iter()
            .flat_map(|m| m.rcpt_to)
            .collect();
        let missing: Vec<&String> = acked.difference(&arrived).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} acknowledged messages never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
