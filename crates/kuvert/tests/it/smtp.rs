//! SMTP submission against the real binary, with clients no one here wrote: Python's smtplib
//! and Postfix's smtp-source. Messages go through `accept()` and out to the testkit's sink.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::Value;

use crate::common::{Api, server_with_sink};

pub(crate) fn submission_addr(api: &Api) -> SocketAddr {
    *api.server
        .smtp
        .get("submission")
        .expect("the submission listener is up")
}

async fn wait_for_sink(sink: &SmtpSink, n: usize) {
    for _ in 0..1200 {
        if sink.received_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} of {n} messages arrived", sink.received_count());
}

/// Runs a Python smtplib script against `addr` with `key`; what it printed, as JSON.
pub(crate) fn smtplib(script: &str, addr: SocketAddr, key: &str) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            key,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the script")
}

const SMTPLIB_SCRIPT: &str = r#"
import json, smtplib, ssl, sys, base64
from email.message import EmailMessage
host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {}
s = smtplib.SMTP(host, port, timeout=30)
s.ehlo("client.test")
out["auth_offered_in_clear"] = s.has_extn("auth")
out["starttls_offered"] = s.has_extn("starttls")
token = base64.b64encode(("\0api\0" + key).encode()).decode()
out["auth_in_clear"] = s.docmd("AUTH", "PLAIN " + token)[0]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.ehlo("client.test")
out["auth_offered_over_tls"] = s.has_extn("auth")
try:
    s.login("api", "kv_not-the-key")
    out["wrong_key"] = 235
except smtplib.SMTPAuthenticationError as e:
    out["wrong_key"] = e.smtp_code
s.login("api", key)
m = EmailMessage()
m["From"] = "Demo <demo@sandbox.kuvert.test>"
m["To"] = "reader@example.com"
m["Subject"] = "Über SMTP"
m["X-Kuvert-Tag"] = "smtp-test"
m.set_content("Sent by smtplib.\n.A line with a leading dot.\n")
refused = s.send_message(m, to_addrs=["reader@example.com", "hidden@example.com"])
out["refused"] = refused
s.quit()
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtplib_submits_over_starttls_with_an_api_key() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let addr = submission_addr(&api);
    let result = smtplib(SMTPLIB_SCRIPT, addr, &api.key);
    assert_eq!(result["starttls_offered"], true);
    assert_eq!(
        result["auth_offered_in_clear"], false,
        "AUTH is offered only over TLS"
    );
    assert_eq!(
        result["auth_in_clear"], 538,
        "AUTH before STARTTLS is refused"
    );
    assert_eq!(result["auth_offered_over_tls"], true);
    assert_eq!(result["wrong_key"], 535);
    assert_eq!(result["refused"], serde_json::json!({}));

    wait_for_sink(&sink, 1).await;
    let got = &sink.received()[0];
    let mut rcpts = got.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["hidden@example.com", "reader@example.com"]);
    let text = got.text();
    assert!(
        text.starts_with("DKIM-Signature: v=1;") && text.contains("d=sandbox.kuvert.test;"),
        "{text}"
    );
    assert!(
        !text.contains("X-Kuvert-Tag") && !text.contains("hidden@"),
        "options and Bcc recipients are not in the message: {text}"
    );
    assert!(text.contains("\r\n.A line with a leading dot."), "{text}");
    let (_, events) = api.get("/v1/events?type=accepted").await;
    let items = events["items"].as_array().expect("events");
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|e| e["tags"] == serde_json::json!(["smtp-test"])),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_source_submits_5000_through_an_smtp_ip_credential() {
    const N: usize = 5000;
    let sink = SmtpSink::start(SinkOptions::default());
    // More than the free plan's hour and day.
    let api = server_with_sink(
        &sink,
        "[plans.free]\ndaily_limit = 6000\nhourly_limit = 6000",
    );
    let created = api.server.cli(&[
        "key",
        "create",
        "--account",
        "demo@sandbox.kuvert.test",
        "--smtp-ip",
        "127.0.0.0/8",
        "--json",
    ]);
    assert!(created.ok(), "{}", created.stderr());
    assert_eq!(created.json()["scope"], "send");
    let addr = submission_addr(&api);
    let out = Command::new("smtp-source")
        .args([
            "-s",
            "8",
            "-m",
            &N.to_string(),
            "-l",
            "2000",
            "-f",
            "demo@sandbox.kuvert.test",
            "-t",
            "load@example.com",
            &addr.to_string(),
        ])
        .output()
        .expect("smtp-source (Debian package postfix)");
    assert!(
        out.status.success(),
        "smtp-source: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_sink(&sink, N).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.received_count(), N, "each message once");
    // Without the credential's network, the same client must authenticate.
    let revoke_and_retry = api
        .server
        .cli(&[
            "key",
            "list",
            "--account",
            "demo@sandbox.kuvert.test",
            "--json",
        ])
        .json();
    assert!(
        revoke_and_retry.as_array().is_some_and(|k| k.len() == 2),
        "{revoke_and_retry}"
    );
}

/// A plain client that speaks raw SMTP lines.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut r = Self {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        };
        assert!(r.reply().starts_with("220"));
        r
    }
    /// One reply, all its lines.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).expect("read") == 0 {
                return all + "<closed>";
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }
    fn send(&mut self, bytes: &[u8]) -> String {
        self.writer.write_all(bytes).expect("write");
        self.reply()
    }
    /// MAIL FROM the dev sender, RCPT TO `rcpt`, DATA: each must be accepted.
    fn open_data(&mut self, rcpt: &str) {
        assert!(
            self.send(b"MAIL FROM:<demo@sandbox.kuvert.test>\r\n")
                .starts_with("250")
        );
        assert!(
            self.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
                .starts_with("250")
        );
        assert!(self.send(b"DATA\r\n").starts_with("354"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_is_refused_and_never_yields_a_second_message() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    assert!(
        api.server
            .cli(&[
                "key",
                "create",
                "--account",
                "demo@sandbox.kuvert.test",
                "--smtp-ip",
                "127.0.0.1/32"
            ])
            .ok()
    );
    let addr = submission_addr(&api);
    let header = "From: demo@sandbox.kuvert.test\r\nTo: victim@example.com\r\nSubject: outer\r\n\r\nouter body";
    let smuggled = "MAIL FROM:<demo@sandbox.kuvert.test>{E}RCPT TO:<smuggled@example.com>{E}DATA{E}From: demo@sandbox.kuvert.test{E}Subject: smuggled{E}{E}inner{E}";
    // Each trick ends the data in a way some server once took for the end; the smuggled
    // commands use the same kind of line end.
    let tricks = [
        ("\n.\n", "\n"),
        ("\n.\r\n", "\r\n"),
        ("\r.\r", "\r"),
        ("\r\n.\n", "\n"),
        ("\r\n.\r", "\r"),
        ("\r.\r\n", "\r\n"),
        ("\n\n.\n\n", "\n"),
        ("\r\n\x00.\r\n", "\r\n"),
    ];
    for (trick, sep) in tricks {
        let mut c = Raw::connect(addr);
        assert!(c.send(b"EHLO client.test\r\n").starts_with("250"));
        c.open_data("victim@example.com");
        let inner = smuggled.replace("{E}", sep);
        let payload = format!("{header}{trick}{inner}{trick}\r\n.\r\n");
        let answer = c.send(payload.as_bytes());
        assert!(answer.starts_with("550 5.6.0"), "{trick:?}: {answer}");
        // The conversation is still in step: nothing of the payload ran as a command.
        assert!(c.send(b"NOOP\r\n").starts_with("250"), "{trick:?}");
        let _ = c.send(b"QUIT\r\n");
    }
    // Bare line ends in commands are refused too.
    let mut c = Raw::connect(addr);
    assert!(c.send(b"EHLO client.test\n").starts_with("500 5.5.2"));
    // A clean message on the same path goes through: the refusals above were not blanket.
    assert!(c.send(b"EHLO client.test\r\n").starts_with("250"));
    c.open_data("clean@example.com");
    let answer = c.send(format!("{header}\r\n.\r\n").as_bytes());
    assert!(answer.starts_with("250 2.0.0"), "{answer}");
    wait_for_sink(&sink, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.received();
    assert_eq!(got.len(), 1, "only the clean message: {got:?}");
    assert_eq!(got[0].rcpt_to, ["clean@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_the_right_codes() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(
        &sink,
        "[limits]\nmax_message_bytes = 4096\nmax_recipients = 2\n[smtp]\nsubmission_listen = \"127.0.0.1:0\"\nsubmission_tls_listen = \"\"\nallow_plain_auth_on_loopback = true\nmax_line_length = 600\n",
    );
    let addr = submission_addr(&api);
    let mut c = Raw::connect(addr);
    assert!(
        c.send(b"MAIL FROM:<a@sandbox.kuvert.test>\r\n")
            .starts_with("503 5.5.1"),
        "EHLO first"
    );
    assert!(
        c.send(b"EHLO client.test\r\n").contains("AUTH PLAIN LOGIN"),
        "offered on loopback when configured"
    );
    assert!(
        c.send(b"MAIL FROM:<a@sandbox.kuvert.test>\r\n")
            .starts_with("530 5.7.0"),
        "authentication first"
    );
    let token = base64_plain(&api.key);
    assert!(
        c.send(format!("AUTH PLAIN {token}\r\n").as_bytes())
            .starts_with("235 2.7.0")
    );
    assert!(
        c.send(b"MAIL FROM:<a@sandbox.kuvert.test> SIZE=999999\r\n")
            .starts_with("552 5.3.4"),
        "SIZE over the limit"
    );
    assert!(
        c.send(b"MAIL FROM:<a@sandbox.kuvert.test>\r\n")
            .starts_with("250")
    );
    assert!(
        c.send(b"RCPT TO:<not an address>\r\n")
            .starts_with("501 5.1.3")
    );
    assert!(c.send(b"RCPT TO:<a@example.com>\r\n").starts_with("250"));
    assert!(c.send(b"RCPT TO:<b@example.com>\r\n").starts_with("250"));
    assert!(
        c.send(b"RCPT TO:<c@example.com>\r\n")
            .starts_with("452 4.5.3"),
        "max_recipients"
    );
    assert!(
        c.send(format!("NOOP {}\r\n", "x".repeat(700)).as_bytes())
            .starts_with("500 5.5.2"),
        "line too long"
    );
    assert!(c.send(b"DATA\r\n").starts_with("354"));
    let answer = c.send(b"From: someone@unknown.example\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
    assert!(
        answer.starts_with("550 5.7.1"),
        "not a sending domain of the account: {answer}"
    );
    assert!(
        c.send(b"MAIL FROM:<a@sandbox.kuvert.test>\r\n")
            .starts_with("250")
    );
    assert!(c.send(b"RCPT TO:<a@example.com>\r\n").starts_with("250"));
    assert!(c.send(b"DATA\r\n").starts_with("354"));
    let big = format!(
        "From: demo@sandbox.kuvert.test\r\n\r\n{}\r\n.\r\n",
        "y".repeat(500)
            .repeat(10)
            .as_bytes()
            .chunks(500)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n")
    );
    assert!(
        c.send(big.as_bytes()).starts_with("552 5.3.4"),
        "larger than max_message_bytes"
    );
    assert!(
        c.send(b"MAIL FROM:<a@sandbox.kuvert.test>\r\n")
            .starts_with("250")
    );
    assert!(c.send(b"RCPT TO:<a@example.com>\r\n").starts_with("250"));
    assert!(c.send(b"DATA\r\n").starts_with("354"));
    let answer = c.send(
        b"From: demo@sandbox.kuvert.test\r\nX-Kuvert-Track-Opens: perhaps\r\n\r\nbody\r\n.\r\n",
    );
    assert!(
        answer.starts_with("550 5.6.0") && answer.contains("X-Kuvert-Track-Opens"),
        "{answer}"
    );
    assert!(c.send(b"QUIT\r\n").starts_with("221"));

    // Wrong keys: refused with 535, slower each time, and the third ends the connection.
    let mut c = Raw::connect(addr);
    assert!(c.send(b"EHLO client.test\r\n").starts_with("250"));
    let wrong = base64_plain("kv_wrong");
    assert!(
        c.send(format!("AUTH PLAIN {wrong}\r\n").as_bytes())
            .starts_with("535 5.7.8")
    );
    assert!(
        c.send(format!("AUTH PLAIN {wrong}\r\n").as_bytes())
            .starts_with("535 5.7.8")
    );
    assert!(
        c.send(format!("AUTH PLAIN {wrong}\r\n").as_bytes())
            .starts_with("421 4.7.0")
    );
    assert!(sink.received().is_empty());
}

fn base64_plain(password: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import base64,sys; print(base64.b64encode(b'\\0api\\0' + sys.argv[1].encode()).decode())", password])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const SMTPS_SCRIPT: &str = r#"
import json, smtplib, ssl, sys
from email.message import EmailMessage
host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL(host, port, context=ctx, timeout=30)
s.ehlo("client.test")
out = {"starttls_offered": s.has_extn("starttls"), "auth": s.esmtp_features.get("auth", "")}
s.user, s.password = "anyone", key
out["login"] = s.auth("LOGIN", s.auth_login)[0]
m = EmailMessage()
m["From"] = "demo@sandbox.kuvert.test"
m["To"] = "tls@example.com"
m["Subject"] = "Over implicit TLS"
m.set_content("Port 465 style.")
s.send_message(m)
s.quit()
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_and_auth_login() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let addr = *api
        .server
        .smtp
        .get("submission_tls")
        .expect("the implicit-TLS listener is up");
    let result = smtplib(SMTPS_SCRIPT, addr, &api.key);
    assert_eq!(result["starttls_offered"], false, "TLS is already on");
    assert_eq!(result["auth"], " PLAIN LOGIN");
    assert_eq!(result["login"], 235);
    wait_for_sink(&sink, 1).await;
    assert_eq!(sink.received()[0].rcpt_to, ["tls@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_and_idle_timeout() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(
        &sink,
        "[smtp]\nsubmission_listen = \"127.0.0.1:0\"\nsubmission_tls_listen = \"\"\ninbound_listen = \"\"\nmax_connections_per_ip = 2\ncommand_timeout = \"2s\"\n",
    );
    let addr = submission_addr(&api);
    let mut first = Raw::connect(addr);
    let _second = Raw::connect(addr);
    let third = TcpStream::connect(addr).expect("connect");
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut line = String::new();
    BufReader::new(third).read_line(&mut line).expect("read");
    assert!(
        line.starts_with("421 4.7.0"),
        "a third connection from one address: {line}"
    );
    // An idle client is let go after the command timeout.
    assert!(first.reply().starts_with("421 4.4.2"));
    // Its slot is free again.
    let mut again = Raw::connect(addr);
    assert!(again.send(b"NOOP\r\n").starts_with("250"));
}

/// A quota reached: over HTTP a 429 naming the limit and when it resets, with `Retry-After`;
/// over SMTP (smtplib) a temporary 451 4.7.1, so that a client retries after the reset; the
/// account page shows the hour's usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_reached_answers_429_with_retry_after_and_smtp_451() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "[plans.free]\nhourly_limit = 2");
    // More recipients than the hour allows at all: refused for good, no Retry-After.
    let (status, body) = api
        .post(
            "/v1/messages",
            &crate::common::message(&["x@example.com", "y@example.com", "z@example.com"]),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    let msg = crate::common::message(&["a@example.com", "b@example.com"]);
    let (status, sent) = api.post("/v1/messages", &msg).await;
    assert_eq!(status, 202, "{sent}");
    let response = api
        .http
        .post(api.url("/v1/messages"))
        .bearer_auth(&api.key)
        .json(&crate::common::message(&["c@example.com"]))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    let text = body["error"]["message"].as_str().expect("message");
    assert!(
        text.starts_with(
            "the hourly limit of 2 recipients is reached (2 sent this hour); it resets at "
        ),
        "{text}"
    );
    // Mailgun's API answers the same, in its shape.
    let response = api
        .http
        .post(api.url("/v3/sandbox.kuvert.test/messages"))
        .basic_auth("api", Some(&api.key))
        .form(&[
            ("from", "Demo <demo@sandbox.kuvert.test>"),
            ("to", "c@example.com"),
            ("subject", "One too many"),
            ("text", "Over the hour's limit."),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("JSON");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the hourly limit of 2 recipients is reached")),
        "{body}"
    );
    let (_, account) = api.get("/v1/account").await;
    assert_eq!(account["limits"]["hourly_limit"], 2, "{account}");
    assert_eq!(account["limits"]["sent_this_hour"], 2, "{account}");
    assert_eq!(account["limits"]["warming_up"], false, "{account}");

    let smtp = smtplib(
        r#"
import json, smtplib, ssl, sys
from email.message import EmailMessage
host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = smtplib.SMTP(host, port, timeout=30)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.login("api", key)
m = EmailMessage()
m["From"] = "Demo <demo@sandbox.kuvert.test>"
m["To"] = "c@example.com"
m["Subject"] = "One too many"
m.set_content("Over the hour's limit.\n")
try:
    s.send_message(m)
    print(json.dumps({"code": 250}))
except smtplib.SMTPDataError as e:
    print(json.dumps({"code": e.smtp_code, "text": e.smtp_error.decode()}))
"#,
        submission_addr(&api),
        &api.key,
    );
    assert_eq!(smtp["code"], 451, "{smtp}");
    let text = smtp["text"].as_str().expect("text");
    assert!(
        text.starts_with("4.7.1 The hourly limit of 2 recipients is reached"),
        "{text}"
    );
}
