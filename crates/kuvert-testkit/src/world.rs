//! A store on a temporary directory with a clock the test moves, and an account that owns a
//! sandbox domain: where the tests below the binary (and the benches) start.

use std::path::Path;
use std::sync::Arc;

use kuvert_core::account::Plan;
use kuvert_core::domain::DomainSettings;
use kuvert_core::{Clock, ManualClock, Timestamp};
use kuvert_store::{Account, Domain, Store, StoreOptions};

/// 2026-11-18, the day most tests start on.
pub const START: Timestamp = Timestamp(1_795_000_000_000);

/// The password of every account made here.
pub const PASSWORD: &str = "s3cret-pass";

pub struct World {
    /// Holds the store's files; they go with it.
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub store: Store,
    pub account: Account,
    pub domain: Domain,
}

/// A store (SQLite in a new directory, the clock at [`START`]) and an account of `plan`
/// whose owner is `owner@DOMAIN`, with the sandbox domain `domain`.
pub async fn world(domain: &str, plan: Plan) -> World {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let clock = ManualClock::new(START);
    let store = store_at(dir.path(), Arc::new(clock.clone())).await;
    let (account, domain) = sandbox_account(&store, &format!("owner@{domain}"), domain, plan).await;
    World {
        dir,
        clock,
        store,
        account,
        domain,
    }
}

/// A store on SQLite in `dir`, with a fixed master key.
pub async fn store_at(dir: &Path, clock: Arc<dyn Clock>) -> Store {
    Store::open(StoreOptions {
        url: StoreOptions::sqlite_url(dir),
        master_key: [9; 32],
        clock,
    })
    .await
    .expect("the store opens")
}

/// An account of `plan` owned by `owner`, with `domain` as its sandbox domain (no DNS
/// needed to send from it).
pub async fn sandbox_account(
    store: &Store,
    owner: &str,
    domain: &str,
    plan: Plan,
) -> (Account, Domain) {
    let (account, _) = kuvert_admin::create_account(
        store,
        kuvert_admin::AccountRequest {
            email: owner.to_owned(),
            password: PASSWORD.into(),
            plan,
            region: Default::default(),
            company: Default::default(),
            owner: Default::default(),
        },
    )
    .await
    .expect("the account is made");
    // Test accounts start warmed up; a test of the warm-up starts one.
    store
        .set_warmup(&account.id, None)
        .await
        .expect("the warm-up is ended");
    let (domain, _) =
        kuvert_admin::add_domain(store, &account.id, domain, &DomainSettings::default(), true)
            .await
            .expect("the domain is added");
    (account, domain)
}

/// The addresses an account's messages were accepted for, newest first (at most 1,000): what
/// the notices account told whom, say.
pub async fn accepted_for(store: &Store, account: &kuvert_core::id::AccountId) -> Vec<String> {
    store
        .list_events(
            account,
            &kuvert_store::EventFilter {
                types: vec![kuvert_core::event::EventType::Accepted],
                limit: 1_000,
                ..Default::default()
            },
        )
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.recipient)
        .collect()
}
