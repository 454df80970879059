//! django-anymail (`tests/compat/anymail_py.py`), a third client no one here wrote: its
//! Mailgun and Mailjet backends send through Kuvert, and its Mailgun tracking webhook view
//! takes Kuvert's signed posts and reads the right event from each.

use std::sync::{Arc, Mutex};

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{mail_to, server_with_sink, unfolded, url_after};
use crate::mailgun::{DOMAIN, driver, driver_with_input};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_anymail_sends_with_both_backends_and_its_mailgun_webhook_view_takes_kuvert_s_posts()
{
    // A receiver that keeps what Kuvert posts to it.
    type Got = Arc<Mutex<Vec<Value>>>;
    let got: Got = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(got): axum::extract::State<Got>,
                 axum::Json(body): axum::Json<Value>| async move {
                    got.lock().expect("lock").push(body);
                },
            ),
        )
        .with_state(got.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(
        &sink,
        "[webhooks]\nallow_private = true\npoll_interval = \"1s\"\n",
    );
    for id in ["delivered", "opened"] {
        let r = api
            .http
            .post(api.url(&format!("/v3/domains/{DOMAIN}/webhooks")))
            .basic_auth("api", Some(&api.key))
            .form(&[("id", id), ("url", hook.as_str())])
            .send()
            .await
            .expect("webhook");
        assert_eq!(r.status().as_u16(), 200, "{id}");
    }

    // Mailgun's backend: a form to /v3/{domain}/messages, the id read from the answer.
    let sent = driver(
        "python3",
        "anymail_py.py",
        &api,
        "send",
        &["mailgun", "ann@example.com"],
    );
    assert_eq!(sent["sent"], 1, "{sent}");
    assert_eq!(sent["status"], json!(["queued"]), "{sent}");
    let mailgun_id = sent["recipients"]["ann@example.com"]["message_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert!(mailgun_id.ends_with(&format!("@{DOMAIN}>")), "{sent}");
    let mail = mail_to(&sink, "ann@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Sent by anymail's mailgun backend"), "{text}");
    assert!(text.contains("terms.txt"), "{text}");
    assert!(
        text.contains(&format!("Message-ID: {mailgun_id}")),
        "{text}"
    );

    // Mailjet's backend: JSON to /v3.1/send with everything in Globals.
    let sent = driver(
        "python3",
        "anymail_py.py",
        &api,
        "send",
        &["mailjet", "bob@example.com"],
    );
    assert_eq!(sent["sent"], 1, "{sent}");
    assert_eq!(sent["status"], json!(["sent"]), "{sent}");
    let copy = sent["recipients"]["bob@example.com"]["message_id"]
        .as_str()
        .expect("an id");
    assert!(copy.starts_with("rcp_"), "{sent}");
    let mail = mail_to(&sink, "bob@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Sent by anymail's mailjet backend"), "{text}");
    assert!(text.contains("terms.txt"), "{text}");
    let (_, events) = api.get("/v1/events?recipient=bob@example.com").await;
    let message_id = events["items"][0]["message_id"].as_str().expect("message");
    let (_, message) = api.get(&format!("/v1/messages/{message_id}")).await;
    assert_eq!(message["tags"], json!(["anymail"]), "{message}");

    // Ann opens her copy: Kuvert posts `delivered` and `opened` in Mailgun's shape.
    let ann = unfolded(&mail_to(&sink, "ann@example.com").await.data);
    let pixel = url_after(&ann, &format!("{}/o/", api.server.base_url));
    let r = reqwest::get(&pixel).await.expect("pixel");
    assert_eq!(r.status().as_u16(), 200);
    let mut posts = Vec::new();
    for _ in 0..200 {
        posts = got.lock().expect("lock").clone();
        let ann_events = posts
            .iter()
            .filter(|p| p["event-data"]["recipient"] == "ann@example.com")
            .count();
        if ann_events >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ann_posts: Vec<&Value> = posts
        .iter()
        .filter(|p| p["event-data"]["recipient"] == "ann@example.com")
        .collect();
    assert_eq!(ann_posts.len(), 2, "{posts:?}");

    // anymail's view checks each signature with the account's key and reads the event.
    let key: Value = api
        .http
        .get(api.url("/v5/accounts/http_signing_key"))
        .basic_auth("api", Some(&api.key))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let key = key["http_signing_key"].as_str().expect("a key");
    let bodies = serde_json::to_vec(&ann_posts).expect("json");
    let seen = driver_with_input(
        "python3",
        "anymail_py.py",
        &api,
        "webhooks",
        &[key],
        &bodies,
    );
    assert_eq!(seen["statuses"], json!([200, 200]), "{seen}");
    let mut types: Vec<&str> = seen["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["delivered", "opened"], "{seen}");
    for e in seen["events"].as_array().expect("events") {
        assert_eq!(e["esp"], "Mailgun", "{e}");
        assert_eq!(e["recipient"], "ann@example.com", "{e}");
        assert_eq!(e["message_id"], mailgun_id.as_str(), "{e}");
        assert_eq!(e["tags"], json!(["anymail"]), "{e}");
        assert_eq!(e["metadata"], json!({"order": "9"}), "{e}");
    }
    // A post under another key is refused by the view: the check can fail.
    let refused = driver_with_input(
        "python3",
        "anymail_py.py",
        &api,
        "webhooks",
        &["not-the-key"],
        &bodies,
    );
    assert_eq!(refused["statuses"], json!([400, 400]), "{refused}");
    assert_eq!(refused["events"], json!([]), "{refused}");
}
