//! The export holds every personal column of the schema: each is filled with a marker of
//! its own, and the export must show it under the same table and column name. A personal
//! column added to the schema without being exported (or filled here) fails this test.

use std::sync::Arc;

use kuvert_core::account::{CompanyProfile, Plan, UserProfile};
use kuvert_core::domain::DomainSettings;
use kuvert_core::event::{Interaction, SuppressionReason};
use kuvert_core::submission::{Limits, Submission, TrackingOptions};
use kuvert_core::tracking::TrackingMode;
use kuvert_core::{Mailbox, ManualClock, Timestamp};
use kuvert_store::schema::personal_columns;
use kuvert_store::{Engagement, Store, StoreOptions};
use kuvert_submit::Acceptor;
use serde_json::{Value, json};

fn marker(table: &str, column: &str) -> String {
    format!("mk-{table}-{column}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_every_personal_column() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(StoreOptions {
        url: StoreOptions::sqlite_url(dir.path()),
        master_key: [4; 32],
        clock: Arc::new(ManualClock::new(Timestamp(1_795_000_000_000))),
    })
    .await
    .expect("store");
    let m = marker;
    let (account, _) = kuvert_admin::create_account(
        &store,
        kuvert_admin::AccountRequest {
            email: format!("{}@owners.example", m("users", "email")),
            password: "s3cret-pass".into(),
            plan: Plan::Free,
            region: Default::default(),
            company: CompanyProfile {
                company: Some(m("accounts", "company")),
                country: Some(m("accounts", "country")),
                vat_id: Some(m("accounts", "vat_id")),
                postal_address: Some(m("accounts", "postal_address")),
            },
            owner: UserProfile {
                salutation: Some(m("users", "salutation")),
                first_name: Some(m("users", "first_name")),
                last_name: Some(m("users", "last_name")),
                phone: Some(m("users", "phone")),
            },
        },
    )
    .await
    .expect("account");
    kuvert_admin::add_domain(
        &store,
        &account.id,
        "exp.example",
        &DomainSettings::default(),
        true,
    )
    .await
    .expect("domain");
    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Free, Plan::Free.default_limits())].into(),
    );

    // A tracked message, to two recipients.
    let mut sub = Submission::plain(
        Mailbox::parse(&format!("{}@exp.example", m("messages", "sender"))).expect("from"),
        vec![
            Mailbox::parse(&format!("{}@example.com", m("recipients", "address"))).expect("to"),
            Mailbox::parse(&format!("{}@example.com", m("events", "recipient"))).expect("to"),
        ],
        &m("messages", "subject"),
        &m("messages", "mime"),
    );
    sub.parts_mut().expect("parts").html = Some("<p>Tracked</p>".into());
    sub.metadata = json!({"order": m("messages", "metadata")})
        .as_object()
        .cloned()
        .expect("object");
    sub.tracking = TrackingOptions {
        opens: Some(true),
        clicks: None,
        unsubscribe: false,
    };
    let accepted = acceptor.accept(&account.id, sub).await.expect("accepted");
    let clicked = store
        .message_recipient(
            &accepted.id,
            &format!("{}@example.com", m("events", "recipient")),
        )
        .await
        .expect("query")
        .expect("recipient");
    let seen = Interaction {
        url: Some(format!("https://shop.example/{}", m("events", "data"))),
        ..Interaction::default()
    };
    store
        .record_engagement(&clicked, &Engagement::Click, seen, TrackingMode::Full)
        .await
        .expect("click");
    store
        .add_suppression(
            &account.id,
            &format!("{}@example.com", m("suppressions", "address")),
            SuppressionReason::Manual,
        )
        .await
        .expect("suppression");
    store
        .capture(
            &account.id,
            &accepted.id,
            "bounces@exp.example",
            &[format!("{}@example.com", m("captures", "recipients"))],
            format!("Subject: x\r\n\r\n{}\r\n", m("captures", "mime")).as_bytes(),
        )
        .await
        .expect("capture");

    store
        .define_property(
            &account.id,
            "note",
            kuvert_core::contact::PropertyKind::String,
        )
        .await
        .expect("property");
    let list = store
        .create_list(&account.id, kuvert_store::ListSettings::named("news"))
        .await
        .expect("list");
    store
        .create_contact(
            &account.id,
            kuvert_store::NewContact {
                address: kuvert_core::EmailAddress::parse(&format!(
                    "{}@example.com",
                    m("contacts", "address")
                ))
                .expect("address"),
                name: Some(m("contacts", "name")),
                properties: [(
                    "note".to_owned(),
                    kuvert_core::contact::PropertyValue::String(m("contacts", "properties")),
                )]
                .into(),
                lists: vec![list.id.clone()],
                consent: kuvert_store::ConsentInput {
                    method: kuvert_core::contact::ConsentMethod::Form,
                    text: None,
                    source: Some(m("consent_records", "source")),
                },
            },
        )
        .await
        .expect("contact");

    store
        .record_privacy_request(
            &account.id,
            kuvert_core::account::PrivacyRight::Objection,
            &m("privacy_requests", "requested_by"),
            false,
        )
        .await
        .expect("request");

    store
        .audit(
            &account.id,
            kuvert_core::account::ActorKind::Key,
            "key_x",
            "GET /v1/events",
            Some(&m("audit_log", "detail")),
            Some(&m("audit_log", "ip")),
        )
        .await
        .expect("audit");

    kuvert_admin::templates::create_template(
        &store,
        &account.id,
        "welcome",
        None,
        kuvert_admin::templates::VersionRequest {
            tag: None,
            comment: None,
            active: true,
            source: kuvert_template::Source {
                engine: kuvert_template::Engine::Html,
                content: format!("<p>{}</p>", m("template_versions", "body")),
                text: None,
                subject: None,
                defaults: Default::default(),
            },
        },
    )
    .await
    .expect("template");

    store
        .create_campaign(
            &account.id,
            kuvert_store::CampaignSettings {
                name: "spring".into(),
                from: format!("{}@exp.example", m("campaigns", "sender")),
                reply_to: Some(format!("{}@exp.example", m("campaigns", "reply_to"))),
                subject: Some(m("campaigns", "subject")),
                template: "welcome".into(),
                version: None,
                audience: kuvert_core::campaign::Audience {
                    lists: vec![list.id.to_string()],
                    segments: Vec::new(),
                },
                send_at: None,
                per_hour: None,
                max_errors: 10,
                ab: None,
            },
        )
        .await
        .expect("campaign");

    let export = kuvert_admin::export::export_account(&store, &account.id)
        .await
        .expect("export");
    let mut checked = 0;
    for (table, column) in personal_columns() {
        let rows: Vec<&Value> = match &export[table] {
            Value::Array(rows) => rows.iter().collect(),
            Value::Null => panic!("the export has no section {table}"),
            one => vec![one],
        };
        let want = marker(table, column);
        assert!(
            rows.iter().any(|r| r[column].to_string().contains(&want)),
            "the export lacks {table}.{column} (or this test does not fill it): {}",
            export[table]
        );
        checked += 1;
    }
    assert!(checked >= 22, "{checked} personal columns checked");
    store.close().await;
}
