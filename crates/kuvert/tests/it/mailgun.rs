//! Mailgun's API on the real binary, driven by Mailgun's official Python library
//! (`tests/compat/mailgun_py.py`): what code written for Mailgun does, unchanged but for the
//! base URL and the key.

use std::process::Command;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{Api, mail_to, server_with_sink, unfolded};

const DOMAIN: &str = "sandbox.kuvert.test";

/// Runs one step of the Python driver; what it printed.
fn mailgun_py(api: &Api, step: &str, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/mailgun_py.py");
    let out = Command::new("python3")
        .arg(script)
        .args([&api.url(""), api.key.as_str(), DOMAIN, step])
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "mailgun_py {step}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mailgun_py {step} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
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
