//! The monthly quota under concurrency: many senders at once never take an account past it
//! (the check is repeated in the commit's transaction).

use kuvert_core::Mailbox;
use kuvert_core::account::{Plan, PlanLimits};
use kuvert_core::submission::{Limits, Submission};
use kuvert_submit::{AcceptError, Acceptor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_senders_never_pass_the_monthly_quota() {
    const QUOTA: u64 = 100;
    const PER_MESSAGE: usize = 7;
    let kuvert_testkit::World {
        dir: _dir,
        store,
        account,
        ..
    } = kuvert_testkit::world("quota.example", Plan::Free).await;
    let limits = PlanLimits {
        monthly_quota: QUOTA,
        ..Plan::Free.default_limits()
    };
    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Free, limits)].into(),
    );
    let senders: Vec<_> = (0..40)
        .map(|i| {
            let (acceptor, account) = (acceptor.clone(), account.id.clone());
            tokio::spawn(async move {
                let to = (0..PER_MESSAGE)
                    .map(|r| Mailbox::parse(&format!("r{i}-{r}@example.com")).expect("to"))
                    .collect();
                let s = Submission::plain(
                    Mailbox::parse("news@quota.example").expect("from"),
                    to,
                    "Hello",
                    "Hi.",
                );
                acceptor.accept(&account, s).await
            })
        })
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for s in senders {
        match s.await.expect("sender") {
            Ok(a) => accepted += a.recipients.len(),
            Err(AcceptError::QuotaExceeded { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        accepted as u64 <= QUOTA,
        "{accepted} recipients accepted against a quota of {QUOTA}"
    );
    assert_eq!(accepted, (QUOTA as usize / PER_MESSAGE) * PER_MESSAGE);
    assert_eq!(refused, 40 - QUOTA as usize / PER_MESSAGE);
}
