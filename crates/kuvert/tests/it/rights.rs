//! Account holders' rights on the real binary: the export over HTTP (as a download) and
//! by the operator's CLI show the same data. Its completeness against the schema is
//! checked in `kuvert-admin/tests/export.rs`.

use serde_json::json;

use crate::common::dev_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_is_a_download_and_a_cli_command() {
    let api = dev_server("");
    let (status, sent) = api
        .post(
            "/v1/messages",
            &json!({"from": "demo@sandbox.kuvert.test", "to": ["reader@example.com"], "subject": "Export me", "text": "Hi"}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let r = api
        .http
        .get(api.url("/v1/account/export"))
        .bearer_auth(&api.key)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment; filename=\"kuvert-acc_"),
    );
    let http: serde_json::Value = r.json().await.expect("json");
    assert_eq!(http["messages"][0]["subject"], "Export me");
    assert_eq!(http["recipients"][0]["address"], "reader@example.com");
    assert!(
        http["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["type"] == "accepted")),
        "{}",
        http["events"]
    );

    let account = http["accounts"]["id"].as_str().expect("id");
    let cli = api.server.cli(&["account", "export", account]);
    assert!(cli.ok(), "{}", cli.stderr());
    let by_cli = cli.json();
    assert_eq!(by_cli["users"], http["users"]);
    assert_eq!(by_cli["messages"][0]["id"], sent["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rectification_restriction_and_the_requests_they_leave() {
    use reqwest::Method;
    let api = dev_server("");
    let (status, account) = api
        .send(
            Method::PATCH,
            "/v1/account",
            &json!({"company": "Acme GmbH", "vat_id": "DE999"}),
        )
        .await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(
        (account["company"].as_str(), account["vat_id"].as_str()),
        (Some("Acme GmbH"), Some("DE999"))
    );
    let user = account["users"][0]["id"].as_str().expect("user").to_owned();
    let (status, account) = api
        .send(
            Method::PATCH,
            &format!("/v1/users/{user}"),
            &json!({"first_name": "Ann", "phone": "+49 30 1234"}),
        )
        .await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["users"][0]["first_name"], "Ann");
    let bad = api
        .send(
            Method::PATCH,
            "/v1/users/usr_nobody",
            &json!({"first_name": "X"}),
        )
        .await;
    assert_eq!(bad.0, 404, "{}", bad.1);

    // On hold: sending is refused, reading works; lifted, sending works again.
    let (status, out) = api
        .send(
            Method::PUT,
            "/v1/account/restriction",
            &json!({"restricted": true}),
        )
        .await;
    assert_eq!((status, out["status"].as_str()), (200, Some("restricted")));
    let message = json!({"from": "demo@sandbox.kuvert.test", "to": ["r@example.com"], "subject": "S", "text": "T"});
    let refused = api.post("/v1/messages", &message).await;
    crate::common::assert_error(&refused, 403, "account_inactive", None);
    assert_eq!(api.get("/v1/account").await.0, 200);
    let (status, out) = api
        .send(
            Method::PUT,
            "/v1/account/restriction",
            &json!({"restricted": false}),
        )
        .await;
    assert_eq!((status, out["status"].as_str()), (200, Some("active")));
    assert_eq!(api.post("/v1/messages", &message).await.0, 202);

    // A request by e-mail, recorded by the operator, is open and due in 30 days; those
    // answered by the API are done.
    let recorded = api.server.cli(&[
        "privacy",
        "record",
        "--account",
        account["id"].as_str().expect("id"),
        "--right",
        "objection",
        "--by",
        "ann@acme.example, by e-mail",
        "--json",
    ]);
    assert!(recorded.ok(), "{}", recorded.stderr());
    let (status, list) = api.get("/v1/privacy/requests").await;
    assert_eq!(status, 200);
    let rights: Vec<(&str, &str)> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|r| {
            (
                r["right"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(rights[0], ("objection", "open"), "open first: {list}");
    assert!(rights.contains(&("rectification", "done")), "{list}");
    assert!(rights.contains(&("restriction", "done")), "{list}");
    let due = &list[0];
    assert_eq!(due["overdue"], false);
    let all = api.server.cli(&["privacy", "requests", "--json"]);
    assert!(all.ok(), "{}", all.stderr());
    assert_eq!(all.json()[0]["id"], due["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_needs_a_grant_and_every_access_is_audited() {
    use reqwest::Method;
    let api = dev_server("");
    let (_, account) = api.get("/v1/account").await;
    let id = account["id"].as_str().expect("id").to_owned();

    let refused = api.server.cli(&["support", "show", &id, "--agent", "bob"]);
    assert!(!refused.ok(), "no grant, no access: {}", refused.stdout());
    assert!(
        refused.stderr().contains("not granted support access"),
        "{}",
        refused.stderr()
    );

    let (status, grant) = api
        .send(Method::PUT, "/v1/support/grant", &json!({"hours": 2}))
        .await;
    assert_eq!(status, 200, "{grant}");
    assert!(grant["expires_at"].is_string());
    let bad = api
        .send(Method::PUT, "/v1/support/grant", &json!({"hours": 0}))
        .await;
    crate::common::assert_error(&bad, 422, "invalid_field", Some("hours"));
    let allowed = api.server.cli(&["support", "show", &id, "--agent", "bob"]);
    assert!(allowed.ok(), "{}", allowed.stderr());
    assert_eq!(allowed.json()["accounts"]["id"], id.as_str());
    assert_eq!(
        api.http
            .delete(api.url("/v1/support/grant"))
            .bearer_auth(&api.key)
            .send()
            .await
            .expect("revoke")
            .status()
            .as_u16(),
        204
    );
    assert!(
        !api.server
            .cli(&["support", "show", &id, "--agent", "bob"])
            .ok()
    );

    let (status, log) = api.get("/v1/audit?limit=50").await;
    assert_eq!(status, 200);
    let actions: Vec<(String, String)> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|e| {
            (
                e["actor_kind"].as_str().unwrap_or("").to_owned(),
                e["action"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let support: Vec<&str> = actions
        .iter()
        .filter(|(k, _)| k == "support")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(support.len(), 3, "{actions:?}");
    assert!(
        support[0].starts_with("support access refused"),
        "newest first: {support:?}"
    );
    assert!(
        support[1].starts_with("support read the account's data"),
        "{support:?}"
    );
    assert!(
        support[2].starts_with("support access refused"),
        "{support:?}"
    );
    let key_use = log
        .as_array()
        .expect("log")
        .iter()
        .find(|e| e["action"] == "PUT /v1/support/grant")
        .expect("the grant itself is audited");
    assert_eq!(key_use["actor_kind"], "key");
    assert_eq!(key_use["ip"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policy_version_gives_30_days_notice_to_every_owner() {
    use kuvert_core::Clock;
    let sink = kuvert_testkit::SmtpSink::start(kuvert_testkit::SinkOptions::default());
    let api = crate::common::server_with_sink(&sink, "");
    let now = kuvert_core::SystemClock.now();

    let early = now.plus_days(10).to_rfc3339();
    let refused = api.server.cli(&[
        "policy",
        "publish",
        "--document",
        "privacy",
        "--version",
        "2",
        "--effective",
        &early,
    ]);
    assert!(
        !refused.ok(),
        "less than 30 days' notice: {}",
        refused.stdout()
    );
    assert!(refused.stderr().contains("30 days"), "{}", refused.stderr());

    let effective = now.plus_days(31).to_rfc3339();
    let published = api.server.cli(&[
        "policy",
        "publish",
        "--document",
        "privacy",
        "--version",
        "2",
        "--effective",
        &effective,
        "--url",
        "https://kuvert.example/privacy/2",
        "--json",
    ]);
    assert!(published.ok(), "{}", published.stderr());
    assert_eq!(published.json()["notified"], 1, "the demo account's owner");

    let (_, account) = api.get("/v1/account").await;
    let privacy = &account["policies"][0];
    assert_eq!(privacy["document"], "privacy");
    assert_eq!(privacy["pending"]["version"], "2", "{account}");
    assert!(privacy["in_force"].is_null(), "{account}");

    let owner = account["users"][0]["email"]
        .as_str()
        .expect("owner")
        .to_owned();
    let notice = crate::common::mail_to(&sink, &owner).await;
    let text = String::from_utf8_lossy(&notice.data);
    assert!(
        text.contains("Subject: Our privacy policy changes on"),
        "{text}"
    );
    assert!(text.contains("https://kuvert.example/privacy/2"), "{text}");
}
