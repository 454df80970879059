//! Mailgun's API on the real binary, driven by Mailgun's official Python library
//! (`tests/compat/mailgun_py.py`): what code written for Mailgun does, unchanged but for the
//! base URL and the key.

use std::process::Command;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{Api, mail_to, server_with_sink, unfolded};

pub(crate) const DOMAIN: &str = "sandbox.kuvert.test";

/// Runs one step of a driver in `tests/compat` (`program` runs `script`); what it printed.
pub(crate) fn driver(program: &str, script: &str, api: &Api, step: &str, args: &[&str]) -> Value {
    driver_with_input(program, script, api, step, args, b"")
}

/// [`driver`] with `input` on the step's standard input.
pub(crate) fn driver_with_input(
    program: &str,
    script: &str,
    api: &Api,
    step: &str,
    args: &[&str],
    input: &[u8],
) -> Value {
    Driver {
        program,
        script,
        base: &api.url(""),
        key: &api.key,
        env: &[],
    }
    .run(step, args, input)
}

/// A driver in `tests/compat` (`program` runs `script`) against `base` with `key`.
pub(crate) struct Driver<'a> {
    pub program: &'a str,
    pub script: &'a str,
    pub base: &'a str,
    pub key: &'a str,
    /// Environment variables of its process.
    pub env: &'a [(&'a str, &'a str)],
}

impl Driver<'_> {
    /// Runs one step; what it printed.
    pub(crate) fn run(&self, step: &str, args: &[&str], input: &[u8]) -> Value {
        use std::io::Write as _;
        let (program, script) = (self.program, self.script);
        let path = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(program)
            .arg(path)
            .args([self.base, self.key, DOMAIN, step])
            .args(args)
            .envs(self.env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("input");
        let out = child.wait_with_output().expect("output");
        assert!(
            out.status.success(),
            "{script} {step} (the libraries come from `pip install mailgun==1.10.0 mailjet-rest==1.9.1 django-anymail==15.2` and `npm ci --prefix crates/kuvert/tests/compat`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{script} {step} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// A step of the Python driver (Mailgun's `mailgun` package).
fn mailgun_py(api: &Api, step: &str, args: &[&str]) -> Value {
    driver("python3", "mailgun_py.py", api, step, args)
}

/// A step of the Node driver (npm `mailgun.js`).
fn mailgun_js(api: &Api, step: &str, args: &[&str]) -> Value {
    driver("node", "mailgun_js.mjs", api, step, args)
}

/// The Kuvert message id within a Mailgun id, `<ID@domain>`.
fn kuvert_id(mailgun_id: &Value) -> String {
    let id = mailgun_id.as_str().expect("an id");
    assert!(
        id.starts_with('<') && id.ends_with(&format!("@{DOMAIN}>")),
        "{id}"
    );
    id[1..id.find('@').expect("@")].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailgun_s_python_library_sends_through_kuvert() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");

    // Multipart, with a tag, a variable, a header and an attachment.
    let sent = mailgun_py(&api, "send", &["ann@example.com"]);
    assert_eq!(sent["status"], 200, "{sent}");
    assert_eq!(sent["body"]["message"], "Queued. Thank you.", "{sent}");
    let id = kuvert_id(&sent["body"]["id"]);
    let (_, message) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(message["tags"], json!(["orders"]), "{message}");
    assert_eq!(message["metadata"], json!({"order-id": "7"}), "{message}");
    let mail = mail_to(&sink, "ann@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Subject: Your order"), "{text}");
    assert!(text.contains("X-Shop: spring"), "{text}");
    assert!(
        text.contains("filename=\"invoice.txt\"") || text.contains("filename=invoice.txt"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Message-ID: <{id}@{DOMAIN}>")),
        "{text}"
    );

    // Without files the library sends a urlencoded form, and a boolean as `False`.
    let sent = mailgun_py(&api, "send_form", &["bob@example.com"]);
    assert_eq!(sent["status"], 200, "{sent}");
    let mail = mail_to(&sink, "bob@example.com").await;
    assert!(unfolded(&mail.data).contains("A urlencoded send."));

    // A stored template, filled from `t:variables`.
    let (status, t) = api
        .post(
            "/v1/templates",
            &json!({"name": "welcome", "version": {"engine": "html",
                "content": "<p>Welcome, {{name}}!</p>"}}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let sent = mailgun_py(&api, "send_template", &["cy@example.com", "welcome"]);
    assert_eq!(sent["status"], 200, "{sent}");
    let mail = mail_to(&sink, "cy@example.com").await;
    assert!(unfolded(&mail.data).contains("Welcome, Ann!"));

    // A batch: one message per address, each filled in and addressed to it alone.
    let sent = mailgun_py(&api, "send_batch", &["fay@example.com", "gus@example.com"]);
    assert_eq!(sent["status"], 200, "{sent}");
    for (to, first) in [("fay@example.com", "Fay"), ("gus@example.com", "Gus")] {
        let mail = mail_to(&sink, to).await;
        assert_eq!(mail.rcpt_to, [to]);
        let text = unfolded(&mail.data);
        assert!(text.contains(&format!("Subject: Hi {first}")), "{text}");
        assert!(
            text.contains(&format!("Hello {first}, this is for {to} alone.")),
            "{text}"
        );
        assert!(!text.contains("fay@example.com, gus@example.com"), "{text}");
    }

    // A message sent whole.
    let sent = mailgun_py(&api, "send_mime", &["dee@example.com"]);
    assert_eq!(sent["status"], 200, "{sent}");
    let mail = mail_to(&sink, "dee@example.com").await;
    assert!(unfolded(&mail.data).contains("Sent whole."));

    // The events, in Mailgun's shape, followed page by page by the library's own stream().
    let mut events = Value::Null;
    for _ in 0..100 {
        events = mailgun_py(&api, "events", &[]);
        let delivered = events["delivered"].as_array().expect("delivered");
        if delivered.len() >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let items = events["items"].as_array().expect("items");
    let ids: std::collections::BTreeSet<&str> =
        items.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), items.len(), "no event twice across pages");
    let accepted = items.iter().filter(|e| e["event"] == "accepted").count();
    assert_eq!(
        accepted, 6,
        "every recipient's accepted event, over several pages"
    );
    let timestamps: Vec<f64> = items
        .iter()
        .map(|e| e["timestamp"].as_f64().expect("a float timestamp"))
        .collect();
    assert!(timestamps.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let delivered = events["delivered"].as_array().expect("delivered");
    assert!(delivered.iter().all(|e| e["event"] == "delivered"));
    let ann = delivered
        .iter()
        .find(|e| e["recipient"] == "ann@example.com")
        .expect("ann's delivered event");
    assert_eq!(ann["tags"], json!(["orders"]), "{ann}");
    assert_eq!(ann["user-variables"], json!({"order-id": "7"}), "{ann}");
    assert_eq!(
        ann["message"]["headers"]["message-id"],
        format!("{id}@{DOMAIN}"),
        "{ann}"
    );
    assert_eq!(ann["message"]["headers"]["subject"], "Your order", "{ann}");
    assert_eq!(ann["delivery-status"]["code"], 250, "{ann}");
    assert_eq!(ann["recipient-domain"], "example.com", "{ann}");

    // The domain's counters, a point a day over the last month.
    let stats = mailgun_py(&api, "stats", &[]);
    assert_eq!(stats["status"], 200, "{stats}");
    assert_eq!(stats["body"]["resolution"], "day", "{stats}");
    let points = stats["body"]["stats"].as_array().expect("stats");
    assert!(points.len() >= 30, "{stats}");
    let sum = |path: &[&str]| -> i64 {
        points
            .iter()
            .map(|p| {
                path.iter()
                    .fold(p, |v, k| &v[*k])
                    .as_i64()
                    .expect("a count")
            })
            .sum()
    };
    assert_eq!(sum(&["accepted", "total"]), 6, "{stats}");
    assert_eq!(sum(&["delivered", "total"]), 6, "{stats}");
    assert_eq!(sum(&["failed", "permanent", "total"]), 0, "{stats}");
    assert!(
        points[0].get("opened").is_none(),
        "only the events asked for"
    );
    assert!(
        points[0]["time"]
            .as_str()
            .is_some_and(|t| t.ends_with(" UTC")),
        "{stats}"
    );

    // Bounces and unsubscribes: Kuvert's suppression list, through Mailgun's tables.
    let bounced = [
        "b1@example.com",
        "b2@example.com",
        "b3@example.com",
        "b4@example.com",
        "b5@example.com",
    ];
    let s = mailgun_py(&api, "suppressions", &bounced);
    assert_eq!(
        s["added"][0]["message"], "Address has been added to the bounces table",
        "{s}"
    );
    assert_eq!(s["got"]["status"], 200, "{s}");
    assert_eq!(s["got"]["body"]["address"], "b1@example.com", "{s}");
    assert!(
        s["got"]["body"]["created_at"]
            .as_str()
            .is_some_and(|d| d.ends_with(" UTC")),
        "{s}"
    );
    let mut listed: Vec<&str> = s["listed"]
        .as_array()
        .expect("listed")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, bounced, "all five, over pages of two, each once");
    assert_eq!(s["unsubscribes"][0]["address"], "unsub@example.com", "{s}");
    assert_eq!(s["unsubscribes"][0]["tags"], json!(["*"]), "{s}");
    assert_eq!(s["not a complaint"]["status"], 404, "{s}");
    assert_eq!(
        s["not a complaint"]["body"]["message"],
        "No spam complaints found for this address"
    );
    assert_eq!(s["deleted"]["status"], 200, "{s}");
    assert_eq!(s["deleted"]["body"]["address"], "b1@example.com", "{s}");
    assert_eq!(s["gone"]["status"], 404, "{s}");
    assert_eq!(
        s["gone"]["body"]["message"],
        "Address not found in bounces table"
    );
    assert_eq!(s["unsubscribe deleted"]["status"], 200, "{s}");
    assert_eq!(s["refused"]["status"], 400, "{s}");
    assert!(
        s["refused"]["body"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("code")),
        "{s}"
    );
    assert_eq!(s["whitelists"]["status"], 400, "{s}");
    assert_eq!(s["imported"]["status"], 200, "{s}");
    assert_eq!(
        s["imported"]["body"]["message"],
        "file uploaded successfully"
    );
    for a in ["imp1@example.com", "imp2@example.com"] {
        assert!(
            s["import listed"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x == a)),
            "{a}: {s}"
        );
    }
    assert_eq!(s["import refused"]["status"], 400, "{s}");
    assert!(
        s["import refused"]["body"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("created_at")),
        "{s}"
    );
    // Kuvert's own API sees the same list: b2 is suppressed, b1 and unsub are not.
    let (_, list) = api.get("/v1/suppressions?limit=100").await;
    let kept: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["address"].as_str())
        .collect();
    assert!(kept.contains(&"b2@example.com"), "{list}");
    assert!(kept.contains(&"imp2@example.com"), "{list}");
    assert!(!kept.contains(&"b1@example.com"), "{list}");
    assert!(!kept.contains(&"unsub@example.com"), "{list}");

    // The tags counted, one tag's counters, and a tag forgotten.
    let t = mailgun_py(&api, "tags", &["orders"]);
    assert!(
        t["listed"]["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["tag"] == "orders")),
        "{t}"
    );
    assert_eq!(t["one"]["tag"], "orders", "{t}");
    assert!(
        t["one"]["first-seen"]
            .as_str()
            .is_some_and(|d| d.ends_with(" UTC")),
        "{t}"
    );
    assert_eq!(t["stats"]["status"], 200, "{t}");
    let points = t["stats"]["body"]["stats"].as_array().expect("points");
    let accepted: i64 = points
        .iter()
        .filter_map(|p| p["accepted"]["total"].as_i64())
        .sum();
    assert_eq!(accepted, 1, "the one message tagged orders: {t}");
    assert_eq!(t["described"]["status"], 400, "{t}");
    assert_eq!(t["deleted"]["message"], "Tag deleted", "{t}");
    assert_eq!(t["gone"], 404, "{t}");

    // Templates made through Mailgun's templates API, and a send of their first version.
    let t = mailgun_py(&api, "templates", &["hal@example.com"]);
    assert_eq!(t["created"]["status"], 200, "{t}");
    assert_eq!(t["created"]["body"]["message"], "template has been stored");
    assert_eq!(t["created"]["body"]["template"]["version"]["tag"], "v1");
    assert_eq!(t["version"]["status"], 200, "{t}");
    assert_eq!(
        t["version"]["body"]["message"],
        "new version of the template has been stored"
    );
    assert!(
        t["listed"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["name"] == "order-shipped"),
        "{t}"
    );
    assert_eq!(t["active"]["template"]["version"]["tag"], "v2", "{t}");
    assert_eq!(
        t["active"]["template"]["version"]["template"],
        "<p>Order {{order}} left us today, {{name}}.</p>",
        "{t}"
    );
    let tags: Vec<&str> = t["versions"]["template"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["tag"].as_str())
        .collect();
    assert_eq!(tags, ["v2", "v1"], "newest first: {t}");
    assert_eq!(
        t["v1"]["template"]["version"]["headers"]["Subject"], "Order {{order}} shipped",
        "{t}"
    );
    assert_eq!(t["changed"]["status"], 400, "{t}");
    assert!(
        t["changed"]["body"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("'template' is not supported")),
        "{t}"
    );
    assert_eq!(t["sent"]["status"], 200, "{t}");
    assert_eq!(t["missing"]["status"], 404, "{t}");
    assert_eq!(t["missing"]["body"]["message"], "template not found");
    let mail = mail_to(&sink, "hal@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Subject: Order 42 shipped"), "{text}");
    assert!(
        text.contains("Your order 42 is on its way, Ann."),
        "the version asked for, not the active one: {text}"
    );

    // What Kuvert does not do is refused in Mailgun's shape, naming the option.
    let refused = mailgun_py(&api, "refused", &["eve@example.com"]);
    for option in ["o:testmode", "o:sending-ip", "amp-html"] {
        let answer = &refused[option];
        assert_eq!(answer["status"], 400, "{option}: {answer}");
        let message = answer["body"]["message"].as_str().expect("message");
        assert!(message.contains(option), "{option}: {message}");
    }
    assert_eq!(refused["unknown domain"]["status"], 404, "{refused}");
    assert_eq!(
        refused["unknown domain"]["body"]["message"],
        "Domain not found"
    );
    assert_eq!(refused["wrong key"]["status"], 401, "{refused}");
    assert!(
        refused["wrong key"]["body"]["message"].is_string(),
        "{refused}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        sink.received()
            .iter()
            .all(|m| m.rcpt_to.iter().all(|r| r != "eve@example.com")),
        "a refused send delivers nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailgun_s_node_library_sends_pages_and_suppresses_through_kuvert() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");

    let sent = mailgun_js(&api, "send", &["nia@example.com"]);
    assert_eq!(sent["status"], 200, "{sent}");
    assert_eq!(sent["message"], "Queued. Thank you.", "{sent}");
    let id = kuvert_id(&sent["id"]);
    let mail = mail_to(&sink, "nia@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Sent by mailgun.js."), "{text}");
    assert!(text.contains("note.txt"), "{text}");
    let (_, message) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(message["tags"], json!(["node"]), "{message}");
    assert_eq!(message["metadata"], json!({"order-id": "8"}), "{message}");

    // Four more sends make ten events; pages of two are followed by the library's page ids.
    for to in [
        "o1@example.com",
        "o2@example.com",
        "o3@example.com",
        "o4@example.com",
    ] {
        let (status, m) = api
            .post("/v1/messages", &crate::common::message(&[to]))
            .await;
        assert_eq!(status, 202, "{m}");
        mail_to(&sink, to).await;
    }
    let mut events = Value::Null;
    for _ in 0..100 {
        events = mailgun_js(&api, "events", &[]);
        let delivered = events["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["event"] == "delivered")
            .count();
        if delivered == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let items = events["items"].as_array().expect("items");
    assert_eq!(items.len(), 10, "{events}");
    assert_eq!(events["pages"], 6, "five pages of two and the empty one");
    let ids: std::collections::BTreeSet<&str> =
        items.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 10, "no event twice");
    let nia = items
        .iter()
        .find(|e| e["event"] == "delivered" && e["recipient"] == "nia@example.com")
        .expect("nia's delivered event");
    assert_eq!(nia["user-variables"], json!({"order-id": "8"}), "{nia}");
    assert_eq!(
        nia["message"]["headers"]["message-id"],
        format!("{id}@{DOMAIN}")
    );

    let s = mailgun_js(
        &api,
        "suppressions",
        &["nb1@example.com", "nb2@example.com"],
    );
    assert_eq!(
        s["added"]["message"], "2 addresses have been added to the bounces table",
        "{s}"
    );
    assert_eq!(s["got"]["address"], "nb1@example.com", "{s}");
    assert_eq!(s["got"]["code"], 550, "{s}");
    let mut listed: Vec<&str> = s["listed"]
        .as_array()
        .expect("listed")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["nb1@example.com", "nb2@example.com"], "{s}");
    assert_eq!(
        s["unsub"]["message"], "Address has been added to the unsubscribes table",
        "{s}"
    );
    assert_eq!(s["unsubGot"]["address"], "node-unsub@example.com", "{s}");
    assert_eq!(s["unsubListed"], json!(["node-unsub@example.com"]), "{s}");
    assert_eq!(
        s["unsubDeleted"]["address"], "node-unsub@example.com",
        "{s}"
    );
    assert_eq!(s["unsubGone"]["status"], 404, "{s}");
    assert_eq!(s["deleted"]["address"], "nb1@example.com", "{s}");
    assert_eq!(s["gone"]["status"], 404, "{s}");
    assert_eq!(
        s["gone"]["details"], "Address not found in bounces table",
        "{s}"
    );

    // A template made through mailgun.js, rendered in a send.
    let t = mailgun_js(&api, "templates", &["pia@example.com"]);
    assert_eq!(t["created"]["name"], "node-welcome", "{t}");
    assert_eq!(t["created"]["version"]["tag"], "first", "{t}");
    assert_eq!(
        t["got"]["version"]["template"], "<p>Welcome aboard, {{name}}!</p>",
        "{t}"
    );
    assert_eq!(t["sent"]["status"], 200, "{t}");
    let mail = mail_to(&sink, "pia@example.com").await;
    let text = unfolded(&mail.data);
    assert!(text.contains("Subject: Welcome, Nia"), "{text}");
    assert!(text.contains("Welcome aboard, Nia!"), "{text}");

    // The domain's counters, read by mailgun.js's own parser.
    let mut stats = Value::Null;
    for _ in 0..50 {
        stats = mailgun_js(&api, "stats", &[]);
        let delivered: i64 = stats["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["delivered"]["total"].as_i64())
            .sum();
        if delivered >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let points = stats["stats"].as_array().expect("stats");
    let sum = |event: &str| -> i64 {
        points
            .iter()
            .filter_map(|p| p[event]["total"].as_i64())
            .sum()
    };
    assert_eq!(sum("accepted"), 6, "{stats}");
    assert_eq!(sum("delivered"), 6, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailgun_s_python_library_adds_verifies_and_deletes_a_domain() {
    let dns = kuvert_testkit::DnsServer::start();
    let api = crate::common::dev_server(&format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr()));
    let name = "mg.example.org";
    let created = mailgun_py(&api, "domain_create", &[name]);
    assert_eq!(created["status"], 200, "{created}");
    let body = &created["body"];
    assert_eq!(body["domain"]["name"], name, "{body}");
    assert_eq!(body["domain"]["state"], "unverified", "{body}");
    // Publish what the answer says to publish, in the DNS server the instance asks.
    for r in body["sending_dns_records"]
        .as_array()
        .expect("sending records")
        .iter()
        .chain(body["receiving_dns_records"].as_array().expect("receiving"))
    {
        let (rname, value) = (
            r["name"].as_str().expect("name"),
            r["value"].as_str().expect("value"),
        );
        match r["record_type"].as_str() {
            Some("TXT") => dns.add_txt(rname, value),
            Some("MX") => dns.add_mx(rname, 10, value),
            Some("CNAME") => dns.add_cname(rname, value),
            other => panic!("record type {other:?}"),
        }
    }
    let d = mailgun_py(&api, "domain_verify", &[name]);
    let listed: Vec<&str> = d["listed"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(listed.contains(&name) && listed.contains(&DOMAIN), "{d}");
    assert_eq!(d["listed"]["total_count"], listed.len(), "{d}");
    assert_eq!(d["got"]["domain"]["name"], name, "{d}");
    assert_eq!(d["verified"]["status"], 200, "{d}");
    assert_eq!(d["verified"]["body"]["domain"]["state"], "active", "{d}");
    assert!(
        d["verified"]["body"]["sending_dns_records"]
            .as_array()
            .expect("records")
            .iter()
            .any(|r| r["valid"] == "valid"),
        "{d}"
    );
    assert_eq!(d["deleted"]["message"], "Domain has been deleted", "{d}");
    assert_eq!(d["gone"], 404, "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_registered_through_mailgun_s_api_post_mailgun_s_body_signed() {
    use std::sync::{Arc, Mutex};
    type Got = Arc<Mutex<Vec<(Option<String>, Value)>>>;
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
                 uri: axum::http::Uri,
                 axum::Json(body): axum::Json<Value>| async move {
                    got.lock()
                        .expect("lock")
                        .push((uri.query().map(str::to_owned), body));
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

    let w = mailgun_py(&api, "webhooks", &[&hook]);
    assert_eq!(w["created"]["status"], 200, "{w}");
    assert_eq!(
        w["created"]["body"]["webhook"]["urls"],
        json!([hook]),
        "{w}"
    );
    assert_eq!(w["twice"]["status"], 400, "{w}");
    assert_eq!(
        w["listed"]["webhooks"]["delivered"]["urls"],
        json!([hook]),
        "{w}"
    );
    assert_eq!(
        w["listed"]["webhooks"]["permanent_fail"]["urls"],
        json!([format!("{hook}?fail")]),
        "{w}"
    );
    assert_eq!(w["got"]["webhook"]["urls"], json!([hook]), "{w}");
    assert_eq!(
        w["updated"]["webhook"]["urls"],
        json!([format!("{hook}?moved")]),
        "{w}"
    );

    // A delivery, and a send to a bounced address (dropped: a permanent failure).
    let (status, _) = api
        .post(
            "/v1/suppressions",
            &json!({"address": "gone@example.com", "reason": "bounce"}),
        )
        .await;
    assert_eq!(status, 201);
    for to in ["ok@example.com", "gone@example.com"] {
        let (status, m) = api
            .post("/v1/messages", &crate::common::message(&[to]))
            .await;
        assert_eq!(status, 202, "{m}");
    }
    for _ in 0..200 {
        if got.lock().expect("lock").len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let posts = got.lock().expect("lock").clone();
    assert_eq!(posts.len(), 2, "only the events asked for: {posts:?}");
    let delivered = posts
        .iter()
        .find(|(q, _)| q.is_none())
        .map(|(_, b)| b)
        .expect("the delivered post");
    let data = &delivered["event-data"];
    assert_eq!(data["event"], "delivered", "{data}");
    assert_eq!(data["recipient"], "ok@example.com", "{data}");
    assert_eq!(data["delivery-status"]["code"], 250, "{data}");
    assert!(
        data["message"]["headers"]["message-id"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!("@{DOMAIN}"))),
        "{data}"
    );
    let failed = posts
        .iter()
        .find(|(q, _)| q.as_deref() == Some("moved"))
        .map(|(_, b)| b)
        .expect("the permanent_fail post");
    let data = &failed["event-data"];
    assert_eq!(data["event"], "failed", "{data}");
    assert_eq!(data["severity"], "permanent", "{data}");
    assert_eq!(data["reason"], "suppress-bounce", "{data}");
    assert_eq!(data["recipient"], "gone@example.com", "{data}");

    // The signatures check as Mailgun documents it, with the account's signing key.
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
    let bodies =
        serde_json::to_vec(&posts.iter().map(|(_, b)| b).collect::<Vec<_>>()).expect("json");
    let checked = driver_with_input(
        "python3",
        "mailgun_py.py",
        &api,
        "verify_signatures",
        &[key],
        &bodies,
    );
    assert_eq!(checked["valid"], json!([true, true]), "{checked}");
    let wrong = driver_with_input(
        "python3",
        "mailgun_py.py",
        &api,
        "verify_signatures",
        &["not-the-key"],
        &bodies,
    );
    assert_eq!(wrong["valid"], json!([false, false]), "{wrong}");

    let d = mailgun_py(&api, "webhook_delete", &["delivered"]);
    assert_eq!(d["deleted"]["message"], "Webhook has been deleted", "{d}");
    assert_eq!(d["gone"], 404, "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailgun_s_mailing_lists_and_validation_are_kuvert_s_lists_and_checks() {
    let api = crate::common::dev_server("");
    let (status, p) = api
        .post(
            "/v1/contact-properties",
            &json!({"name": "city", "kind": "string"}),
        )
        .await;
    assert_eq!(status, 201, "{p}");

    let l = mailgun_py(&api, "lists", &[]);
    let list = format!("news@{DOMAIN}");
    assert_eq!(l["created"]["status"], 200, "{l}");
    assert_eq!(
        l["created"]["body"]["list"]["address"],
        list.as_str(),
        "{l}"
    );
    assert_eq!(l["ann"]["member"]["subscribed"], true, "{l}");
    assert_eq!(l["ann"]["member"]["vars"], json!({"city": "Oslo"}), "{l}");
    assert_eq!(l["bob"]["member"]["subscribed"], true, "{l}");
    assert_eq!(l["never"]["status"], 400, "{l}");
    assert_eq!(l["twice"]["status"], 400, "{l}");
    assert_eq!(l["upserted"]["member"]["name"], "Ann B", "{l}");
    assert_eq!(l["got"]["list"]["members_count"], 2, "{l}");
    assert_eq!(l["member"]["member"]["address"], "ann@example.com", "{l}");
    let mut listed: Vec<&str> = l["listed"]
        .as_array()
        .expect("listed")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["ann@example.com", "bob@example.com"], "{l}");
    assert_eq!(l["bob out"]["member"]["subscribed"], false, "{l}");
    assert_eq!(l["left"]["message"], "Mailing list member has been deleted");
    assert_eq!(
        l["after"]["member"]["subscribed"], false,
        "a member who left stays, unsubscribed: {l}"
    );
    assert_eq!(l["undefined"]["status"], 400, "{l}");
    assert!(
        l["pages"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["address"] == list.as_str()),
        "{l}"
    );
    // Kuvert's own API sees the list, the contacts and their consent records.
    let (_, lists) = api.get("/v1/lists").await;
    let id = lists
        .as_array()
        .expect("lists")
        .iter()
        .find(|x| x["name"] == list.as_str())
        .and_then(|x| x["id"].as_str())
        .expect("the list")
        .to_owned();
    let (_, ann) = api.get("/v1/contacts/ann@example.com").await;
    assert_eq!(ann["properties"]["city"], "Oslo", "{ann}");
    assert_eq!(ann["subscriptions"][0]["list_id"], id.as_str(), "{ann}");
    assert_eq!(ann["subscriptions"][0]["status"], "unsubscribed", "{ann}");
    assert!(
        ann["consent"]
            .as_array()
            .is_some_and(|c| c.iter().any(|r| r["action"] == "withdrawn")),
        "{ann}"
    );

    // A double opt-in list made through Kuvert's API: a member added through Mailgun's waits
    // for the confirmation, as one added through `/v1` does.
    let (status, optin) = api
        .post(
            "/v1/lists",
            &json!({"name": format!("optin@{DOMAIN}"), "double_opt_in": true,
                "confirm_from": format!("news@{DOMAIN}")}),
        )
        .await;
    assert_eq!(status, 201, "{optin}");
    let r = api
        .http
        .post(api.url(&format!("/v3/lists/optin@{DOMAIN}/members")))
        .basic_auth("api", Some(&api.key))
        .form(&[("address", "wait+list@example.com")])
        .send()
        .await
        .expect("member");
    assert_eq!(r.status(), 200);
    let member: Value = r.json().await.expect("json");
    assert_eq!(member["member"]["subscribed"], false, "{member}");
    let (_, waiting) = api.get("/v1/contacts/wait+list@example.com").await;
    assert_eq!(
        waiting["subscriptions"][0]["status"], "pending",
        "{waiting}"
    );
    // A '+' in the last address of a page survives the next page's link.
    let r = api
        .http
        .get(api.url(&format!("/v3/lists/optin@{DOMAIN}/members/pages?limit=1")))
        .basic_auth("api", Some(&api.key))
        .send()
        .await
        .expect("pages");
    let page: Value = r.json().await.expect("json");
    let next = page["paging"]["next"].as_str().expect("next").to_owned();
    let r = api
        .http
        .get(&next)
        .basic_auth("api", Some(&api.key))
        .send()
        .await
        .expect("next page");
    assert_eq!(r.status(), 200, "{next}");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["items"], json!([]), "{next}: {page}");

    let v = mailgun_py(
        &api,
        "validate",
        &["not an address", "info@sandbox.kuvert.test"],
    );
    let bad = &v["not an address"];
    assert_eq!(bad["status"], 200, "{v}");
    assert_eq!(bad["body"]["result"], "undeliverable", "{v}");
    assert_eq!(bad["body"]["reason"], json!(["failed_syntax_check"]), "{v}");
    let role = &v["info@sandbox.kuvert.test"]["body"];
    assert_eq!(role["is_role_address"], true, "{v}");
    assert_eq!(role["address"], "info@sandbox.kuvert.test", "{v}");
}
