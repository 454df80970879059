//! What the acceptor registers for `/metrics`: the counts and the accept latency histogram
//! in the shape Prometheus (and the relay benchmark) reads.

use kuvert_core::Mailbox;
use kuvert_core::account::Plan;
use kuvert_core::submission::{Limits, Submission};
use kuvert_submit::Acceptor;
use prometheus_client::registry::Registry;

#[tokio::test]
async fn accepted_messages_are_counted_and_timed() {
    let world = kuvert_testkit::world("metrics.example", Plan::Free).await;
    let acceptor = Acceptor::new(
        world.store.clone(),
        Limits::default(),
        [(Plan::Free, Plan::Free.default_limits())].into(),
    );
    let mut registry = Registry::default();
    acceptor.register_metrics(&mut registry);
    for _ in 0..2 {
        let to = vec![
            Mailbox::parse("a@example.com").expect("to"),
            Mailbox::parse("b@example.com").expect("to"),
        ];
        let s = Submission::plain(
            Mailbox::parse("news@metrics.example").expect("from"),
            to,
            "Hello",
            "Hi.",
        );
        acceptor
            .accept(&world.account.id, s)
            .await
            .expect("accepted");
    }
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("text");
    let lines: Vec<&str> = out.lines().collect();
    for line in [
        "kuvert_messages_accepted_total 2",
        "kuvert_recipients_queued_total 4",
        "kuvert_recipients_dropped_total 0",
        "kuvert_accept_duration_seconds_count 2",
        "kuvert_accept_duration_seconds_bucket{le=\"+Inf\"} 2",
        "# TYPE kuvert_accept_duration_seconds histogram",
    ] {
        assert!(lines.contains(&line), "{line} in:\n{out}");
    }
    // Buckets are cumulative, in seconds, from half a millisecond.
    let buckets: Vec<(f64, u64)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("kuvert_accept_duration_seconds_bucket{le=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(le, n)| (le.parse().expect("a bound"), n.parse().expect("a count")))
        .collect();
    assert_eq!(buckets.len(), 21, "{out}");
    assert_eq!(buckets[0].0, 0.0005);
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
}
