//! Deleting an account (its data gone within 90 days) on the real binary: the owner's password
//! is needed, the owner gets a confirmation through Kuvert itself, the keys stop working at
//! once, and the database no longer holds the key that opens the account's sealed data.

use kuvert_testkit::{SinkOptions, SmtpSink};
use reqwest::Method;
use serde_json::json;

use crate::common::{assert_error, server_with_sink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_deletes_the_account_with_the_password() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let created = api.server.cli(&[
        "account",
        "create",
        "--email",
        "ann@acme.example",
        "--password",
        "s3cret-pass-1",
        "--json",
    ]);
    assert!(created.ok(), "{}", created.stderr());
    let account = created.json()["id"].as_str().expect("id").to_owned();
    let key = api.server.cli(&[
        "key",
        "create",
        "--account",
        "ann@acme.example",
        "--scope",
        "full",
        "--json",
    ]);
    assert!(key.ok(), "{}", key.stderr());
    let key = key.json()["secret"].as_str().expect("secret").to_owned();

    let wrong = api
        .request(
            Method::DELETE,
            "/v1/account",
            &key,
            &json!({"password": "guess-1234"}),
        )
        .await;
    assert_error(&wrong, 403, "wrong_password", Some("password"));
    let (status, _) = api
        .request(Method::GET, "/v1/account", &key, &json!(null))
        .await;
    assert_eq!(status, 200, "a wrong password changes nothing");

    let (status, deleted) = api
        .request(
            Method::DELETE,
            "/v1/account",
            &key,
            &json!({"password": "s3cret-pass-1"}),
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["status"], "closed");
    let (status, _) = api
        .request(Method::GET, "/v1/account", &key, &json!(null))
        .await;
    assert_eq!(status, 401, "its keys stop working at once");
    let (status, _) = api.get("/v1/account").await;
    assert_eq!(status, 200, "other accounts go on");

    // The confirmation went through Kuvert itself: signed, from the notices address.
    let confirmation = crate::common::mail_to(&sink, "ann@acme.example").await;
    let text = String::from_utf8_lossy(&confirmation.data);
    assert!(text.starts_with("DKIM-Signature:"), "{text}");
    assert!(
        text.contains("Subject: Your Kuvert account has been deleted"),
        "{text}"
    );
    assert!(text.contains("notices@mail.kuvert.localhost"), "{text}");

    // The database: the account is closed and its wrapped data key is gone, so nothing
    // sealed under it can be opened, whoever holds the master key.
    let db = api.server.data_dir().join("kuvert.db");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             row = c.execute('SELECT status, data_key IS NULL, purge_due_at - closed_at FROM accounts WHERE id = ?', (sys.argv[2],)).fetchone()\n\
             sealed = c.execute('SELECT COUNT(*) FROM users WHERE account_id = ? AND email IS NOT NULL', (sys.argv[2],)).fetchone()[0]\n\
             print(row[0], row[1], row[2], sealed)",
        ])
        .arg(&db)
        .arg(&account)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("closed 1 {} 1", 90 * 86_400_000_i64),
        "closed, key destroyed, rows kept (unreadable) for 90 days"
    );
}
