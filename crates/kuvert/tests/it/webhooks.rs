//! Webhooks through the API of the real binary: an endpoint on loopback gets the events,
//! signed; a private address is refused unless the operator allows it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::common::{assert_error, dev_server, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_gets_every_event_signed() {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(got): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>| async move {
                    got.lock().expect("lock").push(body);
                },
            ),
        )
        .with_state(got.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let api = dev_server("[webhooks]\nallow_private = true\npoll_interval = \"1s\"\n");
    let (status, hook) = api.post("/v1/webhooks", &json!({"url": url})).await;
    assert_eq!(status, 201, "{hook}");
    let key = hook["signing_key"]
        .as_str()
        .expect("signing key")
        .to_owned();
    assert_eq!(
        api.post("/v1/messages", &message(&["a@example.com"]))
            .await
            .0,
        202
    );
    // accepted, then delivered (a dev instance captures).
    for _ in 0..200 {
        if got.lock().expect("lock").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies = got.lock().expect("lock").clone();
    let kinds: Vec<&str> = bodies
        .iter()
        .filter_map(|b| b["event-data"]["event"].as_str())
        .collect();
    assert_eq!(kinds, ["accepted", "delivered"]);
    for b in &bodies {
        let s = &b["signature"];
        let (ts, token) = (
            s["timestamp"].as_str().expect("ts"),
            s["token"].as_str().expect("token"),
        );
        assert_eq!(
            s["signature"].as_str(),
            Some(kuvert_webhooks::signature(&key, ts, token).as_str())
        );
        assert_eq!(b["event-data"]["recipient"], "a@example.com");
    }
    let id = hook["id"].as_str().expect("id");
    let (_, deliveries) = api.get(&format!("/v1/webhooks/{id}/deliveries")).await;
    let states: Vec<&str> = deliveries
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["state"].as_str())
        .collect();
    assert_eq!(states, ["delivered", "delivered"], "{deliveries}");
    let (status, patched) = api
        .http
        .patch(api.url(&format!("/v1/webhooks/{id}")))
        .bearer_auth(&api.key)
        .json(&json!({"events": ["bounced", "complained"]}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .expect("patch");
    assert_eq!(status, 200);
    assert_eq!(
        patched.json::<Value>().await.expect("json")["events"],
        json!(["bounced", "complained"])
    );
    assert_error(
        &api.post("/v1/webhooks", &json!({"url": url, "events": ["sent"]}))
            .await,
        422,
        "invalid_field",
        Some("events[0]"),
    );
    assert_eq!(api.delete(&format!("/v1/webhooks/{id}")).await, 204);
    assert_error(
        &api.get(&format!("/v1/webhooks/{id}")).await,
        404,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn private_endpoints_are_refused_by_default() {
    let api = dev_server("");
    for url in [
        "http://10.0.0.1/hook",
        "http://127.0.0.1:9/hook",
        "http://[::1]/hook",
    ] {
        assert_error(
            &api.post("/v1/webhooks", &json!({"url": url})).await,
            422,
            "invalid_field",
            Some("url"),
        );
    }
    assert_error(
        &api.post("/v1/webhooks", &json!({"url": "ftp://example.com/"}))
            .await,
        422,
        "invalid_field",
        Some("url"),
    );
    let (_, list) = api.get("/v1/webhooks").await;
    assert_eq!(list, json!([]));
}
