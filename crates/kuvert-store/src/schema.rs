//! Versioned migrations, run at start. One text per migration serves both databases: the few
//! types that differ are written as placeholders.

use sqlx::{AnyConnection, Executor};

use crate::seal::MasterKey;
use crate::{Backend, StoreError};

/// Columns holding sealed values. Tests read the raw database to prove none holds plaintext;
/// the export of personal data (the right of access) is checked against this list too.
pub const SEALED_COLUMNS: &[(&str, &str)] = &[
    ("accounts", "company"),
    ("accounts", "country"),
    ("accounts", "vat_id"),
    ("accounts", "postal_address"),
    ("users", "email"),
    ("users", "salutation"),
    ("users", "first_name"),
    ("users", "last_name"),
    ("users", "phone"),
    ("dkim_keys", "private"),
    ("messages", "sender"),
    ("messages", "subject"),
    ("messages", "mime"),
    ("messages", "metadata"),
    ("recipients", "address"),
    ("events", "recipient"),
    ("events", "data"),
    ("suppressions", "address"),
    ("captures", "recipients"),
    ("captures", "mime"),
    ("webhooks", "signing_key"),
    ("privacy_requests", "requested_by"),
    ("audit_log", "ip"),
    ("audit_log", "detail"),
    ("contacts", "address"),
    ("contacts", "name"),
    ("contacts", "properties"),
    ("consent_records", "source"),
    ("import_chunks", "data"),
    ("template_versions", "body"),
    ("campaigns", "sender"),
    ("campaigns", "reply_to"),
    ("campaigns", "subject"),
];

/// Sealed columns that are secrets of the platform's or the account's machinery, not
/// personal data: they are not part of an account's export.
pub const SECRET_COLUMNS: &[(&str, &str)] =
    &[("dkim_keys", "private"), ("webhooks", "signing_key")];

/// Sealed columns that hold an upload only while it is worked on (an import's file, gone when
/// the import ends): what it becomes is exported, not the upload.
pub const TRANSIENT_COLUMNS: &[(&str, &str)] = &[("import_chunks", "data")];

/// Columns holding personal data: every one is in the account's export under the same
/// table and column name (a test fills each and finds it there).
pub fn personal_columns() -> impl Iterator<Item = (&'static str, &'static str)> {
    SEALED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !SECRET_COLUMNS.contains(c) && !TRANSIENT_COLUMNS.contains(c))
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (2, "delivery", include_str!("migrations/0002_delivery.sql")),
    (3, "smtp", include_str!("migrations/0003_smtp.sql")),
    (4, "stats", include_str!("migrations/0004_stats.sql")),
    (5, "webhooks", include_str!("migrations/0005_webhooks.sql")),
    (6, "tracking", include_str!("migrations/0006_tracking.sql")),
    (
        7,
        "tracking_settings",
        include_str!("migrations/0007_tracking_settings.sql"),
    ),
    (
        8,
        "retention",
        include_str!("migrations/0008_retention.sql"),
    ),
    (
        9,
        "account_deletion",
        include_str!("migrations/0009_account_deletion.sql"),
    ),
    (
        10,
        "inactivity",
        include_str!("migrations/0010_inactivity.sql"),
    ),
    (
        11,
        "privacy_requests",
        include_str!("migrations/0011_privacy_requests.sql"),
    ),
    (12, "audit", include_str!("migrations/0012_audit.sql")),
    (13, "policies", include_str!("migrations/0013_policies.sql")),
    (
        14,
        "hardening",
        include_str!("migrations/0014_hardening.sql"),
    ),
    (
        15,
        "webhook_events",
        include_str!("migrations/0015_webhook_events.sql"),
    ),
    (
        16,
        "one_content",
        include_str!("migrations/0016_one_content.sql"),
    ),
    (
        17,
        "no_template",
        include_str!("migrations/0017_no_template.sql"),
    ),
    (
        18,
        "webhook_event_rows",
        include_str!("migrations/0018_webhook_event_rows.sql"),
    ),
    (19, "contacts", include_str!("migrations/0019_contacts.sql")),
    (20, "opt_in", include_str!("migrations/0020_opt_in.sql")),
    (
        21,
        "contacts_for_speed",
        include_str!("migrations/0021_contacts_for_speed.sql"),
    ),
    (
        22,
        "templates",
        include_str!("migrations/0022_templates.sql"),
    ),
    (
        23,
        "campaigns",
        include_str!("migrations/0023_campaigns.sql"),
    ),
    (
        24,
        "campaign_results",
        include_str!("migrations/0024_campaign_results.sql"),
    ),
    (
        25,
        "webhook_formats",
        include_str!("migrations/0025_webhook_formats.sql"),
    ),
    (
        26,
        "dkim_keys",
        include_str!("migrations/0026_dkim_keys.sql"),
    ),
    (
        27,
        "suspension",
        include_str!("migrations/0027_suspension.sql"),
    ),
    (28, "quotas", include_str!("migrations/0028_quotas.sql")),
    (
        29,
        "domain_health",
        include_str!("migrations/0029_domain_health.sql"),
    ),
    (30, "mta_sts", include_str!("migrations/0030_mta_sts.sql")),
    (
        31,
        "domain_advice",
        include_str!("migrations/0031_domain_advice.sql"),
    ),
];

/// A message's sealed template, and its account's wrapped key.
#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: String,
    account_id: String,
    template: Vec<u8>,
    data_key: Option<Vec<u8>>,
}

/// Reads, before migration 17 drops the templates, whether each message that still has one
/// wanted an unsubscribe link: only its sealed template says so, and a link it did not ask
/// for would let a recipient of, say, a password reset suppress the account's mail to them.
async fn unsubscribe_flags(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    master: &MasterKey,
) -> Result<(), StoreError> {
    let mut after = String::new();
    loop {
        let rows: Vec<TemplateRow> = sqlx::query_as(
            "SELECT m.id, m.account_id, m.template, a.data_key FROM messages m JOIN accounts a ON a.id = m.account_id \
             WHERE m.template IS NOT NULL AND m.id > $1 ORDER BY m.id LIMIT 500",
        )
        .bind(&after)
        .fetch_all(&mut **tx)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.id.clone();
        for TemplateRow {
            id,
            account_id: account,
            template,
            data_key,
        } in rows
        {
            // An account whose key is destroyed has nothing left to send.
            let Some(wrapped) = data_key else { continue };
            let wanted = master
                .unwrap(&account, &wrapped)
                .and_then(|key| key.open(&template))
                .ok()
                .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
                .and_then(|t| t["unsubscribe"].as_bool())
                .unwrap_or(false);
            if wanted {
                sqlx::query("UPDATE messages SET track_unsubscribe = 1 WHERE id = $1")
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
}

fn render(sql: &str, backend: Backend) -> String {
    let (blob, serial, without_rowid) = match backend {
        Backend::Sqlite => ("BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT", "WITHOUT ROWID"),
        Backend::Postgres => ("BYTEA", "BIGSERIAL PRIMARY KEY", ""),
    };
    sql.replace("{blob}", blob)
        .replace("{serial}", serial)
        .replace("{without_rowid}", without_rowid)
}

pub(crate) async fn migrate(
    conn: &mut AnyConnection,
    backend: Backend,
    now: i64,
    master: &MasterKey,
) -> Result<(), StoreError> {
    // Several nodes may start at once on one PostgreSQL: one migrates, the others wait.
    if backend == Backend::Postgres {
        conn.execute("SELECT pg_advisory_lock(7411001)").await?;
    }
    let result = apply(conn, backend, now, master, i64::MAX).await;
    if backend == Backend::Postgres {
        conn.execute("SELECT pg_advisory_unlock(7411001)").await?;
    }
    result
}

/// Applies the migrations after the database's version, up to `last`.
async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    now: i64,
    master: &MasterKey,
    last: i64,
) -> Result<(), StoreError> {
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&mut *conn)
        .await?;
    let current = current.unwrap_or(0);
    if let Some(&(newest, _, _)) = MIGRATIONS.last()
        && current > newest
    {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {current}, newer than this build knows ({newest}); run a newer kuvert"
        )));
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current && m.0 <= last) {
        tracing::info!(version, name, "applying migration");
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        if version == 17 {
            unsubscribe_flags(&mut tx, master).await?;
        }
        for statement in render(sql, backend)
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            tx.execute(statement)
                .await
                .map_err(|e| StoreError::Migration(format!("{name}: {e}")))?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor};

    use super::*;

    /// An SQLite database in memory with the migrations up to `version`, to which a test adds
    /// the rows of that time before it applies the rest.
    async fn database_at(version: i64) -> (AnyConnection, MasterKey) {
        sqlx::any::install_default_drivers();
        let master = MasterKey::new(&[9; 32]);
        let mut conn = AnyConnection::connect("sqlite::memory:")
            .await
            .expect("sqlite");
        conn.execute("PRAGMA foreign_keys = OFF")
            .await
            .expect("pragma");
        apply(&mut conn, Backend::Sqlite, 0, &master, version)
            .await
            .expect("the migrations up to the version");
        (conn, master)
    }

    /// A message kept as a template before migrations 16 and 17 keeps what its copies
    /// carried, read from its sealed template; one without (sent whole over SMTP) was never
    /// tracked, whatever flags it kept.
    #[tokio::test]
    async fn tracked_messages_keep_their_tracking_when_the_template_goes() {
        let (mut conn, master) = database_at(15).await;
        let (key, wrapped) = master.new_account_key("acc");
        sqlx::query(
            "INSERT INTO accounts (id, plan, region, status, data_key, created_at, updated_at, last_activity_at) \
             VALUES ('acc', 'free', 'eu', 'active', $1, 0, 0, 0)",
        )
        .bind(wrapped)
        .execute(&mut conn)
        .await
        .expect("an account");
        let template = |opens: bool, unsubscribe: bool| {
            let json =
                serde_json::json!({"opens": opens, "clicks": false, "unsubscribe": unsubscribe});
            Some(key.seal(json.to_string().as_bytes()))
        };
        for (id, opens, template) in [
            ("smtp", 1, None),
            ("link", 0, template(false, true)),
            ("pixel", 1, template(true, false)),
            ("pixel-and-link", 1, template(true, true)),
        ] {
            sqlx::query(
                "INSERT INTO messages (id, account_id, domain_id, sender, subject, size, tags, require_tls, track_opens, track_clicks, created_at, template) \
                 VALUES ($1, 'acc', 'd', x'00', x'00', 1, '[]', 0, $2, 0, 0, $3)",
            )
            .bind(id)
            .bind(opens)
            .bind(template)
            .execute(&mut conn)
            .await
            .expect("an old message");
        }
        apply(&mut conn, Backend::Sqlite, 0, &master, i64::MAX)
            .await
            .expect("the rest");
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT id, track_opens, track_unsubscribe FROM messages ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .expect("read");
        assert_eq!(
            rows,
            [
                ("link".to_owned(), 0, 1),
                ("pixel".to_owned(), 1, 0),
                ("pixel-and-link".to_owned(), 1, 1),
                ("smtp".to_owned(), 0, 0)
            ]
        );
        assert!(
            sqlx::query("SELECT template FROM messages")
                .fetch_all(&mut conn)
                .await
                .is_err(),
            "the template column is gone"
        );
    }

    /// A domain's one key, kept in its row before migration 26, becomes its active RSA key
    /// under the same selector, still sealed.
    #[tokio::test]
    async fn each_domain_s_key_moves_to_its_keys() {
        let (mut conn, master) = database_at(25).await;
        sqlx::query(
            "INSERT INTO domains (id, account_id, name, selector, dkim_private, dkim_public, sandbox, created_at) \
             VALUES ('d1', 'acc', 'a.example', 'sel', x'0102', 'MIIB', 0, 7)",
        )
        .execute(&mut conn)
        .await
        .expect("an old domain");
        apply(&mut conn, Backend::Sqlite, 0, &master, i64::MAX)
            .await
            .expect("the rest");
        let keys: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT domain_id, selector, account_id, algorithm, state FROM dkim_keys",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read");
        assert_eq!(
            keys,
            [(
                "d1".to_owned(),
                "sel".to_owned(),
                "acc".to_owned(),
                "rsa".to_owned(),
                "active".to_owned()
            )]
        );
        let halves: (Vec<u8>, String, Option<i64>) =
            sqlx::query_as("SELECT private, public, active_at FROM dkim_keys")
                .fetch_one(&mut conn)
                .await
                .expect("read");
        assert_eq!(halves, (vec![1, 2], "MIIB".to_owned(), Some(7)));
        assert!(
            sqlx::query("SELECT dkim_private FROM domains")
                .fetch_all(&mut conn)
                .await
                .is_err(),
            "the key is no longer in the domain's row"
        );
    }

    /// Migrations are split at ';': a comment holding one would cut a statement in two.
    #[test]
    fn comments_hold_no_semicolon() {
        for (version, name, sql) in super::MIGRATIONS {
            for line in sql.lines().filter(|l| l.trim_start().starts_with("--")) {
                assert!(!line.contains(';'), "migration {version} ({name}): {line}");
            }
        }
    }
}
