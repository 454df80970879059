//! Bounces and complaints arriving as mail at the inbound MX: the samples in
//! `testdata/reports/`, in the shapes Gmail, Outlook, Yahoo, Postfix and Exim send, each
//! become the right event and suppression (or none).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{Api, server_with_sink};

const RETURN_PATH_HOST: &str = "bounces.sandbox.kuvert.test";

struct Delivered {
    rcpt: String,
    verp: String,
    message_id: String,
}

/// Sends one message to `rcpt` and waits until the sink has it.
async fn deliver(api: &Api, sink: &SmtpSink, rcpt: &str) -> Delivered {
    let (status, sent) = api.post("/v1/messages", &json!({"from": "Demo <demo@sandbox.kuvert.test>", "to": [rcpt], "subject": "Hello", "text": "It works."})).await;
    assert_eq!(status, 202, "{sent}");
    for _ in 0..200 {
        if let Some(r) = sink.received().into_iter().find(|r| r.rcpt_to == [rcpt]) {
            let text = r.text();
            let message_id = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Message-ID: <")
                        .or_else(|| l.strip_prefix("Message-Id: <"))
                })
                .and_then(|v| v.strip_suffix('>'))
                .expect("a Message-ID")
                .to_owned();
            return Delivered {
                rcpt: rcpt.to_owned(),
                verp: r.mail_from,
                message_id,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{rcpt} never arrived");
}

fn sample(name: &str, d: &Delivered) -> String {
    let path = format!(
        "{}/../../testdata/reports/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.replace("{{VERP}}", &d.verp)
        .replace("{{RCPT}}", &d.rcpt)
        .replace("{{MESSAGE_ID}}", &d.message_id)
        .replace("{{FROM}}", "Demo <demo@sandbox.kuvert.test>")
        .replace("{{RETURN_PATH_HOST}}", RETURN_PATH_HOST)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
}

/// Sends `message` to `rcpt` at the inbound MX with a null sender, as bounces come; the
/// replies to RCPT and to the end of DATA.
fn mail_in(addr: SocketAddr, rcpt: &str, message: &str) -> (String, String) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut reply = |w: &mut TcpStream, line: &[u8]| {
        w.write_all(line).expect("write");
        let mut all = String::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).expect("read");
            all.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    assert!(reply(&mut w, b"").starts_with("220"));
    assert!(reply(&mut w, b"EHLO mx.provider.test\r\n").starts_with("250"));
    assert!(reply(&mut w, b"MAIL FROM:<>\r\n").starts_with("250"));
    let rcpt_reply = reply(&mut w, format!("RCPT TO:<{rcpt}>\r\n").as_bytes());
    if !rcpt_reply.starts_with("250") {
        return (rcpt_reply, String::new());
    }
    assert!(reply(&mut w, b"DATA\r\n").starts_with("354"));
    let stuffed = message.replace("\r\n.", "\r\n..");
    let end = reply(&mut w, format!("{stuffed}\r\n.\r\n").as_bytes());
    let _ = reply(&mut w, b"QUIT\r\n");
    (rcpt_reply, end)
}

async fn events_of(api: &Api, rcpt: &str) -> Vec<Value> {
    let (_, page) = api
        .get(&format!(
            "/v1/events?recipient={rcpt}&type=bounced,complained"
        ))
        .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn suppression_of(api: &Api, rcpt: &str) -> Option<String> {
    let (_, page) = api.get("/v1/suppressions?limit=300").await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["address"] == rcpt)
        .and_then(|s| s["reason"].as_str().map(str::to_owned))
}

/// A sink, a dev server delivering to it, and the server's inbound MX.
fn world() -> (SmtpSink, Api, SocketAddr) {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let inbound = *api
        .server
        .smtp
        .get("inbound")
        .expect("the inbound MX listens");
    (sink, api, inbound)
}

/// A sample; whether it goes to the return path (else to the feedback address); the event,
/// bounce class and suppression reason it must give.
type Case = (
    &'static str,
    bool,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_become_the_right_events_and_suppressions() {
    let (sink, api, inbound) = world();
    let cases: [Case; 9] = [
        (
            "dsn-gmail.eml",
            true,
            Some("bounced"),
            Some("hard"),
            Some("bounce"),
        ),
        (
            "dsn-outlook.eml",
            true,
            Some("bounced"),
            Some("hard"),
            Some("bounce"),
        ),
        ("dsn-yahoo.eml", true, Some("bounced"), Some("policy"), None),
        (
            "dsn-postfix.eml",
            true,
            Some("bounced"),
            Some("other"),
            None,
        ),
        ("dsn-postfix-delayed.eml", true, None, None, None),
        (
            "dsn-exim.eml",
            true,
            Some("bounced"),
            Some("hard"),
            Some("bounce"),
        ),
        (
            "arf-yahoo.eml",
            false,
            Some("complained"),
            None,
            Some("complaint"),
        ),
        (
            "arf-outlook.eml",
            false,
            Some("complained"),
            None,
            Some("complaint"),
        ),
        ("auto-reply.eml", true, None, None, None),
    ];
    for (i, (name, to_verp, event, class, suppressed)) in cases.into_iter().enumerate() {
        let d = deliver(&api, &sink, &format!("reader{i}@example.com")).await;
        let rcpt = if to_verp {
            d.verp.clone()
        } else {
            format!("fbl@{RETURN_PATH_HOST}")
        };
        let (rcpt_reply, end) = mail_in(inbound, &rcpt, &sample(name, &d));
        assert!(rcpt_reply.starts_with("250"), "{name}: {rcpt_reply}");
        assert!(end.starts_with("250 2.0.0"), "{name}: {end}");
        let events = events_of(&api, &d.rcpt).await;
        match event {
            None => assert!(events.is_empty(), "{name} records nothing: {events:?}"),
            Some(t) => {
                assert_eq!(events.len(), 1, "{name}: {events:?}");
                assert_eq!(events[0]["type"], t, "{name}");
                if let Some(c) = class {
                    assert_eq!(events[0]["data"]["class"], c, "{name}: {:?}", events[0]);
                }
            }
        }
        assert_eq!(
            suppression_of(&api, &d.rcpt).await.as_deref(),
            suppressed,
            "{name}"
        );
        if event == Some("bounced") {
            let id = events[0]["message_id"].as_str().expect("message id");
            let (_, m) = api.get(&format!("/v1/messages/{id}")).await;
            assert_eq!(m["recipients"][0]["status"], "bounced", "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_mx_takes_mail_for_return_paths_only() {
    let (sink, api, inbound) = world();
    let d = deliver(&api, &sink, "target@example.com").await;
    // A forged return path: the right shape, a MAC that does not check.
    let (local, host) = d.verp.split_once('@').expect("@");
    let last = local.chars().last().expect("mac");
    let forged = format!(
        "{}{}@{host}",
        &local[..local.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let (reply, _) = mail_in(inbound, &forged, &sample("dsn-gmail.eml", &d));
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
    let (reply, _) = mail_in(inbound, "someone@example.com", "Subject: relay me\r\n\r\nx");
    assert!(reply.starts_with("550 5.7.1"), "no relaying: {reply}");
    let (reply, _) = mail_in(inbound, "b-rcp_x-0000@bounces.unknown.example", "x");
    assert!(
        reply.starts_with("550 5.7.1"),
        "an unknown domain's return path: {reply}"
    );
    assert!(events_of(&api, &d.rcpt).await.is_empty());
    assert_eq!(suppression_of(&api, &d.rcpt).await, None);
}

/// A DSN with `blocks` recipient blocks, each failing `rcpt`, with the original's headers.
fn dsn_of(rcpt: &str, blocks: usize, original: &str) -> String {
    let mut status = String::from("Reporting-MTA: dns; mx.provider.test\r\n\r\n");
    for _ in 0..blocks {
        status.push_str(&format!(
            "Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        ));
    }
    format!(
        "From: MAILER-DAEMON@mx.provider.test\r\nTo: postmaster@{RETURN_PATH_HOST}\r\nSubject: Undelivered\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n\r\n\
         --b1\r\nContent-Type: message/delivery-status\r\n\r\n{status}\
         --b1\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n\r\n--b1--\r\n"
    )
}

/// One DSN of 20,000 recipient blocks used to write 20,000 events, each in a transaction
/// of its own on SQLite's one writer. A report is one write, and names each recipient once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_thousands_of_blocks_is_one_write_of_each_recipient_once() {
    let (sink, api, inbound) = world();
    let d = deliver(&api, &sink, "many@example.com").await;
    let original = format!(
        "Return-Path: <{}>\r\nMessage-ID: <{}>",
        d.verp, d.message_id
    );
    let report = dsn_of(&d.rcpt, 20_000, &original);
    let started = std::time::Instant::now();
    let (rcpt_reply, end) = mail_in(inbound, &d.verp, &report);
    assert!(rcpt_reply.starts_with("250"), "{rcpt_reply}");
    assert!(end.starts_with("250 2.0.0 OK: 1 recipient"), "{end}");
    let events = events_of(&api, &d.rcpt).await;
    assert_eq!(events.len(), 1, "{events:?}");
    eprintln!("20,000 blocks recorded in {:?}", started.elapsed());
}

/// Without a return path of ours, a report carries only what every recipient saw: the
/// Message-ID and the other recipients' addresses. It must not bounce or suppress them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_without_our_return_path_cannot_touch_other_recipients() {
    let (sink, api, inbound) = world();
    // Two recipients at one domain: one transaction, one return path for the message.
    let (status, sent) = api
        .post(
            "/v1/messages",
            &json!({"from": "Demo <demo@sandbox.kuvert.test>",
                "to": ["one@shared.example", "two@shared.example"], "subject": "Hello", "text": "Hi."}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let copy = crate::common::mail_to(&sink, "one@shared.example").await;
    let text = copy.text();
    let message_id = text
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: <"))
        .and_then(|v| v.strip_suffix('>'))
        .expect("a Message-ID")
        .to_owned();
    // "one" forges a bounce of "two" from what its copy shows.
    let original = format!(
        "Return-Path: <{}>\r\nMessage-ID: <{message_id}>\r\nTo: one@shared.example, two@shared.example",
        copy.mail_from
    );
    let (_, end) = mail_in(
        inbound,
        &format!("postmaster@{RETURN_PATH_HOST}"),
        &dsn_of("two@shared.example", 1, &original),
    );
    assert!(end.starts_with("250"), "{end}");
    // And a complaint in two's name, by the feedback address.
    let arf = format!(
        "From: fbl@provider.test\r\nTo: fbl@{RETURN_PATH_HOST}\r\nSubject: FBL\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"f1\"\r\n\r\n\
         --f1\r\nContent-Type: text/plain\r\n\r\nSpam.\r\n\r\n\
         --f1\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n\
         Original-Mail-From: <{}>\r\nOriginal-Rcpt-To: <two@shared.example>\r\n\r\n\
         --f1\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n\r\nHi.\r\n\r\n--f1--\r\n",
        copy.mail_from
    );
    let (_, end) = mail_in(inbound, &format!("fbl@{RETURN_PATH_HOST}"), &arf);
    assert!(end.starts_with("250"), "{end}");
    assert!(events_of(&api, "two@shared.example").await.is_empty());
    assert_eq!(suppression_of(&api, "two@shared.example").await, None);
    let (_, m) = api
        .get(&format!(
            "/v1/messages/{}",
            sent["id"].as_str().expect("id")
        ))
        .await;
    assert!(
        m["recipients"]
            .as_array()
            .expect("recipients")
            .iter()
            .all(|r| r["status"] == "delivered"),
        "{m}"
    );
}

/// Reports are rate-limited per client network: past the limit, MAIL FROM gets 450.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_from_one_network_are_rate_limited() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = crate::common::dev_server(&format!(
        "[delivery]\nmode = \"mx\"\n[delivery.routes]\n\"*\" = \"{}\"\n[smtp]\nsubmission_listen = \"127.0.0.1:0\"\nsubmission_tls_listen = \"127.0.0.1:0\"\ninbound_listen = \"127.0.0.1:0\"\ninbound_reports_per_minute = 3\n",
        sink.addr()
    ));
    let inbound = *api.server.smtp.get("inbound").expect("inbound");
    let s = TcpStream::connect(inbound).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut say = |line: &str| {
        w.write_all(line.as_bytes()).expect("write");
        let mut l = String::new();
        loop {
            l.clear();
            r.read_line(&mut l).expect("read");
            if l.as_bytes().get(3) != Some(&b'-') {
                return l.clone();
            }
        }
    };
    assert!(say("").starts_with("220"));
    assert!(say("EHLO mx.provider.test\r\n").starts_with("250"));
    let mut codes = Vec::new();
    for _ in 0..5 {
        let reply = say("MAIL FROM:<>\r\n");
        codes.push(reply[..3].to_owned());
        if reply.starts_with("250") {
            assert!(say("RSET\r\n").starts_with("250"));
        }
    }
    assert_eq!(codes, ["250", "250", "250", "450", "450"]);
}
