//! Inactive accounts on a moved clock: told at 12 months without activity, deleted 30 days
//! after that if still inactive, and not a day before; sending in between saves the account.

use std::sync::Arc;
use std::time::Duration;

use kuvert_admin::inactivity::{InactivityCounts, InactivityPolicy, handle_inactive};
use kuvert_admin::notices::Notices;
use kuvert_core::account::{AccountStatus, Plan};
use kuvert_core::domain::DomainSettings;
use kuvert_core::id::AccountId;
use kuvert_core::submission::{Limits, Submission};
use kuvert_core::{Mailbox, ManualClock, Timestamp};
use kuvert_store::{EventFilter, Store, StoreOptions};
use kuvert_submit::Acceptor;

const START: Timestamp = Timestamp(1_795_000_000_000); // 2026-11-18

async fn account(store: &Store, name: &str) -> AccountId {
    let (owner, domain) = (format!("{name}@owners.example"), format!("{name}.example"));
    kuvert_testkit::world::sandbox_account(store, &owner, &domain, Plan::Free)
        .await
        .0
        .id
}

fn message(from_domain: &str) -> Submission {
    Submission::plain(
        Mailbox::parse(&format!("news@{from_domain}")).expect("from"),
        vec![Mailbox::parse("reader@example.com").expect("to")],
        "News",
        "Hello",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_accounts_are_told_then_deleted() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = ManualClock::new(START);
    let store = Store::open(StoreOptions {
        url: StoreOptions::sqlite_url(dir.path()),
        master_key: [9; 32],
        clock: Arc::new(clock.clone()),
    })
    .await
    .expect("store");
    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Free, Plan::Free.default_limits())].into(),
    );
    let notices = Notices::open(
        &store,
        acceptor.clone(),
        "Kuvert <notices@platform.example>",
        &DomainSettings::default(),
    )
    .await
    .expect("notices");
    let idle = account(&store, "idle").await;
    let revived = account(&store, "revived").await;
    let busy = account(&store, "busy").await;
    let policy = InactivityPolicy {
        notice_after_months: 12,
        delete_after: Duration::from_secs(30 * 86_400),
        purge_after: Duration::from_secs(90 * 86_400),
    };
    let run = || handle_inactive(&store, &notices, &policy);
    let status = |a: AccountId| {
        let store = store.clone();
        async move { store.account_state(&a).await.expect("state").status }
    };

    clock.set(START.months_after(6));
    acceptor
        .accept(&busy, message("busy.example"))
        .await
        .expect("sent");

    clock.set(START.months_after(12).plus_days(-1));
    assert_eq!(
        run().await.expect("run"),
        InactivityCounts::default(),
        "not before 12 months"
    );

    clock.set(START.months_after(12));
    assert_eq!(
        run().await.expect("run"),
        InactivityCounts {
            notified: 2,
            deleted: 0
        }
    );
    let told: Vec<String> = store
        .list_events(
            notices.account(),
            &EventFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.recipient)
        .collect();
    assert_eq!(
        {
            let mut t = told.clone();
            t.sort();
            t
        },
        ["idle@owners.example", "revived@owners.example"],
        "the notices went through Kuvert, from the system account"
    );
    assert_eq!(
        run().await.expect("run"),
        InactivityCounts::default(),
        "told once"
    );

    clock.set(START.months_after(12).plus_days(10));
    acceptor
        .accept(&revived, message("revived.example"))
        .await
        .expect("sent");

    clock.set(START.months_after(12).plus_days(29));
    assert_eq!(run().await.expect("run").deleted, 0, "not a day early");
    assert_eq!(status(idle.clone()).await, AccountStatus::Active);

    clock.set(START.months_after(12).plus_days(30));
    assert_eq!(
        run().await.expect("run"),
        InactivityCounts {
            notified: 0,
            deleted: 1
        }
    );
    assert_eq!(status(idle.clone()).await, AccountStatus::Closed);
    assert_eq!(
        status(revived).await,
        AccountStatus::Active,
        "sending saved it"
    );
    assert_eq!(status(busy).await, AccountStatus::Active);
    assert_eq!(
        status(notices.account().clone()).await,
        AccountStatus::Active
    );
    store.close().await;
}
