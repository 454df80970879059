//! `GET /v1/stats` against the events the same server recorded.

use std::time::Duration;

use serde_json::json;

use crate::common::{assert_error, dev_server, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_match_the_events() {
    let api = dev_server("");
    assert_eq!(
        api.post("/v1/suppressions", &json!({"address": "gone@example.com"}))
            .await
            .0,
        201
    );
    let mut tagged = message(&["a@example.com", "gone@example.com"]);
    tagged["tags"] = json!(["spring"]);
    assert_eq!(api.post("/v1/messages", &tagged).await.0, 202);
    assert_eq!(
        api.post(
            "/v1/messages",
            &message(&["b@example.com", "c@example.com"])
        )
        .await
        .0,
        202
    );
    // Capture delivers them (serve --dev): wait for the three deliveries.
    for _ in 0..200 {
        let (_, d) = api.get("/v1/events?type=delivered").await;
        if d["items"].as_array().map_or(0, Vec::len) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, events) = api.get("/v1/events?limit=300").await;
    let count = |t: &str| {
        events["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["type"] == t)
            .count() as i64
    };

    let (status, stats) = api.get("/v1/stats?resolution=hour").await;
    assert_eq!(status, 200, "{stats}");
    for (metric, event) in [
        ("accepted", "accepted"),
        ("dropped", "dropped"),
        ("delivered", "delivered"),
    ] {
        assert_eq!(stats["totals"][metric], count(event), "{metric}: {stats}");
    }
    assert_eq!(stats["totals"]["accepted"], 3);
    assert_eq!(stats["rates"]["delivered"], 1.0);
    assert_eq!(
        stats["series"].as_array().map(Vec::len),
        Some(7 * 24 + 1),
        "every hour of the default week"
    );
    let (_, spring) = api.get("/v1/stats?tag=spring&resolution=month").await;
    assert_eq!(
        (
            spring["totals"]["accepted"].as_i64(),
            spring["totals"]["dropped"].as_i64()
        ),
        (Some(1), Some(1)),
        "{spring}"
    );
    let (_, sandbox) = api.get("/v1/stats?domain=sandbox.kuvert.test").await;
    assert_eq!(sandbox["totals"], stats["totals"]);

    assert_error(
        &api.get("/v1/stats?resolution=week").await,
        422,
        "invalid_field",
        Some("resolution"),
    );
    assert_error(
        &api.get("/v1/stats?from=2026-11-23T00:00:00Z&to=2026-11-22T00:00:00Z")
            .await,
        422,
        "invalid_field",
        Some("from"),
    );
    assert_error(
        &api.get("/v1/stats?from=2020-01-01T00:00:00Z&resolution=hour")
            .await,
        422,
        "invalid_field",
        Some("resolution"),
    );
    assert_error(
        &api.get("/v1/stats?domain=nowhere.example").await,
        404,
        "not_found",
        None,
    );
}
