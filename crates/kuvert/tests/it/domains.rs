//! Sending domains against a real DNS server on loopback: a domain sends only once its
//! required records are published, and stops when one is taken away.

use kuvert_testkit::DnsServer;
use kuvert_testkit::dns::RecordType;
use serde_json::{Value, json};

use crate::common::{assert_error, dev_server};

const DOMAIN: &str = "news.example.org";

fn publish(dns: &DnsServer, record: &Value) {
    let (name, value) = (
        record["name"].as_str().expect("name"),
        record["value"].as_str().expect("value"),
    );
    match record["type"].as_str() {
        Some("TXT") => dns.add_txt(name, value),
        Some("MX") => dns.add_mx(name, 10, value),
        Some("CNAME") => dns.add_cname(name, value),
        other => panic!("unknown record type {other:?}"),
    }
}

fn send_from(domain: &str) -> Value {
    json!({"from": format!("News <news@{domain}>"), "to": ["reader@example.com"], "subject": "Issue 1", "text": "Hello"})
}

#[tokio::test]
async fn a_domain_sends_once_its_records_are_published() {
    let dns = DnsServer::start();
    let api = dev_server(&format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr()));

    let (status, domain) = api.post("/v1/domains", &json!({"name": DOMAIN})).await;
    assert_eq!(status, 201, "{domain}");
    let records = domain["records"].as_array().expect("records").clone();
    let required: Vec<&Value> = records.iter().filter(|r| r["required"] == true).collect();
    let purposes: Vec<&str> = required
        .iter()
        .filter_map(|r| r["purpose"].as_str())
        .collect();
    assert_eq!(purposes, ["dkim", "spf", "return_path"], "{domain}");
    assert_eq!(
        api.post("/v1/domains", &json!({"name": DOMAIN})).await.0,
        409,
        "added twice"
    );

    // Nothing published yet: verification fails and names what is missing.
    let (status, checked) = api
        .post(&format!("/v1/domains/{DOMAIN}/verify"), &json!({}))
        .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["state"], "unverified", "{checked}");
    assert!(
        checked["records"]
            .as_array()
            .expect("records")
            .iter()
            .all(|r| r["ok"] == false),
        "{checked}"
    );
    assert_error(
        &api.post("/v1/messages", &send_from(DOMAIN)).await,
        403,
        "domain_unverified",
        Some("from"),
    );

    // Only the DKIM record: still not enough.
    publish(&dns, required[0]);
    let (_, checked) = api
        .post(&format!("/v1/domains/{DOMAIN}/verify"), &json!({}))
        .await;
    assert_eq!(checked["state"], "unverified", "{checked}");
    assert_eq!(
        checked["records"][0]["ok"], true,
        "the DKIM key is found, split in 255-byte strings: {checked}"
    );

    for r in &required[1..] {
        publish(&dns, r);
    }
    let (_, checked) = api
        .post(&format!("/v1/domains/{DOMAIN}/verify"), &json!({}))
        .await;
    assert_eq!(checked["state"], "verified", "{checked}");
    assert!(checked["verified_at"].is_string());
    let (status, sent) = api.post("/v1/messages", &send_from(DOMAIN)).await;
    assert_eq!(status, 202, "{sent}");

    // The key is taken out of DNS: the next check withdraws the right to send.
    dns.remove(required[0]["name"].as_str().expect("name"), RecordType::TXT);
    let (_, checked) = api
        .post(&format!("/v1/domains/{DOMAIN}/verify"), &json!({}))
        .await;
    assert_eq!(checked["state"], "unverified", "{checked}");
    assert_error(
        &api.post("/v1/messages", &send_from(DOMAIN)).await,
        403,
        "domain_unverified",
        Some("from"),
    );

    // Removed: it is unknown from then on.
    assert_eq!(api.delete(&format!("/v1/domains/{DOMAIN}")).await, 204);
    assert_error(
        &api.post("/v1/messages", &send_from(DOMAIN)).await,
        422,
        "unknown_domain",
        Some("from"),
    );
}

#[tokio::test]
async fn the_cli_adds_and_verifies_domains_while_the_server_runs() {
    let dns = DnsServer::start();
    let api = dev_server(&format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr()));
    let added = api.server.cli(&[
        "domain",
        "add",
        "--account",
        "demo@sandbox.kuvert.test",
        "mail.example.net",
        "--json",
    ]);
    assert!(added.ok(), "{}", added.stderr());
    let added = added.json();
    assert_eq!(added["verified"], false);
    assert!(
        added["records"]
            .as_array()
            .expect("records")
            .iter()
            .any(|r| r["purpose"] == "dkim")
    );

    let refused = api
        .server
        .cli(&["domain", "verify", "mail.example.net", "--json"]);
    assert!(
        !refused.ok(),
        "verification fails before the records are published"
    );
    assert!(
        refused.stderr().contains("not verified"),
        "{}",
        refused.stderr()
    );

    // The operator's override, then the running server sees the change at once.
    let forced = api.server.cli(&[
        "domain",
        "verify",
        "mail.example.net",
        "--skip-dns",
        "--json",
    ]);
    assert!(forced.ok(), "{}", forced.stderr());
    assert_eq!(forced.json()["verified"], true);
    let (status, sent) = api
        .post("/v1/messages", &send_from("mail.example.net"))
        .await;
    assert_eq!(status, 202, "{sent}");

    let listed = api
        .server
        .cli(&[
            "domain",
            "list",
            "--account",
            "demo@sandbox.kuvert.test",
            "--json",
        ])
        .json();
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        names.contains(&"mail.example.net") && names.contains(&"sandbox.kuvert.test"),
        "{listed}"
    );
}

/// A domain's keys through the API and the CLI: an Ed25519 key beside RSA and a rotation,
/// each pending (listed, not required) until verification finds its record.
#[tokio::test]
async fn dkim_keys_are_added_and_rotated_through_the_api_and_the_cli() {
    let dns = DnsServer::start();
    let api = dev_server(&format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr()));
    let (status, domain) = api.post("/v1/domains", &json!({"name": DOMAIN})).await;
    assert_eq!(status, 201, "{domain}");
    assert_eq!(domain["dkim_selector"], "kuvert");
    for r in domain["records"].as_array().expect("records") {
        if r["required"] == true {
            publish(&dns, r);
        }
    }
    let keys_path = format!("/v1/domains/{DOMAIN}/dkim-keys");
    let (status, with_ed) = api.post(&keys_path, &json!({"algorithm": "ed25519"})).await;
    assert_eq!(status, 201, "{with_ed}");
    let ed = with_ed["dkim_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["algorithm"] == "ed25519")
        .expect("an Ed25519 key")
        .clone();
    assert_eq!(ed["state"], "pending", "{with_ed}");
    let ed_record = with_ed["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["value"].as_str().is_some_and(|v| v.contains("k=ed25519")))
        .expect("its record")
        .clone();
    assert_eq!(ed_record["required"], false, "pending: {ed_record}");
    assert_error(
        &api.post(&keys_path, &json!({"algorithm": "ed25519"})).await,
        409,
        "conflict",
        Some("algorithm"),
    );
    assert_error(
        &api.post(&keys_path, &json!({"algorithm": "dsa"})).await,
        422,
        "invalid_field",
        Some("algorithm"),
    );

    // Verified without the Ed25519 record: the domain sends, the key still waits.
    let (_, checked) = api
        .post(&format!("/v1/domains/{DOMAIN}/verify"), &json!({}))
        .await;
    assert_eq!(checked["state"], "verified", "{checked}");
    publish(&dns, &ed_record);
    let (_, checked) = api
        .post(&format!("/v1/domains/{DOMAIN}/verify"), &json!({}))
        .await;
    let states: Vec<(&str, &str)> = checked["dkim_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["algorithm"].as_str().unwrap_or(""),
                k["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("rsa", "active"), ("ed25519", "active")],
        "{checked}"
    );

    // A rotation from the operator's CLI: a new RSA key, pending, the old one still signing.
    let rotated = api.server.cli(&["domain", "rotate-dkim", DOMAIN, "--json"]);
    assert!(rotated.ok(), "{}", rotated.stderr());
    let (_, d) = api.get(&format!("/v1/domains/{DOMAIN}")).await;
    assert_eq!(d["dkim_selector"], "kuvert", "{d}");
    assert_eq!(d["dkim_keys"].as_array().expect("keys").len(), 3, "{d}");
    // And through the API, refused while that one waits for its record.
    assert_error(
        &api.post(&format!("{keys_path}/rotate"), &json!({})).await,
        409,
        "conflict",
        Some("algorithm"),
    );
    let again = api.server.cli(&["domain", "rotate-dkim", DOMAIN]);
    assert!(
        !again.ok() && again.stderr().contains("waits for its record"),
        "{}",
        again.stderr()
    );
    // The operator's rotation is in the account's audit log.
    let (_, audit) = api.get("/v1/audit").await;
    assert!(
        audit.to_string().contains("made the rsa DKIM key kuvert-"),
        "{audit}"
    );
}
