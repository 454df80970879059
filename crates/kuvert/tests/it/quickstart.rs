//! A new user's first minutes: the `--dev` banner's curl commands and the README's example,
//! run as written by a real shell and curl, then the API around them.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Api, assert_error, dev_server, message};

/// Runs a shell script; returns the JSON documents curl printed, in order.
fn run_script(script: &str) -> Vec<Value> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .output()
        .expect("sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "script failed:\n{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The first answer is a 202 for a message, the second lists that message's `accepted` event.
async fn assert_sent_and_listed(api: &Api, docs: &[Value]) {
    assert_eq!(docs.len(), 2, "{docs:?}");
    let id = docs[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a message id: {}", docs[0]));
    assert_eq!(docs[0]["recipients"][0]["status"], "queued", "{}", docs[0]);
    let listed = docs[1]["items"].as_array().expect("events");
    assert!(
        listed
            .iter()
            .any(|e| e["type"] == "accepted" && e["message_id"] == id),
        "{}",
        docs[1]
    );
    let (status, m) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["recipients"][0]["email"], "you@example.com");
}

#[tokio::test]
async fn the_dev_banner_commands_work_as_printed() {
    let api = dev_server("");
    assert!(api.key.starts_with("kv_"), "{}", api.server.stdout);
    let script: Vec<&str> = api
        .server
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl") || l.starts_with("-d"))
        .collect();
    assert_eq!(script.len(), 3, "{}", api.server.stdout);
    let docs = run_script(&script.join("\n"));
    assert_sent_and_listed(&api, &docs).await;
}

#[tokio::test]
async fn the_readme_example_works_as_written() {
    let readme = include_str!("../../../../README.md");
    let block = readme
        .split("<!-- example: a test runs this block against a dev server -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- end of example -->").next())
        .expect("README has the example block");
    let api = dev_server("");
    let addr = api.server.base_url.trim_start_matches("http://");
    let data = api.server.data_dir();
    let script: String = block
        .lines()
        .filter(|l| !l.starts_with("```"))
        .map(|l| {
            l.replace("127.0.0.1:8080", addr)
                .replace("kuvert-data/", &format!("{}/", data.display()))
                + "\n"
        })
        .collect();
    assert!(
        script.contains(addr),
        "the example talks to the default address:\n{block}"
    );
    let docs = run_script(&script);
    assert_sent_and_listed(&api, &docs).await;

    // Then, as the README says, it is delivered to the capture store, signed.
    let id = docs[0]["id"].as_str().expect("id");
    let mut delivered = Value::Null;
    for _ in 0..100 {
        let (_, events) = api
            .get(&format!("/v1/events?type=delivered&message_id={id}"))
            .await;
        if events["items"].as_array().is_some_and(|i| !i.is_empty()) {
            delivered = events["items"][0].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        delivered["recipient"], "you@example.com",
        "a delivered event: {delivered}"
    );
    assert_eq!(delivered["data"]["mx"], "capture");
    let capture_cmd = readme
        .lines()
        .find(|l| l.starts_with("curl") && l.contains("/v1/capture"))
        .expect("the README shows the capture");
    let docs = run_script(&format!(
        "KEY=$(cat {}/dev-api-key)\n{}",
        data.display(),
        capture_cmd.replace("127.0.0.1:8080", addr)
    ));
    let captured = &docs[0]["items"][0];
    assert_eq!(captured["message_id"], id, "{}", docs[0]);
    assert_eq!(captured["recipients"], json!(["you@example.com"]));
    let mime = captured["mime"].as_str().expect("mime");
    assert!(
        mime.starts_with("DKIM-Signature: v=1;") && mime.contains("d=sandbox.kuvert.test;"),
        "{mime}"
    );
    assert!(captured["mail_from"].as_str().is_some_and(|f| f.starts_with("b-rcp_") && f.ends_with("@bounces.sandbox.kuvert.test")), "{captured}");
}

#[tokio::test]
async fn the_dev_instance_keeps_its_key_across_restarts() {
    let mut api = dev_server("");
    let first = api.key.clone();
    api.server.restart();
    assert_eq!(api.server.dev_key(), first, "same demo account and key");
    let (status, account) = api.get("/v1/account").await;
    assert_eq!(status, 200);
    assert_eq!(
        account["users"].as_array().map(Vec::len),
        Some(1),
        "no second demo user: {account}"
    );
}

#[tokio::test]
async fn suppressed_recipients_are_dropped_not_sent() {
    let api = dev_server("");
    let (status, s) = api
        .post("/v1/suppressions", &json!({"address": "Gone@Example.com"}))
        .await;
    assert_eq!(status, 201, "{s}");
    let (status, sent) = api
        .post(
            "/v1/messages",
            &message(&["gone@example.com", "here@example.com"]),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let by_email = |e: &str| {
        sent["recipients"]
            .as_array()
            .expect("recipients")
            .iter()
            .find(|r| r["email"] == e)
            .cloned()
            .expect("recipient")
    };
    assert_eq!(by_email("gone@example.com")["status"], "dropped", "{sent}");
    assert_eq!(by_email("here@example.com")["status"], "queued", "{sent}");
    let (_, dropped) = api.get("/v1/events?type=dropped").await;
    assert_eq!(
        dropped["items"][0]["recipient"], "gone@example.com",
        "{dropped}"
    );
    // Lifted: the next message goes out.
    assert_eq!(api.delete("/v1/suppressions/gone@example.com").await, 204);
    let (_, sent) = api
        .post("/v1/messages", &message(&["gone@example.com"]))
        .await;
    assert_eq!(sent["recipients"][0]["status"], "queued", "{sent}");
    // Every recipient counts against the quota, dropped ones not.
    let (_, account) = api.get("/v1/account").await;
    assert_eq!(account["limits"]["sent_this_month"], 2, "{account}");
}

#[tokio::test]
async fn openapi_health_and_metrics_describe_the_running_server() {
    let api = dev_server("");
    let (status, doc) = api.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    for path in [
        "/v1/messages",
        "/v1/messages/{id}",
        "/v1/events",
        "/v1/domains",
        "/v1/domains/{name}/verify",
        "/v1/suppressions",
        "/v1/keys",
        "/v1/account",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        api.http
            .get(api.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status()
            .as_u16(),
        200
    );

    assert_eq!(
        api.post(
            "/v1/messages",
            &message(&["a@example.com", "b@example.com"])
        )
        .await
        .0,
        202
    );
    assert_error(
        &api.post("/v1/messages", &message(&["not an address"]))
            .await,
        422,
        "invalid_address",
        Some("to[0]"),
    );
    let metrics = api.metrics().await;
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} in:\n{metrics}"))
            .to_owned()
    };
    assert_eq!(value("kuvert_messages_accepted_total "), "1");
    assert_eq!(value("kuvert_recipients_queued_total "), "2");
    assert_eq!(value("kuvert_http_responses_total{class=\"4xx\"} "), "1");
    assert!(
        metrics.contains("kuvert_delivery_outcomes_total{outcome=\"delivered\"}"),
        "{metrics}"
    );
}
