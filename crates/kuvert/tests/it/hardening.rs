//! Findings of the security review, each closed by a test that failed before its fix: the
//! real binary, attacked as an attacker would, over its real sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{Api, dev_server, server_with_sink};
use crate::smtp::{smtplib, submission_addr};

async fn delivered(api: &Api) -> usize {
    let (_, page) = api.get("/v1/events?type=delivered&limit=100").await;
    page["items"].as_array().map_or(0, Vec::len)
}

/// Click tracking used to rewrite links in time quadratic in the HTML, on the threads that
/// serve requests: 2 MB of `<a` to four recipients stopped `/healthz` for minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_megabytes_of_tracked_html_do_not_stall_the_server() {
    let api = dev_server("");
    let html = "<a".repeat(1024 * 1024);
    let body = json!({
        "from": "Demo <demo@sandbox.kuvert.test>",
        "to": ["a@example.com", "b@example.com", "c@example.com", "d@example.com"],
        "subject": "Links", "html": html,
        "tracking": {"opens": true, "clicks": true}
    });
    let (status, sent) = api.post("/v1/messages", &body).await;
    assert_eq!(status, 202, "{sent}");
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while delivered(&api).await < 4 {
        assert!(Instant::now() < deadline, "four copies delivered in time");
        let started = Instant::now();
        let r = health.get(api.url("/healthz")).send().await;
        let took = started.elapsed();
        assert!(r.is_ok_and(|r| r.status() == 200), "/healthz answers");
        slowest = slowest.max(took);
        probes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(probes > 0);
    assert!(
        slowest < Duration::from_millis(100),
        "/healthz took {slowest:?} at worst while the copies were rendered"
    );
}

/// Sends `html` with click tracking to one recipient at the sink; the tokens of the click
/// links of the copy that arrived, and a client that does not follow redirects.
async fn click_tokens(
    api: &Api,
    sink: &SmtpSink,
    html: &str,
) -> (String, Vec<String>, reqwest::Client) {
    let body = json!({
        "from": "Demo <demo@sandbox.kuvert.test>", "to": ["reader@example.com"],
        "subject": "Links", "html": html, "tracking": {"clicks": true}
    });
    let (status, sent) = api.post("/v1/messages", &body).await;
    assert_eq!(status, 202, "{sent}");
    let got = crate::common::mail_to(sink, "reader@example.com").await;
    let text = String::from_utf8_lossy(&got.data)
        .replace("=\r\n", "")
        .replace("=3D", "=");
    let prefix = format!("{}/c/", api.server.base_url);
    let tokens = text
        .match_indices(&prefix)
        .map(|(at, _)| {
            text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect()
        })
        .collect();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (prefix, tokens, no_redirect)
}

/// The MAC of a tracking token covered its lower-cased text, so a case variant of a genuine
/// token kept its MAC and decoded to another link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_variant_of_a_tracking_link_is_not_found() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let (prefix, tokens, no_redirect) = click_tokens(
        &api,
        &sink,
        "<p><a href=\"https://shop.example/sale/items/today\">Sale</a></p>",
    )
    .await;
    let token = tokens.first().expect("a click link").clone();
    let genuine = no_redirect
        .get(format!("{prefix}{token}"))
        .send()
        .await
        .expect("click");
    assert_eq!(genuine.status(), 302);
    let (payload, mac) = token.split_once('.').expect("PAYLOAD.MAC");
    let mut tried = 0;
    for (i, c) in payload.char_indices() {
        if !c.is_ascii_alphabetic() {
            continue;
        }
        let flipped = if c.is_ascii_lowercase() {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        };
        let mut variant = payload.to_owned();
        variant.replace_range(i..i + 1, &flipped.to_string());
        let r = no_redirect
            .get(format!("{prefix}{variant}.{mac}"))
            .send()
            .await
            .expect("click");
        assert_eq!(
            r.status(),
            404,
            "{variant} led to {:?}",
            r.headers().get("location")
        );
        tried += 1;
    }
    assert!(tried > 20);
}

const TWO_FROM_SCRIPT: &str = r#"
import json, smtplib, ssl, sys
host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {}
s = smtplib.SMTP(host, port, timeout=30)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.login("api", key)
two = (b"From: Demo <demo@sandbox.kuvert.test>\r\nFrom: Bank <ceo@bank.example>\r\n"
       b"To: reader@example.com\r\nSubject: Two senders\r\n\r\nPay.\r\n")
try:
    s.sendmail("demo@sandbox.kuvert.test", ["reader@example.com"], two)
    out["two_from"] = 250
except smtplib.SMTPDataError as e:
    out["two_from"] = e.smtp_code
    out["two_from_text"] = e.smtp_error.decode()
one = (b"From: Demo <demo@sandbox.kuvert.test>\r\nTo: reader@example.com\r\n"
       b"Subject: One sender\r\n\r\nHello.\r\n")
s.sendmail("demo@sandbox.kuvert.test", ["reader@example.com"], one)
out["one_from"] = 250
s.quit()
print(json.dumps(out))
"#;

/// Only the last `From:` was checked against the account's domains, and a message with two
/// went out signed. The messages SMTP accepts count in `/metrics` as HTTP's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_from_fields_over_smtp_are_refused_and_smtp_counts_in_metrics() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let out = smtplib(TWO_FROM_SCRIPT, submission_addr(&api), &api.key);
    assert_eq!(out["one_from"], 250, "{out}");
    let code = out["two_from"].as_i64().unwrap_or_default();
    assert!((500..600).contains(&code), "{out}");
    assert!(
        out["two_from_text"]
            .as_str()
            .is_some_and(|t| t.contains("From")),
        "{out}"
    );
    crate::common::mail_to(&sink, "reader@example.com").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received_count(), 1, "only the one-From message left");
    let metrics = api.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "kuvert_messages_accepted_total 1"),
        "the SMTP message is counted: {metrics}"
    );
    // Beside HTTP's responses, SMTP's answers to messages, by role and class.
    for line in [
        "kuvert_smtpd_messages_total{role=\"submission\",class=\"2xx\"} 1",
        "kuvert_smtpd_messages_total{role=\"submission\",class=\"5xx\"} 1",
        "kuvert_smtpd_sessions_total{listener=\"submission\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in: {metrics}");
    }
}

/// `DELETE /v1/suppressions/ADDRESS` kept the address in clear in the audit log, where it
/// outlived the destruction of the account's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_a_request_path_is_not_kept_in_clear() {
    let api = dev_server("");
    let address = "audit-probe-7c1@example.com";
    let (status, body) = api
        .post(
            "/v1/suppressions",
            &json!({"address": address, "reason": "unsubscribe"}),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    assert_eq!(
        api.delete(&format!("/v1/suppressions/{address}")).await,
        204
    );
    let (_, log) = api.get("/v1/audit?limit=10").await;
    let entry = log
        .as_array()
        .expect("log")
        .iter()
        .find(|e| e["action"] == "DELETE /v1/suppressions/{address}")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        entry["detail"],
        format!("/v1/suppressions/{address}"),
        "the path is there for the account, sealed: {log}"
    );
    for file in std::fs::read_dir(api.server.data_dir()).expect("data dir") {
        let path = file.expect("entry").path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !bytes
                .windows(address.len())
                .any(|w| w == address.as_bytes()),
            "{} holds {address} in clear",
            path.display()
        );
    }
}

/// `MAIL FRé…` cut a string inside a character and the session panicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_cut_inside_a_character_is_an_error_not_a_panic() {
    let api = dev_server("");
    let inbound = *api.server.smtp.get("inbound").expect("inbound MX");
    let s = TcpStream::connect(inbound).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut lines = std::io::BufReader::new(s.try_clone().expect("clone"));
    let mut s = s;
    // One whole reply (its last line has a space after the code); empty once closed.
    let mut read = move || {
        use std::io::BufRead;
        let mut all = String::new();
        loop {
            let mut l = String::new();
            match lines.read_line(&mut l) {
                Ok(0) | Err(_) => return all,
                Ok(_) => all.push_str(&l),
            }
            if l.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    assert!(read().starts_with("220"));
    s.write_all(b"EHLO client.test\r\n").expect("write");
    assert!(read().starts_with("250"));
    for line in ["MAIL FR\u{e9}\u{e9}\r\n", "RCPT T\u{e9}\u{e9}\r\n"] {
        s.write_all(line.as_bytes()).expect("write");
        let reply = read();
        assert!(reply.starts_with('5'), "{line:?}: {reply:?}");
    }
    s.write_all(b"NOOP\r\n").expect("write");
    assert!(read().starts_with("250"), "the session goes on");
}

#[test]
fn help_describes_what_serve_runs() {
    let out = std::process::Command::new(crate::common::BIN)
        .arg("--help")
        .output()
        .expect("kuvert --help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("as they are built"), "{text}");
    assert!(text.contains("serve"), "{text}");
}

/// A link with a control character was given a tracking link whose click answered a
/// redirect without a Location (the reviewer saw 500): such links are left as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_with_a_control_character_is_left_as_written() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let (prefix, tokens, no_redirect) = click_tokens(
        &api,
        &sink,
        "<p><a href=\"https://shop.example/a\u{0001}b\">odd</a> <a href=\"https://shop.example/c\nd\">nl</a> <a href=\"https://shop.example/ok\">ok</a></p>",
    )
    .await;
    let mut clicks = 0;
    for token in &tokens {
        let r = no_redirect
            .get(format!("{prefix}{token}"))
            .send()
            .await
            .expect("click");
        assert_eq!(r.status(), 302, "{token}");
        assert!(
            r.headers().get("location").is_some(),
            "a redirect with nowhere to go: {token}"
        );
        clicks += 1;
    }
    assert_eq!(clicks, 1, "only the good link is tracked: {tokens:?}");
}

/// Any full key could make the server generate RSA keys without end: the plan bounds the
/// domains an account may add.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_bounds_the_domains_an_account_may_add() {
    let api = dev_server("");
    let (_, list) = api.get("/v1/domains").await;
    let have = list.as_array().map_or(0, Vec::len);
    let max = kuvert_core::account::Plan::Free
        .default_limits()
        .max_domains as usize;
    for i in have..max {
        let (status, body) = api
            .post("/v1/domains", &json!({"name": format!("d{i}.example.com")}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let refused = api
        .post("/v1/domains", &json!({"name": "one-too-many.example.com"}))
        .await;
    crate::common::assert_error(&refused, 403, "domain_limit", Some("name"));
}

/// `DELETE /v1/account` checked the owner's password without limit: a stolen key could
/// guess it. A few tries per account, then 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guesses_through_account_deletion_are_limited() {
    let api = dev_server("");
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (status, _) = api
            .send(
                reqwest::Method::DELETE,
                "/v1/account",
                &json!({"password": "not-the-password-1!"}),
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [403, 403, 403, 403, 403, 429, 429]);
}

/// Live logs per account were unlimited, each polling the database four times a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_a_bounded_number_of_live_logs() {
    let api = dev_server("");
    let addr = api.server.base_url.trim_start_matches("http://").to_owned();
    let open = || {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(
            format!(
                "GET /v1/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
                api.key
            )
            .as_bytes(),
        )
        .expect("write");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("read");
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        (s, head)
    };
    let mut streams = Vec::new();
    for _ in 0..5 {
        let (s, head) = open();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        streams.push(s);
    }
    let (_, head) = open();
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    // A closed stream gives its place back.
    drop(streams.pop());
    let mut admitted = false;
    for _ in 0..50 {
        let (s, head) = open();
        if head.starts_with("HTTP/1.1 200") {
            admitted = true;
            streams.push(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(admitted, "a place is free again");
}

/// The HTTP server had no header-read timeout: a client trickling a header held its
/// connection for ever. Now the connection is closed once the header is late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_that_trickles_in_is_cut_off() {
    let mut opts = kuvert_testkit::ServerOptions::new(crate::common::BIN).arg("--dev");
    opts.env
        .push(("KUVERT_HTTP_HEADER_READ_TIMEOUT".into(), "1s".into()));
    let server = kuvert_testkit::KuvertServer::start(opts);
    let api = Api {
        key: server.dev_key(),
        server,
        http: reqwest::Client::new(),
    };
    let addr = api.server.base_url.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(b"GET /healthz HTTP/1.1\r\n").expect("write");
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        if s.write_all(b"X-Slow: 1\r\n").is_err() {
            closed = true;
            break;
        }
    }
    let mut buf = [0u8; 256];
    let read = s.read(&mut buf);
    closed = closed || matches!(read, Ok(0) | Err(_)) || buf.starts_with(b"HTTP/1.1 408");
    assert!(closed, "the connection is closed once the header is late");
    assert!(started.elapsed() < Duration::from_secs(14));
    // The server itself still answers.
    let (status, _) = api.get("/v1/account").await;
    assert_eq!(status, 200);
}

/// The account export was built whole in memory before the first byte went out: now it is
/// written as it is read (chunked, no length known in advance), and still one JSON document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_export_streams() {
    let api = dev_server("");
    for i in 0..3 {
        let (status, body) = api
            .post(
                "/v1/messages",
                &crate::common::message(&[&format!("r{i}@example.com")]),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let r = api
        .http
        .get(api.url("/v1/account/export"))
        .bearer_auth(&api.key)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-length").is_none(),
        "streamed: {:?}",
        r.headers()
    );
    assert_eq!(
        r.headers()
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("chunked")
    );
    let export: Value = r.json().await.expect("one JSON document");
    assert_eq!(export["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(export["recipients"].as_array().map(Vec::len), Some(3));
    assert!(export["users"][0]["email"].is_string(), "{export}");
}
