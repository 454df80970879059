//! Mailjet's API on the real binary, driven by Mailjet's official Python library
//! (`tests/compat/mailjet_py.py`): what code written for Mailjet does, unchanged but for the
//! base URL and the key pair.

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{Api, mail_to, server_with_sink, unfolded};
use crate::mailgun::{Driver, driver};

/// A step of the Python driver (Mailjet's `mailjet-rest`).
fn mailjet_py(api: &Api, step: &str, args: &[&str]) -> Value {
    driver("python3", "mailjet_py.py", api, step, args)
}

/// Kuvert's message of the copy that went to `to`, from its events.
async fn message_of(api: &Api, to: &str) -> Value {
    let (_, events) = api.get(&format!("/v1/events?recipient={to}")).await;
    let id = events["items"][0]["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no event for {to}: {events}"))
        .to_owned();
    api.get(&format!("/v1/messages/{id}")).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailjet_s_python_library_sends_pages_and_manages_contacts_through_kuvert() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");

    // A send with Globals, a campaign (a tag), a custom id and payload, an attachment.
    let sent = mailjet_py(&api, "send", &["ann@example.com"]);
    assert_eq!(sent["status"], 200, "{sent}");
    let result = &sent["body"]["Messages"][0];
    assert_eq!(result["Status"], "success", "{sent}");
    assert_eq!(result["CustomID"], "order-7", "{sent}");
    assert_eq!(result["To"][0]["Email"], "ann@example.com", "{sent}");
    let copy = result["To"][0]["MessageID"]
        .as_str()
        .expect("a message id")
        .to_owned();
    assert!(
        result["To"][0]["MessageHref"]
            .as_str()
            .is_some_and(|h| h.ends_with(&format!("/v3/REST/message/{copy}"))),
        "{sent}"
    );
    let mail = mail_to(&sink, "ann@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Subject: Your order"), "{text}");
    assert!(
        text.contains("From: \"Shop\" <news@sandbox.kuvert.test>"),
        "{text}"
    );
    assert!(text.contains("X-Shop: spring"), "{text}");
    assert!(text.contains("invoice.txt"), "{text}");
    let message = message_of(&api, "ann@example.com").await;
    assert_eq!(message["tags"], json!(["spring"]), "{message}");
    assert_eq!(
        message["metadata"],
        json!({"CustomID": "order-7", "EventPayload": "order=7"}),
        "{message}"
    );

    // The copy's events, a page of one at a time, to its delivery.
    let mut history = Value::Null;
    for _ in 0..100 {
        history = mailjet_py(&api, "history", &[&copy, "ann@example.com"]);
        if history["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["EventType"] == "sent"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let events = history["events"].as_array().expect("events");
    assert_eq!(
        events.last().expect("an event")["EventType"],
        "sent",
        "{history}"
    );
    assert!(events[0]["EventAt"].as_i64().is_some(), "{history}");
    let m = &history["message"]["body"]["Data"][0];
    assert_eq!(m["ID"], copy.as_str(), "{history}");
    assert_eq!(m["Status"], "sent", "{history}");
    assert_eq!(m["ContactAlt"], "ann@example.com", "{history}");
    assert_eq!(m["Subject"], "Your order", "{history}");
    // The list of copies, filtered by address: Ann's one copy.
    let listed = &history["listed"]["body"];
    assert_eq!(listed["Count"], 1, "{history}");
    assert_eq!(listed["Data"][0]["ID"], copy.as_str(), "{history}");
    assert_eq!(listed["Data"][0]["Status"], "sent", "{history}");

    // A template made through the API and filled from a send's Variables.
    let t = mailjet_py(&api, "template", &["cy@example.com"]);
    assert_eq!(t["created"]["status"], 201, "{t}");
    assert_eq!(t["content"]["status"], 201, "{t}");
    assert_eq!(
        t["got"]["body"]["Data"][0]["Html-part"], "<p>Thanks, {{name}}: {{total}} EUR.</p>",
        "{t}"
    );
    assert_eq!(t["listed"]["body"]["Data"][0]["Name"], "receipt", "{t}");
    assert_eq!(t["sent"]["status"], 200, "{t}");
    let mail = mail_to(&sink, "cy@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Subject: Receipt for Ann"), "{text}");
    assert!(text.contains("Thanks, Ann: 12.00 EUR."), "{text}");
    // A variable the template needs and the send lacks: that message is refused.
    assert_eq!(t["missing"]["status"], 400, "{t}");
    let error = &t["missing"]["body"]["Messages"][0]["Errors"][0];
    assert_eq!(error["ErrorRelatedTo"], json!(["Variables.total"]), "{t}");
    // Mailjet's own template language is refused by name, not rendered wrong.
    assert_eq!(t["mailjet language"]["status"], 400, "{t}");
    assert!(
        t["mailjet language"]["body"]["ErrorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("Handlebars")),
        "{t}"
    );

    // A contact with a property in a list, read back, left, and not put back by addnoforce.
    let c = mailjet_py(&api, "contacts", &["dee@example.com"]);
    assert_eq!(c["property"]["status"], 201, "{c}");
    assert_eq!(c["list"]["status"], 201, "{c}");
    let list_id = c["list"]["body"]["Data"][0]["ID"].as_str().expect("list");
    assert_eq!(c["managed"]["status"], 201, "{c}");
    let contact_id = c["managed"]["body"]["Data"][0]["ContactID"]
        .as_str()
        .expect("contact");
    assert_eq!(c["contact"]["body"]["Data"][0]["ID"], contact_id, "{c}");
    assert_eq!(c["contact"]["body"]["Data"][0]["Name"], "Ann", "{c}");
    assert_eq!(
        c["data"]["body"]["Data"][0]["Data"],
        json!([{"Name": "first_name", "Value": "Ann"}]),
        "{c}"
    );
    assert_eq!(
        c["updated"]["body"]["Data"][0]["Data"],
        json!([{"Name": "first_name", "Value": "Anna"}]),
        "{c}"
    );
    assert_eq!(c["in list"]["body"]["Count"], 1, "{c}");
    assert_eq!(
        c["in list"]["body"]["Data"][0]["Email"], "dee@example.com",
        "{c}"
    );
    assert_eq!(c["lists"]["body"]["Data"][0]["ListID"], list_id, "{c}");
    assert_eq!(c["lists"]["body"]["Data"][0]["IsUnsub"], false, "{c}");
    assert_eq!(c["metadata"]["body"]["Data"][0]["Datatype"], "str", "{c}");
    assert_eq!(c["undefined"]["status"], 400, "{c}");
    assert_eq!(c["unsub"]["status"], 201, "{c}");
    assert_eq!(c["after"]["body"]["Data"][0]["IsUnsub"], true, "{c}");
    assert_eq!(c["readded"]["status"], 201, "{c}");
    assert_eq!(
        c["still"]["body"]["Data"][0]["IsUnsub"], true,
        "addnoforce leaves one who left off the list: {c}"
    );
    // Kuvert's own API sees the same contact, its value and its withdrawal of consent.
    let (_, contact) = api.get(&format!("/v1/contacts/{contact_id}")).await;
    assert_eq!(contact["properties"]["first_name"], "Anna", "{contact}");
    assert_eq!(
        contact["subscriptions"][0]["status"], "unsubscribed",
        "{contact}"
    );

    // managemanycontacts: an asynchronous job (one of Kuvert's imports) run to its end.
    let many = mailjet_py(&api, "many", &[]);
    assert_eq!(many["created"]["status"], 201, "{many}");
    let job = &many["polled"]["body"]["Data"][0];
    assert_eq!(job["Status"], "Completed", "{many}");
    assert_eq!(job["Count"], 4, "{many}");
    assert_eq!(job["ContactsLists"][0]["Action"], "addnoforce", "{many}");
    let mut added: Vec<&str> = many["in list"]["body"]["Data"]
        .as_array()
        .expect("contacts")
        .iter()
        .filter_map(|c| c["Email"].as_str())
        .collect();
    added.sort_unstable();
    assert_eq!(
        added,
        [
            "-dash@example.com",
            "bulk0@example.com",
            "bulk1@example.com",
            "bulk2@example.com"
        ],
        "{many}"
    );
    let (_, bulk) = api.get("/v1/contacts/bulk1@example.com").await;
    assert_eq!(bulk["properties"]["first_name"], "B1", "{bulk}");
    assert_eq!(bulk["name"], "Bulk 1", "{bulk}");
    // Values a spreadsheet would run are kept as given (no quote mark slips in).
    let (status, dash) = api.get("/v1/contacts/-dash@example.com").await;
    assert_eq!(status, 200, "{dash}");
    assert_eq!(dash["name"], "@alice", "{dash}");
    assert_eq!(
        dash["properties"]["first_name"], "+44 20 7946 0958",
        "{dash}"
    );

    // The account's counters: both copies delivered.
    let mut stats = Value::Null;
    for _ in 0..50 {
        stats = mailjet_py(&api, "stats", &[]);
        if stats["body"]["Data"][0]["MessageSentCount"].as_i64() >= Some(2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(stats["status"], 200, "{stats}");
    let counters = &stats["body"]["Data"][0];
    assert_eq!(counters["MessageSentCount"], 2, "{stats}");
    assert_eq!(counters["Total"], 2, "{stats}");
    assert_eq!(counters["Timeslice"], "", "{stats}");

    // What Kuvert does not do, and bad requests, in Mailjet's error shapes.
    let r = mailjet_py(&api, "refused", &["eve@example.com"]);
    assert_eq!(r["sandbox"]["status"], 400, "{r}");
    assert_eq!(
        r["sandbox"]["body"]["ErrorRelatedTo"],
        json!(["SandboxMode"])
    );
    assert!(r["sandbox"]["body"]["ErrorIdentifier"].is_string(), "{r}");
    assert_eq!(r["partial"]["status"], 400, "{r}");
    let partial = &r["partial"]["body"]["Messages"];
    assert_eq!(partial[0]["Status"], "error", "{r}");
    assert_eq!(
        partial[0]["Errors"][0]["ErrorRelatedTo"],
        json!(["InlinedAttachments"]),
        "{r}"
    );
    assert_eq!(
        partial[1]["Status"], "success",
        "the other message is sent: {r}"
    );
    assert_eq!(
        r["no body"]["body"]["Messages"][0]["Errors"][0]["ErrorCode"],
        "send-0003"
    );
    let foreign = &r["foreign sender"]["body"]["Messages"][0]["Errors"][0];
    assert_eq!(foreign["ErrorCode"], "send-0008", "{r}");
    assert_eq!(foreign["StatusCode"], 403, "{r}");
    assert_eq!(foreign["ErrorRelatedTo"], json!(["From"]), "{r}");
    assert_eq!(r["counter source"]["status"], 400, "{r}");
    assert!(
        r["counter source"]["body"]["ErrorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("CounterSource")),
        "{r}"
    );
    assert_eq!(r["not found"]["status"], 404, "{r}");
    assert_eq!(r["not found"]["body"]["ErrorMessage"], "Object not found");
    assert_eq!(r["wrong pair"]["status"], 401, "{r}");
    assert_eq!(r["wrong pair"]["error"], "MailjetAuthError", "{r}");
    mail_to(&sink, "pat@example.com").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        sink.received()
            .iter()
            .all(|m| m.rcpt_to.iter().all(|r| r != "eve@example.com")),
        "a refused message delivers nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailjet_s_node_library_sends_pages_and_manages_contacts_over_tls() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    // node-mailjet speaks only https: a TLS front with a CA of the test's own, which node is
    // told to trust.
    let upstream: std::net::SocketAddr = api
        .server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let front = kuvert_testkit::TlsFront::start(upstream).await;
    let host = format!("localhost:{}", front.addr.port());
    let ca = front.ca_file.to_string_lossy().into_owned();
    let node = |step: &str, args: &[&str]| {
        Driver {
            program: "node",
            script: "mailjet_js.mjs",
            base: &host,
            key: &api.key,
            env: &[("NODE_EXTRA_CA_CERTS", &ca)],
        }
        .run(step, args, b"")
    };

    let sent = node("send", &["nia@example.com"]);
    assert_eq!(sent["status"], 200, "{sent}");
    let to = &sent["body"]["Messages"][0]["To"][0];
    assert_eq!(to["Email"], "nia@example.com", "{sent}");
    let copy = to["MessageID"].as_str().expect("an id").to_owned();
    let mail = mail_to(&sink, "nia@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Sent by node-mailjet."), "{text}");
    assert!(text.contains("note.txt"), "{text}");
    let message = message_of(&api, "nia@example.com").await;
    assert_eq!(message["tags"], json!(["node"]), "{message}");
    assert_eq!(
        message["metadata"],
        json!({"EventPayload": "order=8"}),
        "{message}"
    );

    let mut history = Value::Null;
    for _ in 0..100 {
        history = node("history", &[&copy]);
        if history["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["EventType"] == "sent"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        history["events"]
            .as_array()
            .and_then(|e| e.last())
            .map(|e| &e["EventType"]),
        Some(&json!("sent")),
        "{history}"
    );

    let c = node("contacts", &["oli@example.com"]);
    assert_eq!(c["prop"]["status"], 201, "{c}");
    assert_eq!(c["managed"]["status"], 201, "{c}");
    assert_eq!(
        c["data"]["body"]["Data"][0]["Data"],
        json!([{"Name": "city", "Value": "Lyon"}]),
        "{c}"
    );
    assert_eq!(
        c["inList"]["body"]["Data"][0]["Email"], "oli@example.com",
        "{c}"
    );
    assert_eq!(c["erased"]["status"], 200, "{c}");
    assert_eq!(c["gone"]["status"], 404, "{c}");

    let t = node("template", &["ola@example.com"]);
    assert_eq!(t["content"]["status"], 201, "{t}");
    assert_eq!(t["sent"]["status"], 200, "{t}");
    let mail = mail_to(&sink, "ola@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Subject: Note for Ola"), "{text}");
    assert!(text.contains("Hi Ola, from Node."), "{text}");

    let mut stats = Value::Null;
    for _ in 0..50 {
        stats = node("stats", &[]);
        if stats["body"]["Data"][0]["MessageSentCount"].as_i64() >= Some(2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(stats["body"]["Data"][0]["MessageSentCount"], 2, "{stats}");

    let refused = node("refused", &["eve@example.com"]);
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(
        refused["body"]["ErrorRelatedTo"],
        json!(["SandboxMode"]),
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("SandboxMode")),
        "{refused}"
    );
}

/// What a receiver got: the query of its URL, the Authorization header, Kuvert's signature
/// header, the body.
type Posts =
    std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, Option<String>, Option<String>, Value)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailjet_event_callbacks_post_mailjet_s_shape_that_anymail_reads() {
    let got: Posts = Posts::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(got): axum::extract::State<Posts>,
                 uri: axum::http::Uri,
                 headers: axum::http::HeaderMap,
                 axum::Json(body): axum::Json<Value>| async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    got.lock().expect("lock").push((
                        uri.query().map(str::to_owned),
                        header("authorization"),
                        header("x-kuvert-signature"),
                        body,
                    ));
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

    let c = mailjet_py(&api, "callbacks", &[&hook]);
    assert_eq!(c["sent"]["status"], 201, "{c}");
    assert_eq!(c["sent"]["body"]["Data"][0]["EventType"], "sent", "{c}");
    assert_eq!(c["sent"]["body"]["Data"][0]["Version"], 2, "{c}");
    assert_eq!(c["moved"]["status"], 200, "{c}");
    assert_eq!(
        c["moved"]["body"]["Data"][0]["Url"],
        format!("{hook}?open"),
        "{c}"
    );
    assert_eq!(c["twice"]["status"], 400, "one URL an event type: {c}");
    assert_eq!(c["backup"]["status"], 400, "{c}");
    assert!(
        c["backup"]["body"]["ErrorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("IsBackup")),
        "{c}"
    );
    assert_eq!(c["listed"]["body"]["Count"], 2, "{c}");
    assert_eq!(c["got"]["body"]["Data"][0]["EventType"], "open", "{c}");

    // A send with a campaign, a custom id and a payload; its reader opens it.
    let sent = mailjet_py(&api, "send", &["ann@example.com"]);
    assert_eq!(sent["status"], 200, "{sent}");
    let copy = sent["body"]["Messages"][0]["To"][0]["MessageID"]
        .as_str()
        .expect("id")
        .to_owned();
    let mail = unfolded(&mail_to(&sink, "ann@example.com").await.data);
    let pixel = crate::common::url_after(&mail, &format!("{}/o/", api.server.base_url));
    assert_eq!(reqwest::get(&pixel).await.expect("pixel").status(), 200);
    for _ in 0..200 {
        if got.lock().expect("lock").len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let posts = got.lock().expect("lock").clone();
    assert_eq!(posts.len(), 2, "only the types registered: {posts:?}");

    // Version 2: an array, with the URL's credentials as Basic authentication.
    let (_, auth, signature, body) = posts
        .iter()
        .find(|(q, ..)| q.is_none())
        .expect("the sent post");
    // base64 of hookuser:hookpass
    assert_eq!(auth.as_deref(), Some("Basic aG9va3VzZXI6aG9va3Bhc3M="));
    assert!(
        signature.as_deref().is_some_and(|s| s.len() == 64),
        "{signature:?}"
    );
    let e = &body[0];
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(e["event"], "sent", "{e}");
    assert_eq!(e["email"], "ann@example.com", "{e}");
    assert_eq!(e["MessageID"], copy.as_str(), "{e}");
    assert_eq!(e["CustomID"], "order-7", "{e}");
    assert_eq!(e["Payload"], "order=7", "{e}");
    assert_eq!(e["customcampaign"], "spring", "{e}");
    assert!(e["time"].as_i64().is_some(), "{e}");
    assert!(
        e["smtp_reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("250")),
        "{e}"
    );
    // Version 1: one object, at the URL it was moved to.
    let (_, _, _, open) = posts
        .iter()
        .find(|(q, ..)| q.as_deref() == Some("open"))
        .expect("the open post");
    assert_eq!(open["event"], "open", "{open}");
    assert_eq!(open["MessageID"], copy.as_str(), "{open}");

    // django-anymail's Mailjet tracking view reads both.
    let bodies = serde_json::to_vec(&[body, open]).expect("json");
    let seen = crate::mailgun::driver_with_input(
        "python3",
        "anymail_py.py",
        &api,
        "mailjet_webhooks",
        &["unused"],
        &bodies,
    );
    assert_eq!(seen["statuses"], json!([200, 200]), "{seen}");
    let types: Vec<&str> = seen["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["delivered", "opened"], "{seen}");
    for e in seen["events"].as_array().expect("events") {
        assert_eq!(e["esp"], "Mailjet", "{e}");
        assert_eq!(e["recipient"], "ann@example.com", "{e}");
        assert_eq!(e["message_id"], copy.as_str(), "{e}");
        assert_eq!(e["tags"], json!(["spring"]), "{e}");
    }

    // The GDPR deletion: the contact goes, and its address cannot be added again.
    let e = mailjet_py(&api, "erase", &["gdpr@example.com"]);
    assert_eq!(e["erased"]["status"], 200, "{e}");
    assert_eq!(e["gone"]["status"], 404, "{e}");
    assert_eq!(
        e["readded"]["status"], 400,
        "an erased address stays blocked: {e}"
    );
    assert!(
        e["readded"]["body"]["ErrorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("erased")),
        "{e}"
    );
}

/// Globals go into every message: a request whose messages would hold more than the bound
/// in all is refused whole, before anything is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_globals_would_multiply_past_the_bound_is_refused() {
    let api = crate::common::dev_server("");
    // 2 MiB of "xxx", in base64, in Globals; forty messages would make 80 MiB.
    let big = "eHh4".repeat(699_051);
    let messages: Vec<Value> = (0..40)
        .map(|i| json!({"To": [{"Email": format!("m{i}@example.com")}]}))
        .collect();
    let body = json!({
        "Globals": {"From": {"Email": "demo@sandbox.kuvert.test"}, "Subject": "s", "TextPart": "t",
            "Attachments": [{"ContentType": "text/plain", "Filename": "big.txt", "Base64Content": big}]},
        "Messages": messages,
    });
    let r = api
        .http
        .post(api.url("/v3.1/send"))
        .basic_auth(&api.key[..10], Some(&api.key))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(answer["ErrorCode"], "mj-0011", "{answer}");
    let (_, events) = api.get("/v1/events").await;
    assert_eq!(events["items"], json!([]), "nothing was queued");
}
