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
