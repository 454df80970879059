//! Quotas under concurrency: many senders at once never take an account past its month's,
//! day's or hour's limit (the check is repeated in the commit's transaction), and a new
//! account's warm-up rises day by day on a moved clock.

use kuvert_core::account::{Plan, PlanLimits};
use kuvert_core::submission::{Limits, Submission};
use kuvert_core::{Clock, Mailbox};
use kuvert_submit::{AcceptError, Acceptor};

/// A store with an account of the free plan, and an acceptor holding it to `limits`.
async fn world(limits: PlanLimits) -> (kuvert_testkit::World, Acceptor) {
    let w = kuvert_testkit::world("quota.example", Plan::Free).await;
    let acceptor = Acceptor::new(
        w.store.clone(),
        Limits::default(),
        [(Plan::Free, limits)].into(),
    );
    (w, acceptor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_senders_never_pass_the_monthly_quota() {
    const QUOTA: u64 = 100;
    const PER_MESSAGE: usize = 7;
    let (w, acceptor) = world(PlanLimits {
        monthly_quota: QUOTA,
        ..Plan::Free.default_limits()
    })
    .await;
    let account = &w.account;
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

/// `n` senders at once, each with a message of `per_message` recipients; the recipients
/// accepted, and the refusals (each must be a quota's).
async fn burst(
    acceptor: &Acceptor,
    account: &kuvert_core::id::AccountId,
    n: usize,
    per_message: usize,
    round: usize,
) -> (usize, Vec<kuvert_core::quota::QuotaExceeded>) {
    let senders: Vec<_> = (0..n)
        .map(|i| {
            let (acceptor, account) = (acceptor.clone(), account.clone());
            tokio::spawn(async move {
                let to = (0..per_message)
                    .map(|r| Mailbox::parse(&format!("r{round}-{i}-{r}@example.com")).expect("to"))
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
    let (mut accepted, mut refused) = (0, Vec::new());
    for s in senders {
        match s.await.expect("sender") {
            Ok(a) => accepted += a.recipients.len(),
            Err(AcceptError::QuotaExceeded(q)) => refused.push(q),
            Err(e) => panic!("{e}"),
        }
    }
    (accepted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_senders_never_pass_the_hourly_or_daily_limit() {
    use kuvert_core::quota::QuotaPeriod;
    let (w, acceptor) = world(PlanLimits {
        monthly_quota: 1_000,
        daily_limit: 100,
        hourly_limit: 50,
        ..Plan::Free.default_limits()
    })
    .await;
    let (account, clock) = (&w.account, &w.clock);
    // The first hour: 7 messages of 7 fit in 50.
    let (accepted, refused) = burst(&acceptor, &account.id, 40, 7, 0).await;
    assert_eq!(accepted, 49);
    assert_eq!(refused.len(), 33);
    assert!(
        refused.iter().all(|q| q.period == QuotaPeriod::Hour),
        "{refused:?}"
    );
    let resets = QuotaPeriod::Hour.resets_at(clock.now());
    assert_eq!(refused[0].resets_at, resets);
    assert_eq!(
        refused[0].retry_after_s,
        ((resets.millis() - clock.now().millis()) as u64).div_ceil(1000)
    );
    // The next hour: the hour's 50 again, and the day's 51 left allow 7 more messages.
    clock.set(resets);
    let (accepted, _) = burst(&acceptor, &account.id, 40, 7, 1).await;
    assert_eq!(accepted, 49);
    // The hour after: the day has 2 left, too few for any message, and says so.
    clock.advance_millis(3_600_000);
    let (accepted, refused) = burst(&acceptor, &account.id, 10, 7, 2).await;
    assert_eq!(accepted, 0);
    assert!(
        refused.iter().all(|q| q.period == QuotaPeriod::Day),
        "{refused:?}"
    );
    assert_eq!(refused[0].used, 98);
    assert!(
        refused[0].to_string().starts_with(
            "the daily limit of 100 recipients is reached (98 sent today); it resets at "
        ),
        "{}",
        refused[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_account_warms_up_day_by_day() {
    use kuvert_core::quota::QuotaPeriod;
    let (w, acceptor) = world(PlanLimits {
        monthly_quota: 1_000,
        daily_limit: 100,
        hourly_limit: 100,
        warmup_first_day: 20,
        ..Plan::Free.default_limits()
    })
    .await;
    let (store, account, clock) = (&w.store, &w.account, &w.clock);
    store
        .set_warmup(&account.id, Some(clock.now()))
        .await
        .expect("a warm-up");
    // Day by day: 20, 40, 80, then the plan's 100.
    for (day, want) in [20, 40, 80, 100].into_iter().enumerate() {
        let (accepted, refused) = burst(&acceptor, &account.id, 110, 1, day).await;
        assert_eq!(accepted, want, "day {day}");
        assert!(
            refused
                .iter()
                .all(|q| q.period == QuotaPeriod::Day && q.limit == want as u64)
        );
        clock.advance_millis(86_400_000);
    }
}
