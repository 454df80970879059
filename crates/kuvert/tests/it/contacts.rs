//! Contacts on the real binary: a 100,000-row import watched while it runs, its review of a
//! card-number column and its error report; the export before and after a change; an
//! erasure that leaves the address nowhere and keeps it from being mailed or imported again;
//! address validation against the testkit's DNS server.

use std::collections::BTreeSet;
use std::time::Duration;

use kuvert_testkit::DnsServer;
use serde_json::{Value, json};

use crate::common::{Api, FROM, assert_error, dev_server, import};

/// A 16-digit number that passes the Luhn check, different for each `i`.
fn card(i: u64) -> String {
    let body = format!("4{:014}", i);
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(k, b)| {
            let d = u32::from(b - b'0');
            if k % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// The rows refused on purpose: row number (1 is the first after the header) and column.
fn bad_rows(rows: u64) -> Vec<(u64, &'static str)> {
    (0..50)
        .map(|k| {
            let row = 7 + k * (rows / 50);
            (row, if k % 2 == 0 { "email" } else { "age" })
        })
        .collect()
}

fn csv(rows: u64) -> String {
    let bad: std::collections::HashMap<u64, &str> = bad_rows(rows).into_iter().collect();
    let mut out = String::from("email,name,city,age,card\n");
    for row in 1..=rows {
        let i = row;
        let (email, age) = match bad.get(&row) {
            Some(&"email") => (format!("user{i}-at-example.com"), (i % 90).to_string()),
            Some(_) => (format!("user{i}@example.com"), "old".to_owned()),
            None => (format!("user{i}@example.com"), (i % 90).to_string()),
        };
        let city = if i % 2 == 0 { "Berlin" } else { "Paris" };
        out.push_str(&format!("{email},User {i},{city},{age},{}\n", card(i)));
    }
    out
}

/// Polls an import until `until` holds; returns it, and the states seen on the way.
async fn watch(api: &Api, id: &str, until: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let mut seen = Vec::new();
    for _ in 0..12_000 {
        let (status, i) = api.get(&format!("/v1/imports/{id}")).await;
        assert_eq!(status, 200, "{i}");
        assert_ne!(i["state"], "failed", "{i}");
        if until(&i) {
            return (i, seen);
        }
        seen.push(i);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the import did not get there: {:?}", seen.last())
}

async fn text(api: &Api, path: &str) -> String {
    let r = api
        .http
        .get(api.url(path))
        .bearer_auth(&api.key)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_with_review_errors_export_and_an_erasure() {
    let api = dev_server("");
    for (name, kind) in [("city", "string"), ("age", "integer"), ("card", "string")] {
        let (status, p) = api
            .post(
                "/v1/contact-properties",
                &json!({"name": name, "kind": kind}),
            )
            .await;
        assert_eq!(status, 201, "{p}");
    }
    let (status, list) = api
        .post(
            "/v1/lists",
            &json!({"name": "newsletter", "consent_text": "newsletter consent v3"}),
        )
        .await;
    assert_eq!(status, 201, "{list}");
    let list = list["id"].as_str().expect("id").to_owned();

    // The file: 100,000 rows, 50 of them bad, and a column of card numbers.
    let rows = 100_000;
    let started = import(&api, &format!("list={list}"), csv(rows)).await;
    let id = started["id"].as_str().expect("id").to_owned();
    let (review, _) = watch(&api, &id, |i| i["state"] == "review").await;
    assert_eq!(review["total"], rows, "{review}");
    assert_eq!(
        review["processed"], 0,
        "nothing is written before the review"
    );
    let findings = review["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{review}");
    assert_eq!(findings[0]["column"], "card");
    assert_eq!(findings[0]["problem"], "sensitive");
    assert_eq!(findings[0]["sensitive"]["kind"], "card_number");
    for sample in findings[0]["sensitive"]["samples"]
        .as_array()
        .expect("samples")
    {
        let digits = sample
            .as_str()
            .expect("text")
            .chars()
            .filter(char::is_ascii_digit)
            .count();
        assert!(digits <= 4, "a sample shows at most four digits: {sample}");
    }
    // Confirming without dropping an unknown column is refused; dropping the card column runs it.
    let (status, running) = api
        .post(
            &format!("/v1/imports/{id}/confirm"),
            &json!({"drop_columns": ["card"]}),
        )
        .await;
    assert_eq!(status, 200, "{running}");
    let (done, seen) = watch(&api, &id, |i| i["state"] == "done").await;
    assert!(
        seen.iter().any(|i| {
            let p = i["processed"].as_u64().unwrap_or(0);
            i["state"] == "running" && p > 0 && p < rows
        }),
        "progress shows while it runs: {:?}",
        seen.iter().map(|i| &i["processed"]).collect::<Vec<_>>()
    );
    assert_eq!(
        (
            &done["processed"],
            &done["created"],
            &done["failed"],
            &done["skipped"]
        ),
        (&json!(rows), &json!(rows - 50), &json!(50), &json!(0)),
        "{done}"
    );

    // The error report names the 50 rows and their columns.
    let report = text(&api, &format!("/v1/imports/{id}/errors")).await;
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some("row,column,reason"));
    let got: BTreeSet<(u64, String)> = lines
        .map(|l| {
            let mut f = l.splitn(3, ',');
            let row = f.next().and_then(|r| r.parse().ok()).expect("row");
            (row, f.next().expect("column").to_owned())
        })
        .collect();
    let want: BTreeSet<(u64, String)> = bad_rows(rows)
        .into_iter()
        .map(|(r, c)| (r, c.to_owned()))
        .collect();
    assert_eq!(got, want);

    // The export holds every contact with its consent, and none of the dropped column.
    let export = text(&api, &format!("/v1/contacts/export?list={list}")).await;
    let mut lines = export.lines();
    let header = lines.next().expect("header");
    assert!(header.starts_with("email,name,status,"), "{header}");
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len() as u64, rows - 50);
    let user8 = body
        .iter()
        .find(|l| l.starts_with("user8@example.com,"))
        .expect("user8 is exported");
    assert!(user8.contains(",User 8,active,"), "{user8}");
    assert!(
        user8.contains(",8,,Berlin,"),
        "properties in name order: {user8}"
    );
    assert!(
        user8.contains("newsletter consent v3") && user8.contains("import"),
        "{user8}"
    );
    assert!(
        !export.contains(&card(8)),
        "the dropped column is not imported"
    );

    // A change and a deletion show in the next export.
    let (status, c) = api
        .send(
            reqwest::Method::PATCH,
            "/v1/contacts/user1@example.com",
            &json!({"name": "Renamed One"}),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(api.delete("/v1/contacts/user2@example.com").await, 204);
    let json_export: Value = serde_json::from_str(
        &text(
            &api,
            &format!("/v1/contacts/export?list={list}&format=json"),
        )
        .await,
    )
    .expect("a JSON array");
    let all = json_export.as_array().expect("array");
    assert_eq!(all.len() as u64, rows - 51);
    let one = all
        .iter()
        .find(|c| c["address"] == "user1@example.com")
        .expect("user1");
    assert_eq!(one["name"], "Renamed One");
    assert_eq!(one["consent"][0]["method"], "import");
    assert!(all.iter().all(|c| c["address"] != "user2@example.com"));

    // An erasure: mail was sent to the address before; afterwards nothing names it.
    let victim = "user3@example.com";
    let (status, sent) = api
        .post(
            "/v1/messages",
            &json!({"from": FROM, "to": [victim], "subject": "Hi", "text": "For user3"}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let erase = api
        .http
        .delete(api.url(&format!("/v1/contacts/{victim}?erase=true")))
        .bearer_auth(&api.key)
        .send()
        .await
        .expect("erase");
    assert_eq!(erase.status().as_u16(), 204);
    let refused = api
        .post("/v1/messages", &json!({"from": FROM, "to": ["ok@example.com", victim], "subject": "Again", "text": "x"}))
        .await;
    assert_error(&refused, 422, "address_refused", Some("to[1]"));
    let again = import(&api, &format!("list={list}"), format!("email\n{victim}\n")).await;
    let again_id = again["id"].as_str().expect("id").to_owned();
    let (skipped, _) = watch(&api, &again_id, |i| i["state"] == "done").await;
    assert_eq!(
        (&skipped["created"], &skipped["skipped"]),
        (&json!(0), &json!(1)),
        "{skipped}"
    );
    let report = text(&api, &format!("/v1/imports/{again_id}/errors")).await;
    assert!(
        report.contains("1,email,") && report.contains("erased"),
        "{report}"
    );
    // What the account holds, opened: the export of every personal column.
    let everything = text(&api, "/v1/account/export").await.to_lowercase();
    assert!(
        everything.contains("user4@example.com"),
        "the export reads contacts"
    );
    if let Some(at) = everything.find(victim) {
        let from = everything[..at]
            .char_indices()
            .rev()
            .nth(300)
            .map_or(0, |(i, _)| i);
        panic!(
            "the erased address is in the account's data: {}",
            &everything[from..(at + 100).min(everything.len())]
        );
    }
    let (_, suppressions) = api.get("/v1/suppressions?reason=erased").await;
    let items = suppressions["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{suppressions}");
    assert_eq!(items[0]["reason"], "erased", "{suppressions}");
    assert_eq!(items[0]["address"], Value::Null, "{suppressions}");
    // And the database file holds it nowhere.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(api.server.data_dir()).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().contains("kuvert.db") {
            bytes.extend(std::fs::read(&path).expect("read"));
        }
    }
    assert!(bytes.len() > 100_000, "the database file was read");
    assert!(
        !String::from_utf8_lossy(&bytes)
            .to_lowercase()
            .contains(victim)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_asks_dns_and_knows_roles_disposables_and_typos() {
    let dns = DnsServer::start();
    dns.add_mx("mail.example", 10, "mx.mail.example");
    dns.add_a("mx.mail.example", std::net::Ipv4Addr::new(127, 0, 0, 2));
    dns.add_a("a-only.example", std::net::Ipv4Addr::new(127, 0, 0, 3));
    dns.add_txt("no-mail.example", "v=spf1 -all");
    dns.add_null_mx("null.example");
    dns.add_mx("gmail.com", 5, "gmail-smtp-in.l.google.com");
    let api = dev_server(&format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr()));
    let check = async |address: &str| {
        let (status, v) = api
            .get(&format!(
                "/v1/addresses/validate?address={}",
                urlencode(address)
            ))
            .await;
        assert_eq!(status, 200, "{v}");
        v
    };
    let v = check("ann@mail.example").await;
    assert_eq!(
        (&v["valid_syntax"], &v["mail_domain"], &v["deliverable"]),
        (&json!(true), &json!("accepts"), &json!(true)),
        "{v}"
    );
    assert_eq!(
        check("ann@a-only.example").await["mail_domain"],
        "accepts",
        "no MX, but an address"
    );
    assert_eq!(
        check("ann@no-mail.example").await["mail_domain"],
        "no_mail_server"
    );
    assert_eq!(
        check("ann@nowhere.example").await["mail_domain"],
        "does_not_exist"
    );
    let null = check("ann@null.example").await;
    assert_eq!(
        (&null["mail_domain"], &null["deliverable"]),
        (&json!("null_mx"), &json!(false))
    );
    let syntax = check("ann@@mail.example").await;
    assert_eq!(syntax["valid_syntax"], false);
    assert!(
        !syntax["reason"].as_str().unwrap_or_default().is_empty(),
        "{syntax}"
    );
    assert_eq!(check("info@mail.example").await["checks"]["role"], true);
    assert_eq!(check("ann@mail.example").await["checks"]["role"], false);
    assert_eq!(
        check("ann@mailinator.com").await["checks"]["disposable"],
        true
    );
    assert_eq!(
        check("ann@gmial.com").await["checks"]["suggestion"],
        "ann@gmail.com"
    );
    assert_eq!(
        check("jörg@mail.example").await["valid_syntax"],
        true,
        "UTF-8 as RFC 6531 allows"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_refuse_bad_input_and_warn_of_sensitive_values() {
    let api = dev_server("");
    let (status, _) = api
        .post(
            "/v1/contact-properties",
            &json!({"name": "note", "kind": "string"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, c) = api
        .post("/v1/contacts", &json!({"address": "eve@example.com", "properties": {"note": "DE89 3704 0044 0532 0130 00"}}))
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["warnings"][0]["kind"], "iban", "{c}");
    assert!(
        !c["warnings"][0]["sample"]
            .as_str()
            .unwrap_or_default()
            .contains("3704")
    );
    assert_error(
        &api.post("/v1/contacts", &json!({"address": "not an address"}))
            .await,
        422,
        "invalid_address",
        Some("address"),
    );
    assert_error(
        &api.post(
            "/v1/contacts",
            &json!({"address": "x@example.com", "properties": {"nope": 1}}),
        )
        .await,
        422,
        "invalid_field",
        Some("properties.nope"),
    );
    assert_error(
        &api.post("/v1/contacts", &json!({"address": "eve@example.com"}))
            .await,
        409,
        "conflict",
        None,
    );
    assert_error(
        &api.post(
            "/v1/contact-properties",
            &json!({"name": "Email", "kind": "string"}),
        )
        .await,
        422,
        "invalid_field",
        Some("name"),
    );
    // An unsubscribe import names its list; an import without an address column fails.
    let r = api
        .http
        .post(api.url("/v1/imports?mode=unsubscribe"))
        .bearer_auth(&api.key)
        .body("email\nx@example.com\n")
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 422);
    let started = import(&api, "mode=add", "name\nNobody\n".into()).await;
    let id = started["id"].as_str().expect("id");
    let mut failed = Value::Null;
    for _ in 0..500 {
        let (_, i) = api.get(&format!("/v1/imports/{id}")).await;
        if i["state"] == "failed" {
            failed = i;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("address column"),
        "{failed}"
    );
    // A too-large upload is refused before it is read.
    let small = dev_server("[contacts]\nmax_import_bytes = 100\n");
    let r = small
        .http
        .post(small.url("/v1/imports"))
        .bearer_auth(&small.key)
        .body("email\n".to_owned() + &"a@example.com\n".repeat(20))
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 413);
}
