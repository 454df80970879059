//! Each bad input gets the right 4xx, a stable code and a clear message; nothing is stored.

use crate::common::{Api, BIN, FROM, assert_error, dev_server, message};
use serde_json::json;

async fn events_count(api: &Api) -> usize {
    api.get("/v1/events").await.1["items"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn malformed_json_is_400() {
    let api = dev_server("");
    let r = api
        .http
        .post(api.url("/v1/messages"))
        .bearer_auth(&api.key)
        .header("content-type", "application/json")
        .body("{\"from\": ")
        .send()
        .await
        .expect("send");
    let got = (
        r.status().as_u16(),
        r.json().await.expect("JSON error body"),
    );
    assert_error(&got, 400, "malformed_json", None);
    assert_eq!(events_count(&api).await, 0);
}

#[tokio::test]
async fn wrong_shape_names_the_field() {
    let api = dev_server("");
    let got = api
        .post(
            "/v1/messages",
            &json!({"from": FROM, "to": 5, "subject": "s", "text": "t"}),
        )
        .await;
    assert_error(&got, 422, "invalid_field", Some("to"));
    let got = api.post("/v1/messages", &json!({"from": FROM, "to": ["a@example.com"], "subject": "s", "text": "t", "tracking_opens": true})).await;
    assert_error(&got, 422, "invalid_field", Some("tracking_opens"));
}

#[tokio::test]
async fn invalid_address_is_422() {
    let api = dev_server("");
    let got = api
        .post(
            "/v1/messages",
            &message(&["ok@example.com", "not an address"]),
        )
        .await;
    assert_error(&got, 422, "invalid_address", Some("to[1]"));
    let got = api.post("/v1/messages", &json!({"from": FROM, "to": ["a@example.com"], "bcc": ["x@-bad.example"], "subject": "s", "text": "t"})).await;
    assert_error(&got, 422, "invalid_address", Some("bcc[0]"));
    assert_eq!(events_count(&api).await, 0);
}

#[tokio::test]
async fn unverified_domain_is_403() {
    let api = dev_server("");
    let (status, domain) = api
        .post("/v1/domains", &json!({"name": "news.example.org"}))
        .await;
    assert_eq!(status, 201, "{domain}");
    assert_eq!(domain["state"], "unverified");
    let got = api.post("/v1/messages", &json!({"from": "news@news.example.org", "to": ["a@example.com"], "subject": "s", "text": "t"})).await;
    assert_error(&got, 403, "domain_unverified", Some("from"));
    let got = api.post("/v1/messages", &json!({"from": "news@nobody.example.org", "to": ["a@example.com"], "subject": "s", "text": "t"})).await;
    assert_error(&got, 422, "unknown_domain", Some("from"));
    assert_eq!(events_count(&api).await, 0);
}

/// Sends the head of a POST that declares `length` bytes of body, and none of the body.
async fn post_head_only(api: &Api, length: usize) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = api.server.base_url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n",
        api.key
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{answer}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body ({e}): {answer}")),
    )
}

#[tokio::test]
async fn oversized_message_is_413() {
    let api = dev_server("[limits]\nmax_message_bytes = 65536\n");
    let got = api.post("/v1/messages", &json!({"from": FROM, "to": ["a@example.com"], "subject": "big", "text": "x".repeat(70_000)})).await;
    assert_error(&got, 413, "message_too_large", None);
    // A body past what the server reads at all is refused from its declared length, before
    // it is sent: the client here sends only the head and waits for the answer.
    let got = post_head_only(&api, 2_000_000).await;
    assert_error(&got, 413, "payload_too_large", None);
    let ok = api.post("/v1/messages", &json!({"from": FROM, "to": ["a@example.com"], "subject": "fits", "text": "x".repeat(50_000)})).await;
    assert_eq!(ok.0, 202, "{}", ok.1);
}

#[tokio::test]
async fn a_thousand_and_one_recipients_is_422() {
    let api = dev_server("");
    let to: Vec<String> = (0..1001).map(|i| format!("r{i}@example.com")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    let got = api.post("/v1/messages", &message(&to)).await;
    assert_error(&got, 422, "too_many_recipients", None);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1000"),
        "{}",
        got.1
    );
    let ok = api.post("/v1/messages", &message(&to[..1000])).await;
    assert_eq!(ok.0, 202, "exactly 1000 is allowed: {}", ok.1);
    assert_eq!(ok.1["recipients"].as_array().map(Vec::len), Some(1000));
}

#[tokio::test]
async fn line_break_in_a_header_is_422() {
    let api = dev_server("");
    let got = api.post("/v1/messages", &json!({"from": FROM, "to": ["a@example.com"], "subject": "Hi\r\nBcc: victim@example.com", "text": "t"})).await;
    assert_error(&got, 422, "invalid_field", Some("subject"));
    let got = api
        .post("/v1/messages", &json!({"from": FROM, "to": ["a@example.com"], "subject": "s", "text": "t", "headers": {"X-Campaign": "a\nBcc: victim@example.com"}}))
        .await;
    assert_error(&got, 422, "invalid_field", Some("headers.X-Campaign"));
    let got = api.post("/v1/messages", &json!({"from": "Eve\r\nBcc: victim@example.com <demo@sandbox.kuvert.test>", "to": ["a@example.com"], "subject": "s", "text": "t"})).await;
    assert_error(&got, 422, "invalid_address", Some("from"));
    assert_eq!(events_count(&api).await, 0);
}

#[tokio::test]
async fn wrong_key_is_401() {
    let api = dev_server("");
    let got = api
        .post_with_key(
            "/v1/messages",
            "kv_not-a-real-key",
            &message(&["a@example.com"]),
        )
        .await;
    assert_error(&got, 401, "unauthorized", None);
    let r = api
        .http
        .get(api.url("/v1/account"))
        .basic_auth("api", Some("kv_wrong"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = api
        .http
        .get(api.url("/v1/account"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401, "no key at all");
    // The right key works over Basic too, as Mailgun's clients send it.
    let r = api
        .http
        .get(api.url("/v1/account"))
        .basic_auth("api", Some(&api.key))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn send_key_on_an_admin_endpoint_is_403() {
    let api = dev_server("");
    let (status, key) = api
        .post("/v1/keys", &json!({"name": "app", "scope": "send"}))
        .await;
    assert_eq!(status, 201, "{key}");
    let send_key = key["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    for path in [
        "/v1/account",
        "/v1/events",
        "/v1/keys",
        "/v1/domains",
        "/v1/suppressions",
    ] {
        let r = api
            .http
            .get(api.url(path))
            .bearer_auth(&send_key)
            .send()
            .await
            .expect("send");
        let got = (r.status().as_u16(), r.json().await.expect("JSON"));
        assert_error(&got, 403, "insufficient_scope", None);
    }
    let sent = api
        .post_with_key("/v1/messages", &send_key, &message(&["a@example.com"]))
        .await;
    assert_eq!(sent.0, 202, "a send key sends: {}", sent.1);
    // Revoked at once.
    let id = key["id"].as_str().expect("id");
    assert_eq!(api.delete(&format!("/v1/keys/{id}")).await, 200);
    let got = api
        .post_with_key("/v1/messages", &send_key, &message(&["a@example.com"]))
        .await;
    assert_error(&got, 401, "unauthorized", None);
}

#[tokio::test]
async fn password_missing_a_digit_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |pw: &str| {
        kuvert_testkit::Cli::run(
            BIN.as_ref(),
            dir.path(),
            None,
            &[
                "account",
                "create",
                "--email",
                "ann@acme.example",
                "--password",
                pw,
                "--json",
            ],
        )
    };
    let weak = run("no-digits-here");
    assert!(!weak.ok(), "refused");
    assert!(
        weak.stderr().contains("at least one digit"),
        "names the rule: {}",
        weak.stderr()
    );
    let weaker = run("abc");
    for rule in [
        "at least 8 characters",
        "at least one digit",
        "at least one special character",
    ] {
        assert!(
            weaker.stderr().contains(rule),
            "names every failed rule ({rule}): {}",
            weaker.stderr()
        );
    }
    let ok = run("s3cret-pass");
    assert!(ok.ok(), "{}", ok.stderr());
    assert_eq!(ok.json()["owner"]["email"], "ann@acme.example");
    let again = run("s3cret-pass");
    assert!(
        !again.ok() && again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );
}

#[tokio::test]
async fn bad_query_parameters_are_422() {
    let api = dev_server("");
    assert_error(
        &api.get("/v1/events?limit=301").await,
        422,
        "invalid_field",
        Some("limit"),
    );
    assert_error(
        &api.get("/v1/events?type=opened,sent").await,
        422,
        "invalid_field",
        Some("type"),
    );
    assert_error(
        &api.get("/v1/events?from=yesterday").await,
        422,
        "invalid_field",
        Some("from"),
    );
    assert_error(
        &api.get("/v1/events?limit=ten").await,
        422,
        "invalid_field",
        None,
    );
    assert_error(
        &api.get("/v1/messages/msg_unknown").await,
        404,
        "not_found",
        None,
    );
    assert_error(&api.get("/v1/nowhere").await, 404, "not_found", None);
}
