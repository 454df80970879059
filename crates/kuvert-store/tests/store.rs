//! One suite, two backends: every test runs on SQLite and on PostgreSQL
//! (`KUVERT_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`; each test gets
//! a database of its own).

use std::sync::Arc;

use kuvert_core::account::{CompanyProfile, Plan, Region, Role, UserProfile};
use kuvert_core::apikey::{NewApiKey, Scope};
use kuvert_core::domain::{
    DkimAlgorithm, DkimChange, DkimKeyPair, DkimKeyState, RecordProblem, RecordPurpose,
};
use kuvert_core::event::{
    Bounce, BounceClass, Complaint, Deferral, Delivery, EventType, Failure, RecipientKind,
    RecipientStatus, SuppressionReason,
};
use kuvert_core::id::{AccountId, MessageId, RecipientId};
use kuvert_core::quota::QuotaPeriod;
use kuvert_core::{Clock, ManualClock, Timestamp};
use kuvert_store::{
    Account, EventFilter, NewAccount, NewDomain, NewMessage, NewRecipient, NewUser, Outcome,
    OutcomeRecord, Report, StatsQuery, Store, StoreError, StoreOptions,
};

const MASTER: [u8; 32] = [42; 32];
const START: Timestamp = Timestamp(1_795_000_000_000); // 2026-11-18

struct Fixture {
    store: Store,
    clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
    pg_db: Option<String>,
    url: String,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(START);
    let url = StoreOptions::sqlite_url(dir.path());
    let store = Store::open(StoreOptions {
        url: url.clone(),
        master_key: MASTER,
        clock: Arc::new(clock.clone()),
    })
    .await
    .expect("open sqlite");
    Fixture {
        store,
        clock,
        _dir: Some(dir),
        pg_db: None,
        url,
    }
}

fn pg_admin_url() -> String {
    std::env::var("KUVERT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn pg_admin() -> sqlx::PgPool {
    sqlx::PgPool::connect(&pg_admin_url())
        .await
        .expect("PostgreSQL for the store tests (set KUVERT_TEST_POSTGRES)")
}

async fn postgres() -> Fixture {
    let db = format!(
        "kuvert_test_{}",
        MessageId::generate(START).as_str()[14..].to_owned()
    );
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&pg_admin().await)
        .await
        .expect("create test database");
    let base = pg_admin_url();
    let url = format!(
        "{}/{db}",
        &base[..base.rfind('/').expect("database in URL")]
    );
    let clock = ManualClock::new(START);
    let store = Store::open(StoreOptions {
        url: url.clone(),
        master_key: MASTER,
        clock: Arc::new(clock.clone()),
    })
    .await
    .expect("open postgres");
    Fixture {
        store,
        clock,
        _dir: None,
        pg_db: Some(db),
        url,
    }
}

impl Fixture {
    /// Overwrites one sealed column of one row with bytes that open under no key, as a
    /// damaged row would read: `UPDATE table SET column = garbage WHERE id = id`.
    async fn damage(&self, table: &str, column: &str, id: &str) {
        let sql = format!("UPDATE {table} SET {column} = $1 WHERE id = $2");
        let garbage = vec![7u8; 64];
        let done = if self.pg_db.is_some() {
            let pool = sqlx::PgPool::connect(&self.url).await.expect("connect");
            let r = sqlx::query(&sql)
                .bind(garbage)
                .bind(id)
                .execute(&pool)
                .await;
            pool.close().await;
            r.expect("damage").rows_affected()
        } else {
            let pool = sqlx::SqlitePool::connect(&self.url).await.expect("connect");
            let r = sqlx::query(&sql)
                .bind(garbage)
                .bind(id)
                .execute(&pool)
                .await;
            pool.close().await;
            r.expect("damage").rows_affected()
        };
        assert_eq!(done, 1, "{table} {id}");
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some(db) = self.pg_db {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&pg_admin().await)
                .await
                .expect("drop test database");
        }
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let f = super::sqlite().await;
                super::$name(&f).await;
                f.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let f = super::postgres().await;
                super::$name(&f).await;
                f.finish().await;
            })*
        }
    };
}

both_backends!(
    accounts_and_users,
    api_keys,
    domains,
    message_commit_and_read,
    group_commit_under_concurrency,
    event_filters_and_pages,
    suppressions,
    suppression_tables_by_reason,
    events_of_one_domain_with_their_messages,
    reopening_keeps_everything,
    leases_are_exclusive_and_expire,
    an_unreadable_recipient_fails_alone_and_its_batch_goes_on,
    outcomes_update_state_events_and_suppressions,
    captures_are_kept_sealed,
    stats_count_the_events_and_outlive_them,
    retention_follows_the_plan_and_keeps_statistics,
    a_closed_account_is_unreadable_at_once_and_gone_after_its_period,
    restriction_holds_mail_and_requests_fall_due,
    support_grants_expire_and_the_audit_log_follows_retention,
    contacts_lists_and_consent,
    import_batches_skip_what_may_not_be_subscribed,
    a_large_import_batch_with_every_kind_of_value,
    segments_filter_in_sql,
    erasure_leaves_only_a_keyed_hash,
    double_opt_in_waits_for_the_link,
    templates_keep_one_active_version,
    campaigns_are_claimed_once_and_keep_their_progress,
    mta_sts_policies_and_tls_sessions,
);

async fn account(store: &Store, email: &str) -> Account {
    account_on(store, email, Plan::Free).await
}

async fn account_on(store: &Store, email: &str, plan: Plan) -> Account {
    store
        .create_account(NewAccount {
            plan,
            region: Region::Eu,
            profile: CompanyProfile {
                company: Some("Acme GmbH".into()),
                vat_id: Some("DE123456789".into()),
                ..Default::default()
            },
            owner: NewUser {
                email: email.into(),
                password_hash: "$argon2id$stub".into(),
                role: Role::Owner,
                profile: UserProfile {
                    first_name: Some("Ann".into()),
                    ..Default::default()
                },
            },
        })
        .await
        .expect("create account")
        .0
}

async fn accounts_and_users(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "Owner@Acme.example").await;
    assert_eq!(s.account(&a.id).await.expect("by id"), a);
    assert_eq!(
        s.find_account("owner@acme.example")
            .await
            .expect("by e-mail")
            .id,
        a.id
    );
    assert_eq!(
        s.find_account(a.id.as_str())
            .await
            .expect("by id text")
            .profile
            .vat_id
            .as_deref(),
        Some("DE123456789")
    );
    assert!(matches!(
        s.find_account("nobody@acme.example").await,
        Err(StoreError::NotFound(_))
    ));
    let dup = s
        .create_account(NewAccount {
            plan: Plan::Premium,
            region: Region::Us,
            profile: CompanyProfile::default(),
            owner: NewUser {
                email: "owner@acme.example".into(),
                password_hash: "x".into(),
                role: Role::Owner,
                profile: UserProfile::default(),
            },
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "same e-mail, any case, is taken"
    );
    let users = s.users(&a.id).await.expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].email, "Owner@Acme.example");
    assert_eq!(users[0].profile.first_name.as_deref(), Some("Ann"));
    let (uid, aid, hash) = s
        .password_hash("OWNER@acme.example")
        .await
        .expect("query")
        .expect("found");
    assert_eq!(
        (uid, aid, hash.as_str()),
        (users[0].id.clone(), a.id.clone(), "$argon2id$stub")
    );
}

async fn api_keys(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "keys@acme.example").await;
    let secret = NewApiKey::generate();
    let key = s
        .create_key(&a.id, "ci", Scope::Send, &secret)
        .await
        .expect("create key");
    let auth = s
        .authenticate(&secret.hash)
        .await
        .expect("query")
        .expect("valid key");
    assert_eq!(
        (auth.account_id.clone(), auth.scope),
        (a.id.clone(), Scope::Send)
    );
    assert_eq!(
        s.list_keys(&a.id).await.expect("list")[0].last_used_at,
        Some(START)
    );
    assert!(
        s.authenticate(&NewApiKey::generate().hash)
            .await
            .expect("query")
            .is_none()
    );
    f.clock.advance_millis(1_000);
    let revoked = s.revoke_key(&a.id, key.id.as_str()).await.expect("revoke");
    assert_eq!(revoked.revoked_at, Some(START.plus_millis(1_000)));
    assert!(
        s.authenticate(&secret.hash).await.expect("query").is_none(),
        "a revoked key no longer works"
    );
    let other = account(s, "other@acme.example").await;
    assert!(matches!(
        s.revoke_key(&other.id, key.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
}

fn new_domain(name: &str, sandbox: bool) -> NewDomain {
    NewDomain {
        name: name.into(),
        selector: "kuvert".into(),
        dkim: DkimKeyPair {
            algorithm: DkimAlgorithm::Rsa,
            private_pkcs8_der: b"private key bytes".to_vec(),
            public_b64: "MIIB".into(),
        },
        sandbox,
    }
}

async fn domains(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "dom@acme.example").await;
    let b = account(s, "dom@other.example").await;
    let d = s
        .add_domain(&a.id, new_domain("Acme.Example", false))
        .await
        .expect("add");
    assert_eq!(d.name, "acme.example");
    assert!(!d.can_send());
    assert!(matches!(
        s.add_domain(&b.id, new_domain("acme.example", false)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.account_domain(&b.id, "acme.example").await,
        Err(StoreError::NotFound(_))
    ));
    let signing = s.dkim_signing_keys(&d).await.expect("keys");
    assert_eq!(signing.len(), 1);
    assert_eq!(
        (
            signing[0].selector.as_str(),
            signing[0].pkcs8_der.as_slice()
        ),
        ("kuvert", &b"private key bytes"[..])
    );
    // A pending key is listed but never handed to the signer; once activated it signs and
    // the key it replaced does not.
    let next = DkimKeyPair {
        algorithm: DkimAlgorithm::Rsa,
        private_pkcs8_der: b"next key".to_vec(),
        public_b64: "MIIC".into(),
    };
    s.add_dkim_key(&d, "kuvert-2", &next, DkimKeyState::Pending)
        .await
        .expect("add key");
    assert!(matches!(
        s.add_dkim_key(&d, "kuvert-2", &next, DkimKeyState::Pending)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.dkim_keys(&d.id).await.expect("keys").len(), 2);
    assert_eq!(s.dkim_signing_keys(&d).await.expect("keys").len(), 1);
    assert_eq!(
        s.domains_with_dkim_changes().await.expect("changes")[0].id,
        d.id
    );
    s.apply_dkim_changes(
        &d.id,
        &[
            DkimChange::Activate {
                selector: "kuvert-2".into(),
            },
            DkimChange::Retire {
                selector: "kuvert".into(),
                at: Timestamp(START.0 + 10),
            },
        ],
    )
    .await
    .expect("apply");
    let signing = s.dkim_signing_keys(&d).await.expect("keys");
    assert_eq!(signing.len(), 1);
    assert_eq!(signing[0].pkcs8_der, b"next key");
    let keys = s.dkim_keys(&d.id).await.expect("keys");
    assert_eq!(
        keys.iter()
            .map(|k| (k.selector.as_str(), k.state))
            .collect::<Vec<_>>(),
        [
            ("kuvert", DkimKeyState::Retiring),
            ("kuvert-2", DkimKeyState::Active)
        ]
    );
    assert_eq!(keys[0].retire_at, Some(Timestamp(START.0 + 10)));
    s.apply_dkim_changes(
        &d.id,
        &[DkimChange::Remove {
            selector: "kuvert".into(),
        }],
    )
    .await
    .expect("apply");
    assert_eq!(s.dkim_keys(&d.id).await.expect("keys").len(), 1);
    assert!(
        s.domains_with_dkim_changes()
            .await
            .expect("changes")
            .is_empty()
    );
    let missing = |purpose| RecordProblem {
        purpose,
        name: "x.acme.example".into(),
        expected: "v=spf1 a:mail.kuvert.localhost ~all".into(),
        found: vec![],
    };
    // Not yet verified: any missing record keeps it so.
    let checked = s
        .record_domain_check("acme.example", &[missing(RecordPurpose::Spf)], &[], false)
        .await
        .expect("check");
    assert!(!checked.can_send());
    assert_eq!(checked.problems, [missing(RecordPurpose::Spf)]);
    let checked = s
        .record_domain_check("acme.example", &[], &[], false)
        .await
        .expect("check");
    assert_eq!(checked.verified_at, Some(START));
    assert!(checked.problems.is_empty());
    f.clock.advance_millis(5);
    assert_eq!(
        s.record_domain_check("acme.example", &[], &[], false)
            .await
            .expect("check")
            .verified_at,
        Some(START),
        "first pass kept"
    );
    // A look-up that failed withdraws nothing, and verifies nothing.
    let checked = s
        .record_domain_check("acme.example", &[], &[], true)
        .await
        .expect("check");
    assert_eq!(
        checked.verified_at,
        Some(START),
        "a timeout is not a missing record"
    );
    // Verified: a missing SPF record is shown and the domain sends; a missing DKIM record
    // withdraws the verification.
    let checked = s
        .record_domain_check("acme.example", &[missing(RecordPurpose::Spf)], &[], false)
        .await
        .expect("check");
    assert!(checked.can_send() && checked.problems.len() == 1);
    assert!(
        !s.record_domain_check("acme.example", &[missing(RecordPurpose::Dkim)], &[], false)
            .await
            .expect("check")
            .can_send(),
        "a missing DKIM record withdraws"
    );
    assert!(
        s.add_domain(&a.id, new_domain("sandbox.acme.example", true))
            .await
            .expect("add")
            .can_send()
    );
    assert_eq!(s.list_domains(&a.id).await.expect("list").len(), 2);
    s.delete_domain(&a.id, "acme.example")
        .await
        .expect("delete");
    assert!(
        s.dkim_keys(&d.id).await.expect("keys").is_empty(),
        "a domain's keys go with it"
    );
    assert!(matches!(
        s.delete_domain(&a.id, "acme.example").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn message(
    s: &Store,
    account: &AccountId,
    tags: &[&str],
    rcpts: &[(&str, RecipientStatus)],
    now: Timestamp,
) -> MessageId {
    message_from(s, account, "send.example", tags, rcpts, now).await
}

/// A message from `domain` (a name belongs to one account), made when first used.
async fn message_from(
    s: &Store,
    account: &AccountId,
    domain: &str,
    tags: &[&str],
    rcpts: &[(&str, RecipientStatus)],
    now: Timestamp,
) -> MessageId {
    let domain = match s.account_domain(account, domain).await {
        Ok(d) => d,
        Err(_) => s
            .add_domain(account, new_domain(domain, true))
            .await
            .expect("domain"),
    };
    let id = MessageId::generate(now);
    s.commit_message(NewMessage {
        id: id.clone(),
        account_id: account.clone(),
        domain_id: domain.id,
        sender: "news@send.example".into(),
        subject: "Sale".into(),
        mime: b"Subject: Sale\r\n\r\nbody".to_vec(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        metadata: serde_json::json!({"order": 7})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        require_tls: false,
        tracking: kuvert_core::tracking::Tracking::default(),
        send_at: None,
        created_at: now,
        quotas: vec![],
        campaign: None,
        recipients: rcpts
            .iter()
            .map(|(addr, status)| NewRecipient {
                id: RecipientId::generate(now),
                address: addr.to_string(),
                kind: RecipientKind::To,
                status: *status,
                drop_reason: (*status == RecipientStatus::Dropped)
                    .then(|| "suppressed: bounce".into()),
            })
            .collect(),
    })
    .await
    .expect("commit");
    id
}

async fn message_commit_and_read(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "msg@acme.example").await;
    let rcpts = [
        ("ann@example.com", RecipientStatus::Queued),
        ("bob@example.com", RecipientStatus::Queued),
        ("gone@example.com", RecipientStatus::Dropped),
    ];
    let id = message(s, &a.id, &["news"], &rcpts, START).await;
    let m = s.message(&a.id, id.as_str()).await.expect("read");
    assert_eq!(
        (m.from.as_str(), m.subject.as_str(), m.tags.clone()),
        ("news@send.example", "Sale", vec!["news".to_string()])
    );
    assert_eq!(m.metadata["order"], 7);
    assert_eq!(m.mime.as_deref(), Some(&b"Subject: Sale\r\n\r\nbody"[..]));
    let mut statuses: Vec<_> = m
        .recipients
        .iter()
        .map(|r| (r.email.as_str(), r.status))
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            ("ann@example.com", RecipientStatus::Queued),
            ("bob@example.com", RecipientStatus::Queued),
            ("gone@example.com", RecipientStatus::Dropped)
        ]
    );
    let events = s
        .list_events(
            &a.id,
            &EventFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("events");
    assert_eq!(
        events
            .items
            .iter()
            .filter(|e| e.event_type == EventType::Accepted)
            .count(),
        2
    );
    let dropped: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.event_type == EventType::Dropped)
        .collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].data()["reason"], "suppressed: bounce");
    assert_eq!(dropped[0].recipient.as_deref(), Some("gone@example.com"));
    assert_eq!(
        s.usage(&a.id, QuotaPeriod::Month, START)
            .await
            .expect("usage"),
        2,
        "dropped recipients do not count"
    );
    assert_eq!(s.queue_depth().await.expect("depth"), 2);
    let other = account(s, "other@acme.example").await;
    assert!(
        matches!(
            s.message(&other.id, id.as_str()).await,
            Err(StoreError::NotFound(_))
        ),
        "accounts see only their own"
    );
}

async fn group_commit_under_concurrency(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "busy@acme.example").await;
    message(
        s,
        &a.id,
        &[],
        &[("warm@example.com", RecipientStatus::Queued)],
        START,
    )
    .await;
    let before = s.commit_stats();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (s, id) = (s.clone(), a.id.clone());
            tokio::spawn(async move {
                message(
                    &s,
                    &id,
                    &[],
                    &[(&format!("r{i}@example.com"), RecipientStatus::Queued)],
                    START,
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let after = s.commit_stats();
    assert_eq!(after.messages - before.messages, 200);
    assert!(
        after.transactions - before.transactions < 200,
        "concurrent messages share transactions: {before:?} -> {after:?}"
    );
    assert_eq!(
        s.usage(&a.id, QuotaPeriod::Month, START)
            .await
            .expect("usage"),
        201
    );
}

async fn event_filters_and_pages(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "ev@acme.example").await;
    let m1 = message(
        s,
        &a.id,
        &["spring_sale"],
        &[("ann@example.com", RecipientStatus::Queued)],
        START,
    )
    .await;
    f.clock.advance_millis(10_000);
    message(
        s,
        &a.id,
        &["springXsale"],
        &[
            ("bob@example.com", RecipientStatus::Queued),
            ("eve@example.com", RecipientStatus::Dropped),
        ],
        f.clock.now(),
    )
    .await;
    f.clock.advance_millis(10_000);
    message(
        s,
        &a.id,
        &[],
        &[("Ann@Example.com", RecipientStatus::Queued)],
        f.clock.now(),
    )
    .await;
    let id = &a.id;
    let list = |filter: EventFilter| async move {
        s.list_events(
            id,
            &EventFilter {
                limit: 100,
                ..filter
            },
        )
        .await
        .expect("events")
        .items
    };
    assert_eq!(list(EventFilter::default()).await.len(), 4);
    assert_eq!(
        list(EventFilter {
            types: vec![EventType::Dropped],
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        list(EventFilter {
            recipient: Some("ann@example.com".into()),
            ..Default::default()
        })
        .await
        .len(),
        2,
        "case-insensitive"
    );
    assert_eq!(
        list(EventFilter {
            message_id: Some(m1.to_string()),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    let tagged = list(EventFilter {
        tag: Some("spring_sale".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(tagged.len(), 1, "'_' in a tag is literal, not a wildcard");
    assert_eq!(tagged[0].message_id.as_ref(), Some(&m1));
    let window = list(EventFilter {
        from: Some(START.plus_millis(5_000)),
        to: Some(START.plus_millis(15_000)),
        ..Default::default()
    })
    .await;
    assert_eq!(window.len(), 2);
    let all = list(EventFilter::default()).await;
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .list_events(
                &a.id,
                &EventFilter {
                    limit: 3,
                    before,
                    ..Default::default()
                },
            )
            .await
            .expect("page");
        seen.extend(page.items.iter().map(|e| e.seq));
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, all.iter().map(|e| e.seq).collect::<Vec<_>>());
}

async fn suppressions(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "sup@acme.example").await;
    s.add_suppression(&a.id, "hard@example.com", SuppressionReason::Bounce)
        .await
        .expect("add");
    f.clock.advance_millis(1);
    s.add_suppression(&a.id, "left@example.com", SuppressionReason::Unsubscribe)
        .await
        .expect("add");
    f.clock.advance_millis(1);
    s.add_suppression(&a.id, "mad@example.com", SuppressionReason::Complaint)
        .await
        .expect("add");
    let found = s
        .suppressed(
            &a.id,
            &["HARD@example.com", "fine@example.com", "mad@example.com"],
        )
        .await
        .expect("check");
    assert_eq!(found.len(), 2);
    assert_eq!(found["HARD@example.com"], SuppressionReason::Bounce);
    let other = account(s, "sup@other.example").await;
    assert!(
        s.suppressed(&other.id, &["hard@example.com"])
            .await
            .expect("check")
            .is_empty(),
        "lists are per account"
    );
    let page1 = s
        .list_suppressions(&a.id, None, None, 2)
        .await
        .expect("list");
    assert_eq!(
        page1
            .items
            .iter()
            .map(|x| x.address.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["mad@example.com", "left@example.com"]
    );
    let page2 = s
        .list_suppressions(&a.id, None, page1.next.as_deref(), 2)
        .await
        .expect("list");
    assert_eq!(page2.items.len(), 1);
    assert!(page2.next.is_none());
    let bounces = s
        .list_suppressions(&a.id, Some(SuppressionReason::Bounce), None, 10)
        .await
        .expect("list");
    assert_eq!(bounces.items.len(), 1);
    s.remove_suppression(&a.id, "hard@EXAMPLE.com")
        .await
        .expect("remove");
    assert!(matches!(
        s.remove_suppression(&a.id, "hard@example.com").await,
        Err(StoreError::NotFound(_))
    ));
}

/// What Mailgun's tables need of the list: one entry, a removal and a clearing per reason.
async fn suppression_tables_by_reason(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "tables@acme.example").await;
    s.add_suppression(&a.id, "bounced@example.com", SuppressionReason::Bounce)
        .await
        .expect("add");
    s.add_suppression(&a.id, "left@example.com", SuppressionReason::Unsubscribe)
        .await
        .expect("add");
    let one = s
        .suppression(&a.id, "Bounced@EXAMPLE.com")
        .await
        .expect("found by any case of its domain");
    assert_eq!(one.reason, SuppressionReason::Bounce);
    assert_eq!(one.address.as_deref(), Some("bounced@example.com"));
    let other = account(s, "tables@other.example").await;
    assert!(matches!(
        s.suppression(&other.id, "bounced@example.com").await,
        Err(StoreError::NotFound(_))
    ));
    // Not removed through another reason's table.
    assert!(matches!(
        s.remove_suppression_of(
            &a.id,
            "bounced@example.com",
            Some(SuppressionReason::Unsubscribe)
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    s.remove_suppression_of(
        &a.id,
        "bounced@example.com",
        Some(SuppressionReason::Bounce),
    )
    .await
    .expect("removed from its own table");
    s.add_suppression(&a.id, "b2@example.com", SuppressionReason::Bounce)
        .await
        .expect("add");
    s.add_suppression(&other.id, "b3@example.com", SuppressionReason::Bounce)
        .await
        .expect("add");
    assert_eq!(
        s.clear_suppressions(&a.id, SuppressionReason::Bounce)
            .await
            .expect("clear"),
        1
    );
    assert_eq!(
        s.clear_suppressions(&a.id, SuppressionReason::Erased)
            .await
            .expect("clear"),
        0
    );
    let left = s
        .list_suppressions(&a.id, None, None, 10)
        .await
        .expect("list");
    assert_eq!(left.items.len(), 1, "the unsubscribe stays");
    assert!(
        s.suppression(&other.id, "b3@example.com").await.is_ok(),
        "another account's table is its own"
    );
}

/// Mailgun's events are per domain, with their messages' sender, subject and metadata.
async fn events_of_one_domain_with_their_messages(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "perdomain@acme.example").await;
    let d1 = s
        .add_domain(&a.id, new_domain("one.example", true))
        .await
        .expect("domain");
    // An endpoint of one domain (as Mailgun's API registers them) and one of every event.
    let of_one = s
        .register_webhook(
            &a.id,
            kuvert_store::NewWebhook {
                url: "https://hooks.example/one",
                events: &[],
                signing_key: "k",
                format: kuvert_core::webhook::WebhookFormat::Mailgun,
                domain_id: Some(&d1.id),
            },
        )
        .await
        .expect("webhook");
    assert_eq!(of_one.domain_id.as_ref(), Some(&d1.id));
    assert_eq!(of_one.format, kuvert_core::webhook::WebhookFormat::Mailgun);
    let of_all = s
        .create_webhook(&a.id, "https://hooks.example/all", &[], "k")
        .await
        .expect("webhook");
    let one = message_from(
        s,
        &a.id,
        "one.example",
        &[],
        &[("ann@example.com", RecipientStatus::Queued)],
        START,
    )
    .await;
    let two = message_from(
        s,
        &a.id,
        "two.example",
        &[],
        &[("bob@example.com", RecipientStatus::Queued)],
        START,
    )
    .await;
    let outbox = async |id: &str| {
        s.webhook_deliveries(&a.id, id, 10)
            .await
            .expect("deliveries")
            .len()
    };
    assert_eq!(outbox(of_one.id.as_str()).await, 1, "one domain's events");
    assert_eq!(outbox(of_all.id.as_str()).await, 2, "every event");
    let page = s
        .list_events(
            &a.id,
            &EventFilter {
                domain: Some(d1.id.to_string()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("events");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].message_id.as_ref(), Some(&one));
    let other = account(s, "perdomain@other.example").await;
    let found = s
        .message_summaries(&a.id, &[one.clone(), two.clone()])
        .await
        .expect("summaries");
    assert_eq!(found.len(), 2);
    assert_eq!(found[&one].subject, "Sale");
    assert_eq!(found[&one].metadata["order"], 7);
    assert!(found[&one].mime.is_none(), "no content read");
    assert!(
        s.message_summaries(&other.id, &[one, two])
            .await
            .expect("summaries")
            .is_empty(),
        "another account's messages are not found"
    );
}

async fn reopening_keeps_everything(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "reopen@acme.example").await;
    let id = message(
        s,
        &a.id,
        &[],
        &[("ann@example.com", RecipientStatus::Queued)],
        START,
    )
    .await;
    // A second store on the same database: migrations are idempotent, and a fresh key cache
    // unwraps the account key from the database.
    let url = match s.backend() {
        kuvert_store::Backend::Sqlite => {
            StoreOptions::sqlite_url(f._dir.as_ref().expect("dir").path())
        }
        kuvert_store::Backend::Postgres => {
            let base = pg_admin_url();
            format!(
                "{}/{}",
                &base[..base.rfind('/').expect("db")],
                f.pg_db.as_ref().expect("db")
            )
        }
    };
    let again = Store::open(StoreOptions {
        url: url.clone(),
        master_key: MASTER,
        clock: Arc::new(f.clock.clone()),
    })
    .await
    .expect("reopen");
    assert_eq!(
        again
            .message(&a.id, id.as_str())
            .await
            .expect("read")
            .recipients[0]
            .email,
        "ann@example.com"
    );
    again.close().await;
    let wrong = Store::open(StoreOptions {
        url,
        master_key: [1; 32],
        clock: Arc::new(f.clock.clone()),
    })
    .await
    .expect("reopen");
    assert!(
        matches!(
            wrong.message(&a.id, id.as_str()).await,
            Err(StoreError::Sealing(_))
        ),
        "another master key opens nothing"
    );
    wrong.close().await;
}

#[tokio::test]
async fn sqlite_files_hold_no_plaintext() {
    let f = sqlite().await;
    let s = &f.store;
    let a = account(s, "plain.owner@acme.example").await;
    let secret_body = "Subject: Sale\r\n\r\nbody";
    message(
        s,
        &a.id,
        &[],
        &[
            (
                "very.private.recipient@example.com",
                RecipientStatus::Queued,
            ),
            ("dropped.person@example.com", RecipientStatus::Dropped),
        ],
        START,
    )
    .await;
    s.add_suppression(
        &a.id,
        "suppressed.person@example.com",
        SuppressionReason::Manual,
    )
    .await
    .expect("add");
    s.add_domain(&a.id, new_domain("other.example", false))
        .await
        .expect("domain");
    let dir = f._dir.as_ref().expect("dir").path().to_owned();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dir") {
        bytes.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    assert!(bytes.len() > 4096, "the database files were read");
    for plain in [
        "plain.owner@acme.example",
        "Acme GmbH",
        "DE123456789",
        "very.private.recipient",
        "dropped.person",
        "suppressed.person",
        secret_body,
        "news@send.example",
        "private key bytes",
        "suppressed: bounce",
        "\"order\"",
    ] {
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "{plain:?} is stored in clear"
        );
    }
    f.finish().await;
}

const LEASE: std::time::Duration = std::time::Duration::from_secs(600);

async fn leases_are_exclusive_and_expire(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "lease@acme.example").await;
    let q = RecipientStatus::Queued;
    let rcpts: Vec<String> = (0..30).map(|i| format!("r{i}@example.com")).collect();
    let list: Vec<(&str, RecipientStatus)> = rcpts.iter().map(|r| (r.as_str(), q)).collect();
    message(s, &a.id, &[], &list, f.clock.now()).await;
    message(
        s,
        &a.id,
        &[],
        &[("gone@example.com", RecipientStatus::Dropped)],
        f.clock.now(),
    )
    .await;

    // Eight pickers at once, as eight workers on two nodes would: each recipient once.
    let pickers: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.lease_due("node-a", 5, LEASE).await.expect("lease") })
        })
        .collect();
    let mut taken = Vec::new();
    for p in pickers {
        taken.extend(p.await.expect("picker"));
    }
    let mut ids: Vec<_> = taken.iter().map(|l| l.recipient_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), taken.len(), "no recipient leased twice");
    assert_eq!(
        taken.len(),
        30,
        "every queued recipient, and not the dropped one"
    );
    assert!(
        taken
            .iter()
            .all(|l| l.attempts == 0 && rcpts.contains(&l.address))
    );
    assert!(
        s.lease_due("node-a", 100, LEASE)
            .await
            .expect("lease")
            .is_empty(),
        "all held"
    );

    // The holder of one dies; its lease runs out and the recipient falls due again.
    f.clock.advance_millis(LEASE.as_millis() as i64 + 1);
    let again = s.lease_due("node-a", 100, LEASE).await.expect("lease");
    assert_eq!(again.len(), 30);
    // The first holder's outcome comes too late: it is logged but does not change the state.
    let late = OutcomeRecord {
        lease: taken[0].clone(),
        tags: vec![],
        domain_id: domain_of(s, &taken[0]).await,
        outcome: Outcome::Failed(Failure {
            attempt: None,
            reason: kuvert_core::event::FailureReason::Expired,
            detail: String::new(),
            last_reason: None,
            reply: None,
            mx: None,
        }),
    };
    assert_eq!(s.record_outcomes(&[late]).await.expect("record"), [false]);
    let m = s
        .message(&a.id, taken[0].message_id.as_str())
        .await
        .expect("message");
    assert!(
        m.recipients.iter().all(|r| r.status == q),
        "{:?}",
        m.recipients
    );

    // Given back at shutdown: due at once.
    s.release(&again).await.expect("release");
    let mine = s.lease_due("node-a", 10, LEASE).await.expect("lease");
    let theirs = s.lease_due("node-b", 100, LEASE).await.expect("lease");
    assert_eq!((mine.len(), theirs.len()), (10, 20));
    // node-a restarts after a crash: its leases are void at once, node-b's stand.
    assert_eq!(s.reclaim_leases("node-a").await.expect("reclaim"), 10);
    let retaken = s.lease_due("node-a", 100, LEASE).await.expect("lease");
    let mut a: Vec<_> = mine.iter().map(|l| &l.recipient_id).collect();
    let mut b: Vec<_> = retaken.iter().map(|l| &l.recipient_id).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "exactly node-a's recipients come back");
}

async fn an_unreadable_recipient_fails_alone_and_its_batch_goes_on(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "damaged@acme.example").await;
    let q = RecipientStatus::Queued;
    let id = message(
        s,
        &a.id,
        &[],
        &[
            ("one@example.com", q),
            ("two@example.com", q),
            ("three@example.com", q),
        ],
        f.clock.now(),
    )
    .await;
    let m = s.message(&a.id, id.as_str()).await.expect("message");
    let damaged = m
        .recipients
        .iter()
        .find(|r| r.email == "two@example.com")
        .expect("two")
        .id
        .clone();
    f.damage("recipients", "address", damaged.as_str()).await;

    let leases = s
        .lease_due("node-a", 10, LEASE)
        .await
        .expect("the batch is leased");
    let mut got: Vec<&str> = leases.iter().map(|l| l.address.as_str()).collect();
    got.sort();
    assert_eq!(got, ["one@example.com", "three@example.com"]);
    // Failed for good, not leased again after the lease would have run out.
    f.clock.advance_millis(LEASE.as_millis() as i64 + 1);
    let again = s.lease_due("node-a", 10, LEASE).await.expect("lease");
    assert!(
        again.iter().all(|l| l.recipient_id != damaged),
        "the unreadable recipient is not taken again"
    );
    assert_eq!(again.len(), 2, "the two readable ones fall due again");
}

async fn outcomes_update_state_events_and_suppressions(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "outcome@acme.example").await;
    let q = RecipientStatus::Queued;
    let id = message(
        s,
        &a.id,
        &["news"],
        &[
            ("ok@example.com", q),
            ("later@example.com", q),
            ("gone@example.com", q),
            ("policy@example.com", q),
        ],
        f.clock.now(),
    )
    .await;
    let out = s.outgoing(&id).await.expect("outgoing");
    assert_eq!(out.mime, b"Subject: Sale\r\n\r\nbody");
    assert_eq!(out.tags, ["news"]);
    let leases = s.lease_due("node-a", 10, LEASE).await.expect("lease");
    let lease = |addr: &str| {
        leases
            .iter()
            .find(|l| l.address == addr)
            .cloned()
            .expect("leased")
    };
    let retry_at = Timestamp(f.clock.now().millis() + 60_000);
    let bounce = |class: BounceClass, reply: &str| {
        Outcome::Bounced(Bounce {
            attempt: None,
            class,
            code: reply[4..9].to_owned(),
            reply: reply.to_owned(),
            mx: None,
            source: None,
            reporting_mta: None,
        })
    };
    let records = vec![
        OutcomeRecord {
            lease: lease("ok@example.com"),
            tags: out.tags.clone(),
            domain_id: out.domain_id.clone(),
            outcome: Outcome::Delivered(Delivery {
                mx: Some("mx.example.com".into()),
                ..Delivery::default()
            }),
        },
        OutcomeRecord {
            lease: lease("later@example.com"),
            tags: out.tags.clone(),
            domain_id: out.domain_id.clone(),
            outcome: Outcome::Deferred {
                next_attempt_at: retry_at,
                why: Deferral {
                    reply: Some("451 4.3.0 try later".into()),
                    ..Deferral::default()
                },
            },
        },
        OutcomeRecord {
            lease: lease("gone@example.com"),
            tags: out.tags.clone(),
            domain_id: out.domain_id.clone(),
            outcome: bounce(BounceClass::Hard, "550 5.1.1 no such user"),
        },
        OutcomeRecord {
            lease: lease("policy@example.com"),
            tags: out.tags.clone(),
            domain_id: out.domain_id.clone(),
            outcome: bounce(BounceClass::Policy, "550 5.7.1 blocked"),
        },
    ];
    // Contacts of the account for three of them: what happens shows on them.
    let list = s
        .create_list(&a.id, kuvert_store::ListSettings::named("news"))
        .await
        .expect("list");
    for address in ["ok@example.com", "gone@example.com", "policy@example.com"] {
        s.create_contact(
            &a.id,
            kuvert_store::NewContact {
                address: addr(address),
                name: None,
                properties: Default::default(),
                lists: vec![list.id.clone()],
                consent: api_consent(),
            },
        )
        .await
        .expect("contact");
    }
    assert_eq!(
        s.record_outcomes(&records).await.expect("record"),
        [true; 4]
    );
    {
        use kuvert_core::contact::{
            ConsentAction, ConsentMethod, ContactStatus, SubscriptionStatus,
        };
        let now = f.clock.now();
        let ok = s.contact(&a.id, "ok@example.com").await.expect("ok");
        assert_eq!(
            (ok.status, ok.engagement.last_sent_at),
            (ContactStatus::Active, Some(now))
        );
        let gone = s.contact(&a.id, "gone@example.com").await.expect("gone");
        assert_eq!(
            (gone.status, gone.engagement.last_sent_at),
            (ContactStatus::Bounced, None)
        );
        let policy = s
            .contact(&a.id, "policy@example.com")
            .await
            .expect("policy");
        assert_eq!(
            policy.status,
            ContactStatus::Active,
            "a soft bounce leaves it active"
        );
        // An open and an unsubscribe by the delivered one.
        f.clock.advance_millis(5_000);
        let r = s
            .recipient_ref(&lease("ok@example.com").recipient_id)
            .await
            .expect("ref")
            .expect("there");
        s.record_engagement(
            &r,
            &kuvert_store::Engagement::Open,
            Default::default(),
            kuvert_core::tracking::TrackingMode::Full,
        )
        .await
        .expect("open");
        s.record_engagement(
            &r,
            &kuvert_store::Engagement::Unsubscribe,
            Default::default(),
            kuvert_core::tracking::TrackingMode::Full,
        )
        .await
        .expect("unsubscribe");
        let ok = s.contact(&a.id, "ok@example.com").await.expect("ok");
        assert_eq!(ok.engagement.last_opened_at, Some(f.clock.now()));
        assert_eq!(ok.status, ContactStatus::Unsubscribed);
        assert_eq!(ok.subscriptions[0].status, SubscriptionStatus::Unsubscribed);
        let last = ok.consent.last().expect("consent");
        assert_eq!(
            (last.action, last.method),
            (ConsentAction::Withdrawn, ConsentMethod::Unsubscribe)
        );
    }

    let m = s.message(&a.id, id.as_str()).await.expect("message");
    let status = |e: &str| {
        m.recipients
            .iter()
            .find(|r| r.email == e)
            .map(|r| (r.status, r.attempts, r.next_attempt_at))
            .expect("recipient")
    };
    assert_eq!(
        status("ok@example.com"),
        (RecipientStatus::Delivered, 1, None)
    );
    assert_eq!(
        status("later@example.com"),
        (RecipientStatus::Deferred, 1, Some(retry_at))
    );
    assert_eq!(
        status("gone@example.com"),
        (RecipientStatus::Bounced, 1, None)
    );
    assert_eq!(
        status("policy@example.com"),
        (RecipientStatus::Bounced, 1, None)
    );

    let suppressed = s
        .suppressed(&a.id, &["gone@example.com", "policy@example.com"])
        .await
        .expect("suppressed");
    assert_eq!(
        suppressed.len(),
        1,
        "only the hard bounce is suppressed: {suppressed:?}"
    );
    assert_eq!(
        suppressed.get("gone@example.com"),
        Some(&SuppressionReason::Bounce)
    );

    let events = s
        .list_events(
            &a.id,
            &EventFilter {
                types: vec![
                    EventType::Delivered,
                    EventType::Deferred,
                    EventType::Bounced,
                ],
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("events");
    assert_eq!(events.items.len(), 4);
    let deferred = events
        .items
        .iter()
        .find(|e| e.event_type == EventType::Deferred)
        .expect("deferred event");
    assert_eq!(deferred.data()["reply"], "451 4.3.0 try later");
    assert_eq!(deferred.data()["attempt"], 1);
    assert_eq!(deferred.tags, ["news"]);

    // Nothing is due before the retry time; then only the deferred one.
    assert!(
        s.lease_due("node-a", 10, LEASE)
            .await
            .expect("lease")
            .is_empty()
    );
    f.clock.advance_millis(60_000);
    let due = s.lease_due("node-a", 10, LEASE).await.expect("lease");
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].address.as_str(), due[0].attempts),
        ("later@example.com", 1)
    );
}

async fn captures_are_kept_sealed(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "capture@acme.example").await;
    let id = message(
        s,
        &a.id,
        &[],
        &[("x@example.com", RecipientStatus::Queued)],
        f.clock.now(),
    )
    .await;
    for i in 0..3 {
        let rcpt = format!("r{i}@example.com");
        s.capture(
            &a.id,
            &id,
            "b-x@bounces.send.example",
            &[rcpt],
            format!("Subject: {i}\r\n\r\nbody").as_bytes(),
        )
        .await
        .expect("capture");
    }
    let page = s.list_captures(&a.id, None, 2).await.expect("list");
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].recipients, ["r2@example.com"], "newest first");
    assert_eq!(page[0].mime, b"Subject: 2\r\n\r\nbody");
    let rest = s
        .list_captures(&a.id, Some(page[1].seq), 2)
        .await
        .expect("list");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].recipients, ["r0@example.com"]);
    let other = account(s, "other@acme.example").await;
    assert!(
        s.list_captures(&other.id, None, 10)
            .await
            .expect("list")
            .is_empty(),
        "an account sees only its own"
    );
}

async fn stats_count_the_events_and_outlive_them(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "stats@acme.example").await;
    let q = RecipientStatus::Queued;
    let start = f.clock.now();
    message(
        s,
        &a.id,
        &["news"],
        &[
            ("a@example.com", q),
            ("b@example.com", q),
            ("c@example.com", RecipientStatus::Dropped),
        ],
        start,
    )
    .await;
    f.clock.advance_millis(3_600_000);
    message(s, &a.id, &[], &[("d@example.com", q)], f.clock.now()).await;
    let leases = s.lease_due("n", 10, LEASE).await.expect("lease");
    let mut records: Vec<OutcomeRecord> = Vec::new();
    for l in &leases {
        records.push(OutcomeRecord {
            lease: l.clone(),
            tags: vec![],
            domain_id: domain_of(s, l).await,
            outcome: if l.address == "b@example.com" {
                Outcome::Bounced(Bounce {
                    attempt: None,
                    class: BounceClass::Hard,
                    code: "5.1.1".into(),
                    reply: "550 5.1.1 gone".into(),
                    mx: None,
                    source: None,
                    reporting_mta: None,
                })
            } else {
                Outcome::Delivered(Delivery::default())
            },
        });
    }
    s.record_outcomes(&records).await.expect("record");
    let a_ref = s
        .recipient_ref(
            &leases
                .iter()
                .find(|l| l.address == "a@example.com")
                .expect("a")
                .recipient_id,
        )
        .await
        .expect("ref")
        .expect("found");
    s.record_report(&a_ref, &Report::Complaint(Complaint::default()))
        .await
        .expect("report");

    let window = StatsQuery {
        from: start,
        to: Timestamp(start.millis() + 86_400_000),
        domain_id: None,
        tag: None,
    };
    let totals = |rows: &[(Timestamp, String, i64)]| {
        let mut m = std::collections::BTreeMap::new();
        for (_, k, n) in rows {
            *m.entry(k.clone()).or_insert(0) += n;
        }
        m
    };
    let counted = totals(&s.stats(&a.id, &window).await.expect("stats"));
    // The counts agree with the events, type by type.
    let events = s
        .list_events(
            &a.id,
            &EventFilter {
                limit: 300,
                ..Default::default()
            },
        )
        .await
        .expect("events");
    let mut by_type = std::collections::BTreeMap::new();
    for e in &events.items {
        *by_type
            .entry(e.event_type.as_str().to_owned())
            .or_insert(0i64) += 1;
    }
    assert_eq!(counted.get("accepted"), by_type.get("accepted"));
    assert_eq!(counted.get("dropped"), by_type.get("dropped"));
    assert_eq!(counted.get("delivered"), by_type.get("delivered"));
    assert_eq!(counted.get("complained"), by_type.get("complained"));
    assert_eq!(
        (counted.get("bounced_hard"), by_type.get("bounced")),
        (Some(&1), Some(&1))
    );
    assert_eq!(counted.get("accepted"), Some(&3));
    // Two hours, by tag, by domain.
    let hours: std::collections::BTreeSet<Timestamp> = s
        .stats(&a.id, &window)
        .await
        .expect("stats")
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(hours.len(), 2);
    let news = totals(
        &s.stats(
            &a.id,
            &StatsQuery {
                tag: Some("news".into()),
                ..window.clone()
            },
        )
        .await
        .expect("stats"),
    );
    assert_eq!(
        (news.get("accepted"), news.get("dropped")),
        (Some(&2), Some(&1))
    );
    let domain = s
        .account_domain(&a.id, "send.example")
        .await
        .expect("domain");
    let by_domain = totals(
        &s.stats(
            &a.id,
            &StatsQuery {
                domain_id: Some(domain.id.to_string()),
                ..window.clone()
            },
        )
        .await
        .expect("stats"),
    );
    assert_eq!(by_domain, counted);

    // The raw events go; the counts stay.
    f.clock.advance_days(100);
    let mut purged = 0;
    loop {
        let n = s
            .purge_events_before(f.clock.now(), 2)
            .await
            .expect("purge");
        if n == 0 {
            break;
        }
        assert!(n <= 2, "bounded batches");
        purged += n;
    }
    assert_eq!(purged as usize, events.items.len());
    assert!(
        s.list_events(
            &a.id,
            &EventFilter {
                limit: 300,
                ..Default::default()
            }
        )
        .await
        .expect("events")
        .items
        .is_empty()
    );
    assert_eq!(
        totals(&s.stats(&a.id, &window).await.expect("stats")),
        counted
    );
}

async fn retention_follows_the_plan_and_keeps_statistics(f: &Fixture) {
    const DAY: i64 = 86_400_000;
    let s = &f.store;
    let free = account_on(s, "free@acme.example", Plan::Free).await;
    let premium = account_on(s, "premium@acme.example", Plan::Premium).await;
    let dropped = RecipientStatus::Dropped;
    // Finished messages (their one recipient dropped), and one still waiting for delivery.
    let free_done = message_from(
        s,
        &free.id,
        "free.example",
        &[],
        &[("a@example.com", dropped)],
        START,
    )
    .await;
    let free_waiting = message_from(
        s,
        &free.id,
        "free.example",
        &[],
        &[("b@example.com", RecipientStatus::Queued)],
        START,
    )
    .await;
    let premium_done = message_from(
        s,
        &premium.id,
        "premium.example",
        &[],
        &[("c@example.com", dropped)],
        START,
    )
    .await;
    let policy = kuvert_store::RetentionPolicy {
        event_months: [(Plan::Free, 3), (Plan::Premium, 13)].into(),
        content_ms: 7 * DAY,
        batch: 1,
        pause: std::time::Duration::ZERO,
    };
    let events = |a: AccountId| async move {
        let all = EventFilter {
            limit: 100,
            ..Default::default()
        };
        s.list_events(&a, &all).await.expect("events").items.len()
    };
    let content = |a: AccountId, m: MessageId| async move {
        s.message(&a, m.as_str())
            .await
            .expect("message")
            .mime
            .is_some()
    };
    let at = |days: i64| f.clock.set(Timestamp(START.millis() + days * DAY));

    // Content: kept 7 days after the last attempt, and as long as a recipient waits.
    at(6);
    assert_eq!(
        s.purge(&policy, false)
            .await
            .expect("purge")
            .message_contents,
        0
    );
    assert!(content(free.id.clone(), free_done.clone()).await);
    at(8);
    let c = s.purge(&policy, false).await.expect("purge");
    assert_eq!((c.message_contents, c.events), (2, 0), "{c:?}");
    assert!(!content(free.id.clone(), free_done.clone()).await);
    assert!(!content(premium.id.clone(), premium_done.clone()).await);
    assert!(content(free.id.clone(), free_waiting.clone()).await);

    // Events: 18 November plus 3 months is 18 February, 92 days later.
    at(92);
    s.purge(&policy, false).await.expect("purge");
    assert_eq!(
        events(free.id.clone()).await,
        2,
        "kept for exactly 3 months"
    );
    at(93);
    let dry = s.purge(&policy, true).await.expect("dry run");
    assert_eq!(
        (dry.events, dry.messages, dry.recipients),
        (2, 1, 1),
        "{dry:?}"
    );
    assert_eq!(
        events(free.id.clone()).await,
        2,
        "a dry run deletes nothing"
    );
    let c = s.purge(&policy, false).await.expect("purge");
    assert_eq!((c.events, c.messages, c.recipients), (2, 1, 1), "{c:?}");
    assert_eq!(
        events(free.id.clone()).await,
        0,
        "gone after 3 months and a day"
    );
    assert!(
        s.message(&free.id, free_waiting.as_str()).await.is_ok(),
        "a message still waiting for delivery stays"
    );
    assert_eq!(events(premium.id.clone()).await, 1);

    // Premium: still there after 12 months, gone after 13 months and a day.
    at(365);
    s.purge(&policy, false).await.expect("purge");
    assert_eq!(events(premium.id.clone()).await, 1, "kept after 12 months");
    at(396);
    s.purge(&policy, false).await.expect("purge");
    assert_eq!(
        events(premium.id.clone()).await,
        0,
        "gone after 13 months and a day"
    );

    // The statistics stay, and every run left its counts.
    let window = StatsQuery {
        from: START,
        to: Timestamp(START.millis() + DAY),
        domain_id: None,
        tag: None,
    };
    let stats = s.stats(&free.id, &window).await.expect("stats");
    let count = |metric: &str| -> i64 {
        stats
            .iter()
            .filter(|(_, m, _)| m == metric)
            .map(|(_, _, n)| n)
            .sum()
    };
    assert_eq!((count("dropped"), count("accepted")), (1, 1), "{stats:?}");
    let runs = s.purge_runs(10).await.expect("runs");
    assert_eq!(runs.len(), 6, "dry runs leave no record");
    assert_eq!(runs[2].counts.events, 2);
    assert_eq!(runs[4].counts.message_contents, 2);
}

async fn a_closed_account_is_unreadable_at_once_and_gone_after_its_period(f: &Fixture) {
    const DAY: i64 = 86_400_000;
    let s = &f.store;
    let gone = account(s, "gone@acme.example").await;
    let stays = account(s, "stays@acme.example").await;
    let secret = NewApiKey::generate();
    s.create_key(&gone.id, "k", Scope::Full, &secret)
        .await
        .expect("key");
    let queued = RecipientStatus::Queued;
    message_from(
        s,
        &gone.id,
        "gone.example",
        &["t"],
        &[("a@example.com", queued)],
        START,
    )
    .await;
    message_from(
        s,
        &stays.id,
        "stays.example",
        &[],
        &[("b@example.com", queued)],
        START,
    )
    .await;
    s.add_suppression(&gone.id, "x@example.com", SuppressionReason::Manual)
        .await
        .expect("suppression");
    s.create_webhook(&gone.id, "https://hooks.example/", &[], "k")
        .await
        .expect("webhook");
    assert_eq!(
        s.owner(&gone.id).await.expect("owner").0,
        "gone@acme.example"
    );

    s.close_account(&gone.id, 30 * DAY).await.expect("close");
    assert!(
        matches!(s.account(&gone.id).await, Err(StoreError::KeyDestroyed)),
        "its sealed data can no longer be opened"
    );
    assert!(matches!(
        s.owner(&gone.id).await,
        Err(StoreError::KeyDestroyed)
    ));
    assert!(
        s.authenticate(&secret.hash).await.expect("query").is_none(),
        "its keys are revoked"
    );
    let leased = s.lease_due("n", 10, LEASE).await.expect("lease");
    assert_eq!(
        leased
            .iter()
            .map(|l| l.address.as_str())
            .collect::<Vec<_>>(),
        ["b@example.com"],
        "its mail no longer leaves; the other account's does"
    );

    // Every table of the schema is either purged by account or holds no account's rows.
    let known: Vec<&str> = kuvert_store::ACCOUNT_TABLES
        .iter()
        .map(|(t, _)| *t)
        .chain(kuvert_store::NO_ACCOUNT_DATA.iter().copied())
        .collect();
    for table in s.table_names().await.expect("tables") {
        assert!(
            known.contains(&table.as_str()),
            "table {table} is in neither ACCOUNT_TABLES nor NO_ACCOUNT_DATA"
        );
    }
    let rows = |a: AccountId| async move {
        s.account_rows(&a)
            .await
            .expect("rows")
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect::<Vec<_>>()
    };
    let policy = kuvert_store::RetentionPolicy {
        event_months: Default::default(),
        content_ms: 7 * DAY,
        batch: 1,
        pause: std::time::Duration::ZERO,
    };
    f.clock.set(Timestamp(START.millis() + 29 * DAY));
    assert_eq!(s.purge(&policy, false).await.expect("purge").accounts, 0);
    assert!(
        !rows(gone.id.clone()).await.is_empty(),
        "not before its period"
    );
    f.clock.set(Timestamp(START.millis() + 30 * DAY));
    assert_eq!(s.purge(&policy, false).await.expect("purge").accounts, 1);
    assert_eq!(rows(gone.id.clone()).await, [], "no row of it is left");
    let kept = rows(stays.id.clone()).await;
    for table in [
        "accounts",
        "users",
        "domains",
        "messages",
        "recipients",
        "events",
    ] {
        assert!(kept.iter().any(|(t, _)| *t == table), "{table}: {kept:?}");
    }
}

async fn restriction_holds_mail_and_requests_fall_due(f: &Fixture) {
    use kuvert_core::account::{AccountStatus, PrivacyRight, RequestState};
    const DAY: i64 = 86_400_000;
    let s = &f.store;
    let a = account(s, "held@acme.example").await;
    let queued = RecipientStatus::Queued;
    let id = message_from(
        s,
        &a.id,
        "held.example",
        &[],
        &[("a@example.com", queued)],
        START,
    )
    .await;
    assert!(s.set_restricted(&a.id, true).await.expect("restrict"));
    assert!(
        !s.set_restricted(&a.id, true).await.expect("again"),
        "already restricted"
    );
    assert_eq!(
        s.account_state(&a.id).await.expect("state").status,
        AccountStatus::Restricted
    );
    assert!(
        s.lease_due("n", 10, LEASE).await.expect("lease").is_empty(),
        "nothing of a restricted account is processed"
    );
    // A message committed as the hold began (its acceptance checked the account before):
    // due, but held when the queue takes it, not sent.
    let late = message_from(
        s,
        &a.id,
        "held.example",
        &[],
        &[("b@example.com", queued)],
        START,
    )
    .await;
    assert!(
        s.lease_due("n", 10, LEASE).await.expect("lease").is_empty(),
        "the late message is held, not leased"
    );
    assert_eq!(
        s.message(&a.id, late.as_str())
            .await
            .expect("message")
            .recipients[0]
            .status,
        RecipientStatus::Held
    );
    let policy = kuvert_store::RetentionPolicy {
        event_months: Default::default(),
        content_ms: 0,
        batch: 10,
        pause: std::time::Duration::ZERO,
    };
    f.clock.set(Timestamp(START.millis() + 8 * DAY));
    s.purge(&policy, false).await.expect("purge");
    assert!(
        s.message(&a.id, id.as_str())
            .await
            .expect("message")
            .mime
            .is_some(),
        "held mail keeps its content"
    );
    assert!(s.set_restricted(&a.id, false).await.expect("lift"));
    let leased = s.lease_due("n", 10, LEASE).await.expect("lease");
    assert_eq!(leased.len(), 2, "lifted: the mail is due at once");

    // Requests: a month to answer; open ones first, the most overdue on top.
    f.clock.set(START);
    let old = s
        .record_privacy_request(&a.id, PrivacyRight::Objection, "ann, by e-mail", false)
        .await
        .expect("record");
    f.clock.set(Timestamp(START.millis() + 10 * DAY));
    let newer = s
        .record_privacy_request(&a.id, PrivacyRight::Access, "API key", false)
        .await
        .expect("record");
    let done = s
        .record_privacy_request(&a.id, PrivacyRight::Rectification, "API key", true)
        .await
        .expect("record");
    f.clock.set(Timestamp(START.millis() + 31 * DAY));
    let list = s.privacy_requests(Some(&a.id)).await.expect("list");
    let now = f.clock.now();
    assert_eq!(
        list.iter()
            .map(|r| (r.id.clone(), r.overdue(now)))
            .collect::<Vec<_>>(),
        [(old.clone(), true), (newer.clone(), false), (done, false)]
    );
    assert_eq!(list[0].requested_by.as_deref(), Some("ann, by e-mail"));
    s.close_privacy_request(&old, RequestState::Done)
        .await
        .expect("close");
    assert!(matches!(
        s.close_privacy_request(&old, RequestState::Done).await,
        Err(StoreError::NotFound(_))
    ));
    let list = s.privacy_requests(None).await.expect("all");
    assert_eq!(list[0].id, newer, "{list:?}");
}

async fn support_grants_expire_and_the_audit_log_follows_retention(f: &Fixture) {
    use kuvert_core::account::ActorKind;
    const HOUR: i64 = 3_600_000;
    let s = &f.store;
    let a = account(s, "audited@acme.example").await;
    assert_eq!(s.support_grant(&a.id).await.expect("grant"), None);
    s.grant_support(&a.id, "API key k", Timestamp(START.millis() + 2 * HOUR))
        .await
        .expect("grant");
    assert!(s.support_grant(&a.id).await.expect("grant").is_some());
    f.clock.set(Timestamp(START.millis() + 2 * HOUR));
    assert_eq!(
        s.support_grant(&a.id).await.expect("grant"),
        None,
        "expired at its hour"
    );
    s.grant_support(&a.id, "API key k", Timestamp(START.millis() + 5 * HOUR))
        .await
        .expect("grant");
    s.revoke_support_grants(&a.id).await.expect("revoke");
    assert_eq!(
        s.support_grant(&a.id).await.expect("grant"),
        None,
        "revoked"
    );

    s.audit(
        &a.id,
        ActorKind::Key,
        "key_1",
        "GET /v1/events",
        Some("/v1/events"),
        Some("192.0.2.7"),
    )
    .await
    .expect("audit");
    s.audit(
        &a.id,
        ActorKind::Support,
        "bob",
        "support access refused: no grant",
        None,
        None,
    )
    .await
    .expect("audit");
    let log = s.audit_log(&a.id, None, 10).await.expect("log");
    assert_eq!(
        log.iter()
            .map(|e| (e.actor_kind.as_str(), e.ip.as_deref()))
            .collect::<Vec<_>>(),
        [("support", None), ("key", Some("192.0.2.7"))],
        "newest first, the address sealed and opened"
    );
    assert_eq!(
        s.audit_log(&a.id, Some(log[0].seq), 10)
            .await
            .expect("page")
            .len(),
        1
    );
    let policy = kuvert_store::RetentionPolicy {
        event_months: [(Plan::Free, 3)].into(),
        content_ms: 0,
        batch: 1,
        pause: std::time::Duration::ZERO,
    };
    f.clock.set(Timestamp(START.millis() + 93 * 86_400_000));
    let c = s.purge(&policy, false).await.expect("purge");
    assert_eq!(
        c.audit_entries, 2,
        "kept for the plan's retention, then gone"
    );
}

/// `/metrics` is public and counts the queue: through the partial index of waiting
/// recipients, never a scan of every recipient ever sent.
#[tokio::test]
async fn the_queue_depth_reads_the_index_of_waiting_recipients() {
    let f = sqlite().await;
    let pool = sqlx::SqlitePool::connect(&f.url).await.expect("connect");
    let plan: Vec<String> = sqlx::query(&format!(
        "EXPLAIN QUERY PLAN {}",
        kuvert_store::QUEUE_DEPTH_SQL
    ))
    .fetch_all(&pool)
    .await
    .expect("plan")
    .iter()
    .map(|r| sqlx::Row::try_get::<String, _>(r, "detail").unwrap_or_default())
    .collect();
    pool.close().await;
    assert!(
        plan.iter().any(|d| d.contains("recipients_next")),
        "{plan:?}"
    );
    f.finish().await;
}

/// An account deleted by another process on the same database (the CLI, another node) is
/// unreadable here within seconds, though this process had its key cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_destroyed_elsewhere_is_not_used_here_for_long() {
    let f = sqlite().await;
    let other = Store::open(StoreOptions {
        url: f.url.clone(),
        master_key: MASTER,
        clock: Arc::new(f.clock.clone()),
    })
    .await
    .expect("a second process on the same data");
    let s = &f.store;
    let a = account(s, "elsewhere@acme.example").await;
    let id = message(
        s,
        &a.id,
        &[],
        &[("r@example.com", RecipientStatus::Queued)],
        f.clock.now(),
    )
    .await;
    s.message(&a.id, id.as_str())
        .await
        .expect("readable, key cached");
    other
        .close_account(&a.id, 86_400_000)
        .await
        .expect("deleted elsewhere");
    f.clock.advance_millis(kuvert_store::KEY_RECHECK_MS);
    assert!(
        s.message(&a.id, id.as_str()).await.is_err(),
        "the cached key is not used after the deletion"
    );
    other.close().await;
    f.finish().await;
}

/// The sending domain of a leased recipient's message.
async fn domain_of(s: &Store, lease: &kuvert_store::Lease) -> kuvert_core::id::DomainId {
    s.outgoing(&lease.message_id)
        .await
        .expect("the message")
        .domain_id
}

fn addr(s: &str) -> kuvert_core::EmailAddress {
    kuvert_core::EmailAddress::parse(s).expect("address")
}

fn api_consent() -> kuvert_store::ConsentInput {
    kuvert_store::ConsentInput {
        method: kuvert_core::contact::ConsentMethod::Api,
        text: None,
        source: Some("192.0.2.7".into()),
    }
}

async fn contacts_lists_and_consent(f: &Fixture) {
    use kuvert_core::contact::{
        ConsentAction, ContactStatus, PropertyKind, PropertyValue, SubscriptionStatus,
    };
    let s = &f.store;
    let a = account(s, "contacts@acme.example").await;
    s.define_property(&a.id, "age", PropertyKind::Integer)
        .await
        .expect("define");
    assert!(matches!(
        s.define_property(&a.id, "age", PropertyKind::String).await,
        Err(StoreError::Conflict(_))
    ));
    let list = s
        .create_list(
            &a.id,
            kuvert_store::ListSettings {
                consent_text: Some("v1: weekly news".into()),
                ..kuvert_store::ListSettings::named("news")
            },
        )
        .await
        .expect("list");
    let c = s
        .create_contact(
            &a.id,
            kuvert_store::NewContact {
                address: addr("Ann@Example.com"),
                name: Some("Ann".into()),
                properties: [("age".to_owned(), PropertyValue::Integer(41))].into(),
                lists: vec![list.id.clone()],
                consent: api_consent(),
            },
        )
        .await
        .expect("create");
    assert_eq!(c.status, ContactStatus::Active);
    assert_eq!(c.subscriptions[0].status, SubscriptionStatus::Subscribed);
    assert_eq!(
        c.consent[0].consent_text.as_deref(),
        Some("v1: weekly news")
    );
    assert_eq!(c.consent[0].source.as_deref(), Some("192.0.2.7"));
    // Found by address whatever its case, and unique per account after normalising.
    let again = s
        .contact(&a.id, "ann@example.COM")
        .await
        .expect("by address");
    assert_eq!(again.id, c.id);
    assert!(matches!(
        s.create_contact(
            &a.id,
            kuvert_store::NewContact {
                address: addr("ann@example.com"),
                name: None,
                properties: Default::default(),
                lists: vec![],
                consent: api_consent(),
            }
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    // Another account neither sees it nor blocks the address.
    let b = account(s, "contacts@other.example").await;
    assert!(matches!(
        s.contact(&b.id, c.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.list(&b.id, list.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    let changed = s
        .update_contact(
            &a.id,
            c.id.as_str(),
            kuvert_store::ContactPatch {
                name: Some(None),
                properties: vec![("age".into(), Some(PropertyValue::Integer(42)))],
                unsubscribe: vec![list.id.clone()],
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(changed.name, None);
    assert_eq!(changed.properties["age"], PropertyValue::Integer(42));
    assert_eq!(
        changed.subscriptions[0].status,
        SubscriptionStatus::Unsubscribed
    );
    assert_eq!(
        changed.consent.iter().map(|r| r.action).collect::<Vec<_>>(),
        [ConsentAction::Given, ConsentAction::Withdrawn]
    );
    assert_eq!(
        s.list(&a.id, list.id.as_str())
            .await
            .expect("list")
            .subscribed,
        0
    );
    let page = s
        .list_contacts(&a.id, Some(list.id.as_str()), None, None, 10)
        .await
        .expect("page");
    assert_eq!(page.items.len(), 1);
    s.delete_contact(&a.id, "ANN@example.com")
        .await
        .expect("delete");
    assert!(matches!(
        s.contact(&a.id, c.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    // A plain deletion does not block the address.
    s.create_contact(
        &a.id,
        kuvert_store::NewContact {
            address: addr("ann@example.com"),
            name: None,
            properties: Default::default(),
            lists: vec![list.id.clone()],
            consent: api_consent(),
        },
    )
    .await
    .expect("back after a deletion");
    // A suppressed address is refused.
    s.add_suppression(&a.id, "gone@example.com", SuppressionReason::Bounce)
        .await
        .expect("suppress");
    assert!(matches!(
        s.create_contact(
            &a.id,
            kuvert_store::NewContact {
                address: addr("gone@example.com"),
                name: None,
                properties: Default::default(),
                lists: vec![],
                consent: api_consent(),
            }
        )
        .await,
        Err(StoreError::Refused(_))
    ));
}

fn rows(from: u64, addresses: &[&str]) -> Vec<kuvert_store::ImportRow> {
    use kuvert_core::contact::PropertyValue;
    addresses
        .iter()
        .enumerate()
        .map(|(i, a)| kuvert_store::ImportRow {
            row_number: from + i as u64,
            address: a.to_string(),
            name: Some(format!("N{i}")),
            properties: [
                ("age".to_owned(), PropertyValue::Integer(20 + i as i64)),
                ("city".to_owned(), PropertyValue::String("Berlin".into())),
                ("vip".to_owned(), PropertyValue::Boolean(i % 2 == 0)),
            ]
            .into(),
        })
        .collect()
}

async fn import_batches_skip_what_may_not_be_subscribed(f: &Fixture) {
    use kuvert_core::contact::{ImportMode, ImportState, SubscriptionStatus};
    let s = &f.store;
    let a = account(s, "imports@acme.example").await;
    let list = s
        .create_list(&a.id, kuvert_store::ListSettings::named("news"))
        .await
        .expect("list");
    // Already there: one who left the list, one bounced, one erased.
    let left = s
        .create_contact(
            &a.id,
            kuvert_store::NewContact {
                address: addr("left@example.com"),
                name: None,
                properties: Default::default(),
                lists: vec![list.id.clone()],
                consent: api_consent(),
            },
        )
        .await
        .expect("contact");
    s.update_contact(
        &a.id,
        left.id.as_str(),
        kuvert_store::ContactPatch {
            unsubscribe: vec![list.id.clone()],
            ..Default::default()
        },
    )
    .await
    .expect("leave");
    s.add_suppression(&a.id, "bounced@example.com", SuppressionReason::Bounce)
        .await
        .expect("suppress");
    s.erase_address(&a.id, "erased@example.com")
        .await
        .expect("erase");

    let id = s
        .create_import(&a.id, Some(&list.id), ImportMode::Add, Some("form v2"))
        .await
        .expect("import");
    s.add_import_chunk(&a.id, &id, 0, b"email\n")
        .await
        .expect("chunk");
    assert_eq!(
        s.import_chunk(&a.id, &id, 0)
            .await
            .expect("read")
            .as_deref(),
        Some(&b"email\n"[..])
    );
    s.import_uploaded(&a.id, &id).await.expect("uploaded");
    let (acc, claimed, state) = s
        .claim_import("node.a", 60_000)
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(
        (acc, &claimed, state),
        (a.id.clone(), &id, ImportState::Scanning)
    );
    assert!(
        s.claim_import("node.b", 60_000)
            .await
            .expect("claim")
            .is_none(),
        "leased"
    );
    s.import_scanned(&a.id, &id, 6, &serde_json::json!([]))
        .await
        .expect("scanned");
    let batch = kuvert_store::ImportBatch {
        rows: rows(
            1,
            &[
                "new@example.com",
                "left@example.com",
                "bounced@example.com",
                "ERASED@example.com",
                "new@example.com",
            ],
        ),
        refused: vec![kuvert_store::RowError {
            row_number: 6,
            column: "email".into(),
            reason: "invalid address".into(),
        }],
        through: 6,
    };
    // Only the lease holder writes.
    assert!(matches!(
        s.apply_import_batch(
            &a.id,
            &id,
            "node.b",
            60_000,
            kuvert_store::ImportBatch {
                rows: vec![],
                refused: vec![],
                through: 6
            }
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    s.apply_import_batch(&a.id, &id, "node.a", 60_000, batch)
        .await
        .expect("batch");
    let i = s.import(&a.id, id.as_str()).await.expect("import");
    assert_eq!(
        (i.processed, i.created, i.updated, i.skipped, i.failed),
        (6, 1, 0, 4, 1),
        "{i:?}"
    );
    let errors = s
        .import_errors(&a.id, id.as_str(), 0, 100)
        .await
        .expect("errors");
    let reasons: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e.row_number, e.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(
        reasons[0].1.contains("unsubscribed from this list"),
        "{reasons:?}"
    );
    assert!(reasons[1].1.contains("bounced"), "{reasons:?}");
    assert!(reasons[2].1.contains("erased"), "{reasons:?}");
    assert!(reasons[3].1.contains("row 1"), "{reasons:?}");
    assert_eq!(reasons[4], (6, "invalid address"));
    let new = s.contact(&a.id, "new@example.com").await.expect("created");
    assert_eq!(new.subscriptions[0].status, SubscriptionStatus::Subscribed);
    assert_eq!(new.consent[0].consent_text.as_deref(), Some("form v2"));
    assert!(matches!(
        s.contact(&a.id, "erased@example.com").await,
        Err(StoreError::NotFound(_))
    ));
    // A batch already written is not counted twice (a resumed import).
    assert!(
        s.apply_import_batch(
            &a.id,
            &id,
            "node.a",
            60_000,
            kuvert_store::ImportBatch {
                rows: rows(1, &["new@example.com"]),
                refused: vec![],
                through: 6,
            }
        )
        .await
        .is_err()
    );
    s.finish_import(&a.id, &id, None).await.expect("finish");
    assert_eq!(
        s.import(&a.id, id.as_str()).await.expect("import").state,
        ImportState::Done
    );
    assert!(
        s.import_chunk(&a.id, &id, 0).await.expect("read").is_none(),
        "the upload goes"
    );
    // Unsubscribe mode takes contacts off the list.
    let un = s
        .create_import(&a.id, Some(&list.id), ImportMode::Unsubscribe, None)
        .await
        .expect("import");
    s.import_uploaded(&a.id, &un).await.expect("uploaded");
    s.claim_import("node.a", 60_000)
        .await
        .expect("claim")
        .expect("one");
    s.import_scanned(&a.id, &un, 2, &serde_json::json!([]))
        .await
        .expect("scanned");
    s.apply_import_batch(
        &a.id,
        &un,
        "node.a",
        60_000,
        kuvert_store::ImportBatch {
            rows: rows(1, &["new@example.com", "nobody@example.com"]),
            refused: vec![],
            through: 2,
        },
    )
    .await
    .expect("batch");
    let i = s.import(&a.id, un.as_str()).await.expect("import");
    assert_eq!((i.updated, i.skipped), (1, 1));
    let new = s.contact(&a.id, "new@example.com").await.expect("contact");
    assert_eq!(
        new.subscriptions[0].status,
        SubscriptionStatus::Unsubscribed
    );
}

async fn segments_filter_in_sql(f: &Fixture) {
    use kuvert_core::contact::{PropertyKind, PropertyValue};
    use kuvert_core::segment::Filter;
    let s = &f.store;
    let a = account(s, "segments@acme.example").await;
    s.define_property(&a.id, "age", PropertyKind::Integer)
        .await
        .expect("define");
    s.define_property(&a.id, "city", PropertyKind::String)
        .await
        .expect("define");
    let list = s
        .create_list(&a.id, kuvert_store::ListSettings::named("news"))
        .await
        .expect("list");
    for (i, (age, city)) in [(25, "Berlin"), (35, "Berlin"), (45, "Paris"), (55, "Lyon")]
        .into_iter()
        .enumerate()
    {
        s.create_contact(
            &a.id,
            kuvert_store::NewContact {
                address: addr(&format!("c{i}@example.com")),
                name: None,
                properties: [
                    ("age".to_owned(), PropertyValue::Integer(age)),
                    ("city".to_owned(), PropertyValue::String(city.into())),
                ]
                .into(),
                lists: if i % 2 == 0 {
                    vec![list.id.clone()]
                } else {
                    vec![]
                },
                consent: api_consent(),
            },
        )
        .await
        .expect("contact");
        // Ids sort by creation time: one millisecond apart, they sort as created.
        f.clock.advance_millis(1);
    }
    let count = |v: serde_json::Value| {
        let filter: Filter = serde_json::from_value(v).expect("filter");
        let (s, a) = (s.clone(), a.id.clone());
        async move { s.segment_count(&a, &filter).await }
    };
    use serde_json::json;
    assert_eq!(
        count(json!({"property": {"name": "age", "op": "gte", "value": 35}}))
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        count(json!({"property": {"name": "city", "op": "eq", "value": "berlin"}}))
            .await
            .expect("count"),
        2,
        "text compares without case"
    );
    assert_eq!(
        count(json!({"property": {"name": "city", "op": "eq", "value": "Berlin"}}))
            .await
            .expect("count"),
        2
    );
    assert_eq!(
        count(json!({"all": [
            {"property": {"name": "city", "op": "ne", "value": "Berlin"}},
            {"list": {"list": list.id.as_str()}}
        ]}))
        .await
        .expect("count"),
        1
    );
    assert_eq!(
        count(json!({"any": [
            {"property": {"name": "age", "op": "lt", "value": 30}},
            {"property": {"name": "age", "op": "gt", "value": 50}}
        ]}))
        .await
        .expect("count"),
        2
    );
    assert_eq!(
        count(json!({"engagement": {"kind": "opened", "never": true}}))
            .await
            .expect("count"),
        4
    );
    assert_eq!(
        count(json!({"engagement": {"kind": "opened", "days": 30}}))
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        count(json!({"not": {"status": "active"}}))
            .await
            .expect("count"),
        0
    );
    assert!(matches!(
        count(json!({"property": {"name": "nope", "op": "exists"}})).await,
        Err(StoreError::Filter(_))
    ));
    let seg = s
        .create_segment(
            &a.id,
            "older",
            &serde_json::from_value(json!({"property": {"name": "age", "op": "gt", "value": 40}}))
                .expect("filter"),
        )
        .await
        .expect("segment");
    let preview = s
        .segment_preview(&a.id, &seg.filter, 10)
        .await
        .expect("preview");
    assert_eq!(
        preview
            .iter()
            .map(|c| c.address.as_str())
            .collect::<Vec<_>>(),
        ["c2@example.com", "c3@example.com"]
    );
    // Another account's contacts never count.
    let b = account(s, "segments@other.example").await;
    assert!(matches!(
        s.segment(&b.id, seg.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn erasure_leaves_only_a_keyed_hash(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "erase@acme.example").await;
    let victim = "Victim.Person@Example.com";
    let list = s
        .create_list(&a.id, kuvert_store::ListSettings::named("news"))
        .await
        .expect("list");
    s.create_contact(
        &a.id,
        kuvert_store::NewContact {
            address: addr(victim),
            name: Some("Victim Person".into()),
            properties: Default::default(),
            lists: vec![list.id.clone()],
            consent: api_consent(),
        },
    )
    .await
    .expect("contact");
    let id = message(
        s,
        &a.id,
        &[],
        &[
            (victim, RecipientStatus::Queued),
            ("other@example.com", RecipientStatus::Queued),
        ],
        f.clock.now(),
    )
    .await;
    s.capture(
        &a.id,
        &id,
        "b@send.example",
        &[victim.to_lowercase()],
        b"To: victim.person@example.com\r\n\r\nhi",
    )
    .await
    .expect("capture");
    s.add_suppression(&a.id, victim, SuppressionReason::Complaint)
        .await
        .expect("suppress");
    s.audit(
        &a.id,
        kuvert_core::account::ActorKind::Key,
        "key_x",
        "DELETE /v1/contacts/{contact}",
        Some("/v1/contacts/victim.person%40example.com"),
        None,
    )
    .await
    .expect("audit");
    // The victim's copy is in flight while the erasure runs: its outcome comes after.
    let leased = s.lease_due("node-a", 10, LEASE).await.expect("lease");
    let in_flight = leased
        .into_iter()
        .find(|l| l.address.eq_ignore_ascii_case(victim))
        .expect("the victim's recipient is due");
    let domain_id = domain_of(s, &in_flight).await;
    let done = s.erase_address(&a.id, victim).await.expect("erase");
    assert_eq!(
        (done.contacts, done.recipients, done.messages, done.captures),
        (1, 1, 1, 1),
        "{done:?}"
    );
    let held = s
        .record_outcomes(&[OutcomeRecord {
            domain_id,
            lease: in_flight,
            tags: vec![],
            outcome: Outcome::Delivered(Delivery::default()),
        }])
        .await
        .expect("outcome");
    assert_eq!(held, [false], "the recipient is gone");
    // So is its captured copy, made after the erasure by the delivery in flight.
    s.capture(
        &a.id,
        &id,
        "b@send.example",
        &[victim.to_owned()],
        b"To: victim.person@example.com\r\n\r\nhi",
    )
    .await
    .expect("capture");
    let events = s
        .list_events(
            &a.id,
            &EventFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("events");
    assert!(
        events.items.iter().all(|e| !e
            .recipient
            .clone()
            .unwrap_or_default()
            .eq_ignore_ascii_case(victim)),
        "an outcome after the erasure wrote the address back: {:?}",
        events
            .items
            .iter()
            .map(|e| &e.recipient)
            .collect::<Vec<_>>()
    );
    // Later sends and imports find it.
    let found = s
        .suppressed(&a.id, &["victim.person@example.com"])
        .await
        .expect("check");
    assert_eq!(
        found["victim.person@example.com"],
        SuppressionReason::Erased
    );
    let list_page = s
        .list_suppressions(&a.id, None, None, 10)
        .await
        .expect("list");
    assert_eq!(list_page.items.len(), 1);
    assert_eq!(list_page.items[0].address, None, "no address stays");
    // Nothing readable names it.
    let m = s.message(&a.id, id.as_str()).await.expect("message");
    assert!(m.mime.is_none());
    assert_eq!(m.recipients.len(), 1, "the other recipient stays");
    assert!(
        s.list_captures(&a.id, None, 10)
            .await
            .expect("captures")
            .is_empty()
    );
    let audit = s.audit_log(&a.id, None, 10).await.expect("audit");
    assert!(
        audit
            .iter()
            .all(|e| !e.detail.clone().unwrap_or_default().contains("victim")),
        "{audit:?}"
    );
    // And nothing stored does, in clear or as the instance-wide lookup hash: only the
    // account's own keyed hash stays.
    let dump = database_text(f).await.to_lowercase();
    assert!(
        !dump.contains("victim.person"),
        "the address is in the database"
    );
    assert!(
        !dump.contains(&s.lookup_hash(victim)),
        "its lookup hash is in the database"
    );
    assert!(
        dump.contains(&s.lookup_hash("other@example.com")),
        "the scan reads the rows"
    );
}

/// Every byte the database holds, as text: the SQLite files, or a `pg_dump` of the
/// PostgreSQL database.
async fn database_text(f: &Fixture) -> String {
    match &f.pg_db {
        Some(db) => {
            let base = pg_admin_url();
            let url = format!(
                "{}/{db}",
                &base[..base.rfind('/').expect("database in URL")]
            );
            let out = std::process::Command::new("pg_dump")
                .arg("--data-only")
                .arg(&url)
                .output()
                .expect("pg_dump runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        None => {
            let dir = f._dir.as_ref().expect("a directory");
            let mut all = Vec::new();
            for entry in std::fs::read_dir(dir.path()).expect("dir") {
                let path = entry.expect("entry").path();
                if path.to_string_lossy().contains("kuvert.db") {
                    all.extend(std::fs::read(&path).expect("read"));
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        }
    }
}

/// More value rows than one statement holds, mixing numbers and texts: the statements'
/// rows then change phase from one to the next (PostgreSQL refused a number where a cached
/// statement had first seen a NULL).
async fn a_large_import_batch_with_every_kind_of_value(f: &Fixture) {
    use kuvert_core::contact::{ImportMode, PropertyKind};
    let s = &f.store;
    let a = account(s, "bulk@acme.example").await;
    for (name, kind) in [
        ("age", PropertyKind::Integer),
        ("city", PropertyKind::String),
        ("vip", PropertyKind::Boolean),
    ] {
        s.define_property(&a.id, name, kind).await.expect("define");
    }
    let id = s
        .create_import(&a.id, None, ImportMode::Add, None)
        .await
        .expect("import");
    s.import_uploaded(&a.id, &id).await.expect("uploaded");
    s.claim_import("node.a", 60_000)
        .await
        .expect("claim")
        .expect("one");
    s.import_scanned(&a.id, &id, 2_000, &serde_json::json!([]))
        .await
        .expect("scanned");
    let addresses: Vec<String> = (0..2_000).map(|i| format!("bulk{i}@example.com")).collect();
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    s.apply_import_batch(
        &a.id,
        &id,
        "node.a",
        60_000,
        kuvert_store::ImportBatch {
            rows: rows(1, &refs),
            refused: vec![],
            through: 2_000,
        },
    )
    .await
    .expect("batch");
    let filter: kuvert_core::segment::Filter = serde_json::from_value(serde_json::json!(
        {"all": [{"property": {"name": "vip", "op": "eq", "value": true}}, {"property": {"name": "city", "op": "eq", "value": "Berlin"}}]}
    ))
    .expect("filter");
    assert_eq!(s.segment_count(&a.id, &filter).await.expect("count"), 1_000);
}

async fn double_opt_in_waits_for_the_link(f: &Fixture) {
    use kuvert_core::contact::{ConsentMethod, SubscriptionStatus};
    use kuvert_core::optin::LINK_LIFETIME_MS;
    use kuvert_store::{Confirmed, OptInAsk, OptInRequest, RESEND_AFTER_MS};
    let s = &f.store;
    let a = account(s, "optin@acme.example").await;
    let list = s
        .create_list(
            &a.id,
            kuvert_store::ListSettings {
                double_opt_in: true,
                public_form: true,
                record_source: true,
                confirm_from: Some("news@acme.example".into()),
                consent_text: Some("v2: monthly letter".into()),
                ..kuvert_store::ListSettings::named("letter")
            },
        )
        .await
        .expect("list");
    let (owner, found) = s.list_by_id(list.id.as_str()).await.expect("by id");
    assert_eq!(
        (owner, found.settings.clone()),
        (a.id.clone(), list.settings.clone())
    );
    let (ann, gone, bob) = (
        addr("ann@example.com"),
        addr("gone@example.com"),
        addr("bob@example.com"),
    );
    let ask = |address| OptInAsk {
        account: &a.id,
        list: &list,
        address,
        name: Some("Ann"),
        from_form: true,
    };
    let OptInRequest::Send(link) = s.request_opt_in(ask(&ann)).await.expect("ask") else {
        panic!("a first request sends a mail")
    };
    let c = s.contact(&a.id, "ann@example.com").await.expect("contact");
    assert_eq!(link.contact, c.id);
    assert_eq!(c.name.as_deref(), Some("Ann"));
    assert_eq!(c.subscriptions[0].status, SubscriptionStatus::Pending);
    assert!(
        c.consent.is_empty(),
        "no consent before the link: {:?}",
        c.consent
    );
    // Within the hour no second mail; after it, one.
    f.clock.advance_millis(RESEND_AFTER_MS - 1);
    assert_eq!(
        s.request_opt_in(ask(&ann)).await.expect("again"),
        OptInRequest::RecentlySent
    );
    f.clock.advance_millis(1);
    let OptInRequest::Send(link) = s.request_opt_in(ask(&ann)).await.expect("later") else {
        panic!("an hour later a request sends again")
    };
    // The link confirms once, with the consent recorded as double opt-in.
    assert_eq!(
        s.confirm_opt_in(&link, "198.51.100.9")
            .await
            .expect("confirm"),
        Confirmed::Now
    );
    assert_eq!(
        s.confirm_opt_in(&link, "198.51.100.9")
            .await
            .expect("twice"),
        Confirmed::Already
    );
    let c = s.contact(&a.id, "ann@example.com").await.expect("contact");
    assert_eq!(c.subscriptions[0].status, SubscriptionStatus::Subscribed);
    assert_eq!(c.consent.len(), 1, "{:?}", c.consent);
    assert_eq!(c.consent[0].method, ConsentMethod::DoubleOptIn);
    assert_eq!(
        c.consent[0].consent_text.as_deref(),
        Some("v2: monthly letter")
    );
    assert_eq!(c.consent[0].source.as_deref(), Some("198.51.100.9"));
    assert_eq!(
        s.request_opt_in(ask(&ann)).await.expect("subscribed"),
        OptInRequest::AlreadySubscribed
    );
    // A suppressed address gets no mail and no contact.
    s.add_suppression(&a.id, "gone@example.com", SuppressionReason::Complaint)
        .await
        .expect("suppress");
    assert_eq!(
        s.request_opt_in(ask(&gone)).await.expect("suppressed"),
        OptInRequest::Refused(SuppressionReason::Complaint)
    );
    assert!(matches!(
        s.contact(&a.id, "gone@example.com").await,
        Err(StoreError::NotFound(_))
    ));
    // An address nobody confirms: three mails an hour apart, then no more; a mail that could
    // not be sent does not count. Its subscription and the contact the form made go when
    // the last link expires; a confirmed one stays.
    let OptInRequest::Send(first) = s.request_opt_in(ask(&bob)).await.expect("bob") else {
        panic!("bob gets a mail")
    };
    s.opt_in_mail_failed(&first).await.expect("not sent");
    for _ in 0..kuvert_store::MAX_UNANSWERED {
        assert!(matches!(
            s.request_opt_in(ask(&bob)).await.expect("bob"),
            OptInRequest::Send(_)
        ));
        f.clock.advance_millis(RESEND_AFTER_MS);
    }
    assert_eq!(
        s.request_opt_in(ask(&bob)).await.expect("bob"),
        OptInRequest::RecentlySent,
        "no fourth unanswered mail"
    );
    f.clock
        .advance_millis(LINK_LIFETIME_MS - RESEND_AFTER_MS - 1);
    assert_eq!(s.purge_unconfirmed().await.expect("purge"), 0);
    f.clock.advance_millis(2);
    assert_eq!(s.purge_unconfirmed().await.expect("purge"), 2);
    // Its link then finds nothing to confirm (past its time the token is refused before).
    assert!(matches!(
        s.confirm_opt_in(&first, "198.51.100.9").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.contact(&a.id, "bob@example.com").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.contact(&a.id, "ann@example.com").await.is_ok());
    // Ann leaves the list; a request to rejoin leaves her out until she confirms.
    s.update_contact(
        &a.id,
        "ann@example.com",
        kuvert_store::ContactPatch {
            unsubscribe: vec![list.id.clone()],
            ..Default::default()
        },
    )
    .await
    .expect("leave");
    let OptInRequest::Send(again) = s.request_opt_in(ask(&ann)).await.expect("rejoin") else {
        panic!("a request to rejoin sends a mail")
    };
    let c = s.contact(&a.id, "ann@example.com").await.expect("contact");
    assert_eq!(c.subscriptions[0].status, SubscriptionStatus::Unsubscribed);
    assert_eq!(
        s.confirm_opt_in(&again, "198.51.100.9")
            .await
            .expect("confirm"),
        Confirmed::Now
    );
    let c = s.contact(&a.id, "ann@example.com").await.expect("contact");
    assert_eq!(c.subscriptions[0].status, SubscriptionStatus::Subscribed);
}

fn version(tag: Option<&str>, active: bool, content: &str) -> kuvert_store::NewVersion {
    kuvert_store::NewVersion {
        tag: tag.map(Into::into),
        comment: None,
        active,
        compiled: kuvert_template::compile(kuvert_template::Source {
            engine: kuvert_template::Engine::Html,
            content: content.into(),
            text: None,
            subject: Some("Hi {{name}}".into()),
            defaults: Default::default(),
        })
        .expect("compiles"),
    }
}

async fn templates_keep_one_active_version(f: &Fixture) {
    let s = &f.store;
    let a = account(s, "templates@acme.example").await;
    let b = account(s, "other@acme.example").await;
    let t = s
        .create_template(
            &a.id,
            "welcome",
            Some("first"),
            version(None, false, "<p>one {{name}}</p>"),
        )
        .await
        .expect("create");
    assert_eq!(t.active().map(|v| v.tag.as_str()), Some("v1"));
    assert!(matches!(
        s.create_template(&a.id, "welcome", None, version(None, true, "x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Another account may use the name, and sees nothing of A's.
    s.create_template(&b.id, "welcome", None, version(None, true, "<p>b</p>"))
        .await
        .expect("B's own");
    assert!(matches!(
        s.template_version(&b.id, "welcome", Some("v2")).await,
        Err(StoreError::NotFound(_))
    ));

    // A second version, not active: the first stays active; a third, active, takes over.
    let t = s
        .add_template_version(&a.id, "welcome", version(None, false, "<p>two</p>"))
        .await
        .expect("v2");
    assert_eq!(t.active().map(|v| v.tag.as_str()), Some("v1"));
    let t = s
        .add_template_version(
            &a.id,
            "welcome",
            version(Some("spring"), true, "<p>three</p>"),
        )
        .await
        .expect("spring");
    assert_eq!(t.versions.len(), 3);
    assert_eq!(t.versions.iter().filter(|v| v.active).count(), 1);
    assert_eq!(t.active().map(|v| v.tag.as_str()), Some("spring"));
    assert!(matches!(
        s.add_template_version(&a.id, "welcome", version(Some("spring"), false, "x"))
            .await,
        Err(StoreError::Conflict(_))
    ));

    // The active version is what a send without a tag gets; its content is sealed and opens.
    let v = s
        .template_version(&a.id, "welcome", None)
        .await
        .expect("active");
    assert_eq!(v.info.tag, "spring");
    assert_eq!(v.compiled.source.content, "<p>three</p>");
    let v1 = s
        .template_version(&a.id, "welcome", Some("v1"))
        .await
        .expect("v1");
    assert_eq!(v1.compiled.html, "<p>one {{name}}</p>");

    // Activation moves the one active flag; the active version cannot be deleted.
    let t = s
        .update_template_version(&a.id, "welcome", "v2", true, Some(Some("reverted")))
        .await
        .expect("activate");
    assert_eq!(t.active().map(|v| v.tag.as_str()), Some("v2"));
    assert_eq!(t.versions.iter().filter(|v| v.active).count(), 1);
    assert_eq!(
        t.active().and_then(|v| v.comment.as_deref()),
        Some("reverted")
    );
    assert!(matches!(
        s.delete_template_version(&a.id, "welcome", "v2").await,
        Err(StoreError::InUse(_))
    ));
    s.delete_template_version(&a.id, "welcome", "v1")
        .await
        .expect("delete v1");
    // B cannot reach A's template by name.
    assert!(matches!(
        s.delete_template_version(&b.id, "welcome", "spring").await,
        Err(StoreError::NotFound(_))
    ));
    let list = s.templates(&a.id).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0]
            .versions
            .iter()
            .map(|v| v.tag.as_str())
            .collect::<Vec<_>>()
            .len(),
        2
    );

    // Activations and new active versions at once: each succeeds or is refused cleanly, and
    // one version stays active.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let a = a.id.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                s.update_template_version(
                    &a,
                    "welcome",
                    if i % 4 == 0 { "v2" } else { "spring" },
                    true,
                    None,
                )
                .await
                .map(|_| ())
            } else {
                s.add_template_version(
                    &a,
                    "welcome",
                    version(Some(&format!("c{i}")), true, "<p>c</p>"),
                )
                .await
                .map(|_| ())
            }
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("each change succeeds");
    }
    let t = s.template(&a.id, "welcome").await.expect("template");
    assert_eq!(
        t.versions.iter().filter(|v| v.active).count(),
        1,
        "{:?}",
        t.versions
    );
    assert_eq!(t.versions.len(), 6);

    s.delete_template(&a.id, "welcome").await.expect("delete");
    assert!(s.templates(&a.id).await.expect("list").is_empty());
    assert_eq!(s.templates(&b.id).await.expect("B's").len(), 1);
}

async fn campaigns_are_claimed_once_and_keep_their_progress(f: &Fixture) {
    use kuvert_core::campaign::{Audience, CampaignState};
    let s = &f.store;
    let a = account(s, "campaigns@acme.example").await;
    let b = account(s, "other-campaigns@acme.example").await;
    let list = s
        .create_list(&a.id, kuvert_store::ListSettings::named("news"))
        .await
        .expect("list");
    let settings = kuvert_store::CampaignSettings {
        name: "spring".into(),
        from: "News <news@acme.example>".into(),
        reply_to: None,
        subject: Some("Spring".into()),
        template: "note".into(),
        version: None,
        audience: Audience {
            lists: vec![list.id.to_string()],
            segments: Vec::new(),
        },
        send_at: Some(Timestamp(START.0 + 3_600_000)),
        per_hour: None,
        max_errors: 3,
        ab: None,
    };
    // B cannot name A's list.
    assert!(matches!(
        s.create_campaign(&b.id, settings.clone()).await,
        Err(StoreError::NotFound(_))
    ));
    let c = s.create_campaign(&a.id, settings).await.expect("draft");
    assert_eq!(c.settings.from, "News <news@acme.example>");
    assert!(
        s.claim_campaign("n1", 60_000)
            .await
            .expect("claim")
            .is_none(),
        "a draft is not due"
    );
    s.set_campaign_state(&a.id, c.id.as_str(), CampaignState::Scheduled, None)
        .await
        .expect("schedule");
    assert!(
        s.claim_campaign("n1", 60_000)
            .await
            .expect("claim")
            .is_none(),
        "not before its time"
    );
    assert!(matches!(
        s.set_campaign_state(&a.id, c.id.as_str(), CampaignState::Sending, None)
            .await,
        Err(StoreError::InUse(_))
    ));
    f.clock.advance_millis(3_600_000);
    let work = s
        .claim_campaign("n1", 60_000)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(work.campaign.state, CampaignState::Sending);
    assert!(
        s.claim_campaign("n2", 60_000)
            .await
            .expect("claim")
            .is_none(),
        "held by n1"
    );
    let page = kuvert_store::CampaignProgress {
        cursor: Some("con_5".into()),
        sent: 5,
        skipped: 1,
        errors: 0,
        last_error: None,
    };
    assert!(
        !s.campaign_progress(&c.id, "n2", &page, 60_000, false, false)
            .await
            .expect("n2")
    );
    assert!(
        s.campaign_progress(&c.id, "n1", &page, 60_000, false, false)
            .await
            .expect("n1")
    );
    // n1 dies; after its lease, n2 takes over where n1's last page ended.
    f.clock.advance_millis(61_000);
    let work = s
        .claim_campaign("n2", 60_000)
        .await
        .expect("claim")
        .expect("due again");
    assert_eq!(work.cursor.as_deref(), Some("con_5"));
    assert_eq!((work.campaign.sent, work.campaign.skipped), (5, 1));
    // Paused by the account: n2's next page is not recorded, and the state stays.
    s.set_campaign_state(&a.id, c.id.as_str(), CampaignState::Paused, None)
        .await
        .expect("pause");
    assert!(
        !s.campaign_progress(&c.id, "n2", &page, 60_000, false, false)
            .await
            .expect("n2")
    );
    s.set_campaign_state(&a.id, c.id.as_str(), CampaignState::Sending, None)
        .await
        .expect("resume");
    let work = s
        .claim_campaign("n1", 60_000)
        .await
        .expect("claim")
        .expect("resumed");
    assert!(
        s.campaign_progress(
            &work.campaign.id,
            "n1",
            &kuvert_store::CampaignProgress::default(),
            60_000,
            true,
            false
        )
        .await
        .expect("finish")
    );
    let done = s.campaign(&a.id, c.id.as_str()).await.expect("campaign");
    assert_eq!(done.state, CampaignState::Sent);
    assert!(done.finished_at.is_some());
    assert!(matches!(
        s.delete_campaign(&a.id, c.id.as_str()).await,
        Err(StoreError::InUse(_))
    ));
    assert!(matches!(
        s.campaign(&b.id, c.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A fetched MTA-STS policy is kept until it expires; TLS sessions add up per day, domain,
/// host and result; a day's report is claimed once, and its counts go once it is sent.
async fn mta_sts_policies_and_tls_sessions(f: &Fixture) {
    use kuvert_core::mta_sts::{ResultType, StsPolicy};
    use kuvert_store::{CachedPolicy, TlsSessions};
    let s = &f.store;
    assert_eq!(s.sts_policy("a.test").await.expect("store"), None);
    let policy = StsPolicy::parse("version: STSv1\nmode: enforce\nmx: *.a.test\nmax_age: 60")
        .expect("store");
    let cached = CachedPolicy {
        id: "1".into(),
        policy: policy.clone(),
        expires_at: f.clock.now().plus_millis(60_000),
    };
    s.save_sts_policy("a.test", &cached).await.expect("store");
    assert_eq!(
        s.sts_policy("a.test").await.expect("store"),
        Some(cached.clone())
    );
    let newer = CachedPolicy {
        id: "2".into(),
        ..cached.clone()
    };
    s.save_sts_policy("a.test", &newer).await.expect("store");
    assert_eq!(
        s.sts_policy("a.test")
            .await
            .expect("store")
            .expect("store")
            .id,
        "2"
    );
    // Saving another policy after this one expired forgets it.
    f.clock.advance_millis(61_000);
    s.save_sts_policy("b.test", &cached).await.expect("store");
    assert_eq!(s.sts_policy("a.test").await.expect("store"), None);

    let lines = policy.lines();
    let add = |day: i64, mx: &str, result: Option<ResultType>, count: u64| TlsSessions {
        day,
        policy_domain: "a.test".to_owned(),
        policy_id: "2".to_owned(),
        mx_host: mx.to_owned(),
        result,
        policy: lines.clone(),
        count,
    };
    s.add_tls_sessions(&[
        add(10, "mx.a.test", None, 3),
        add(10, "mx.a.test", Some(ResultType::CertificateExpired), 1),
    ])
    .await
    .expect("store");
    s.add_tls_sessions(&[add(10, "mx.a.test", None, 2), add(11, "mx.a.test", None, 1)])
        .await
        .expect("store");
    // A day on which the policy could not be read once: a second entry, with no policy.
    s.add_tls_sessions(&[TlsSessions {
        policy_id: String::new(),
        policy: vec![],
        ..add(10, "", Some(ResultType::StsPolicyFetchError), 1)
    }])
    .await
    .expect("store");
    let day = s.tls_sessions(10, "a.test").await.expect("store");
    assert_eq!(day.len(), 2, "{day:?}");
    assert!(day[0].policy.is_empty());
    assert_eq!(
        day[0].sessions[0].result,
        Some(ResultType::StsPolicyFetchError)
    );
    assert_eq!(day[1].policy, lines);
    let counts: Vec<_> = day[1]
        .sessions
        .iter()
        .map(|c| (c.result, c.count))
        .collect();
    assert_eq!(
        counts,
        [(None, 5), (Some(ResultType::CertificateExpired), 1)]
    );
    assert_eq!(
        s.tls_reports_due(12).await.expect("store"),
        [(10, "a.test".to_owned()), (11, "a.test".to_owned())]
    );
    assert_eq!(
        s.tls_reports_due(11).await.expect("store"),
        [(10, "a.test".to_owned())]
    );
    assert!(s.claim_tls_report(10, "a.test").await.expect("store"));
    assert!(
        !s.claim_tls_report(10, "a.test").await.expect("store"),
        "claimed once"
    );
    assert_eq!(s.tls_reports_due(11).await.expect("store"), []);
    s.release_tls_report(10, "a.test").await.expect("store");
    assert!(
        s.claim_tls_report(10, "a.test").await.expect("store"),
        "given back"
    );
    s.tls_report_sent(10, "a.test", "mailto:r@a.test", 0)
        .await
        .expect("store");
    assert_eq!(s.tls_sessions(10, "a.test").await.expect("store"), []);
    assert!(
        !s.claim_tls_report(10, "a.test").await.expect("store"),
        "sent once"
    );
    assert_eq!(s.forget_tls_sessions_before(12).await.expect("store"), 1);
    assert_eq!(s.tls_reports_due(13).await.expect("store"), []);
}
