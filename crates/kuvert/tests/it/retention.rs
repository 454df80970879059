//! `kuvert purge` on the real binary. The clock-driven retention periods are proved in the
//! store suite; here message content is kept for no time at all, so that what the CLI
//! deletes (and its dry run only counts) is there at once.

use std::time::Duration;

use serde_json::json;

use crate::common::dev_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_hand_deletes_content_past_its_time_and_keeps_metadata() {
    let api = dev_server("[retention]\nmessage_content = \"0s\"\n");
    let (status, sent) = api
        .post(
            "/v1/messages",
            &json!({"from": "demo@sandbox.kuvert.test", "to": ["a@example.com"], "subject": "Hi", "text": "Hello"}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["id"].as_str().expect("id").to_owned();
    for _ in 0..200 {
        let (_, page) = api.get("/v1/capture").await;
        if page["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;

    let dry = api.server.cli(&["purge", "--dry-run", "--json"]);
    assert!(dry.ok(), "{}", dry.stderr());
    let counts = &dry.json()["counts"];
    assert_eq!(
        (
            counts["captures"].as_u64(),
            counts["message_contents"].as_u64(),
            counts["events"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{counts}"
    );
    let (_, page) = api.get("/v1/capture").await;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(1),
        "a dry run deletes nothing"
    );

    let run = api.server.cli(&["purge", "--json"]);
    assert!(run.ok(), "{}", run.stderr());
    assert_eq!(run.json()["counts"], counts.clone());
    let (_, page) = api.get("/v1/capture").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));
    let (status, message) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(status, 200, "the metadata stays: {message}");
    assert_eq!(message["subject"], "Hi");
    let (_, events) = api.get("/v1/events").await;
    assert!(
        events["items"].as_array().is_some_and(|i| i.len() >= 2),
        "events stay for the plan's months: {events}"
    );
}
