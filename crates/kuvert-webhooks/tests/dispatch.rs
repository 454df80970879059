//! The dispatcher against a receiver on loopback: every event arrives signed, a receiver
//! that fails gets its events later and in order, and the clock (not sleeping) drives the
//! retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kuvert_core::account::Plan;
use kuvert_core::event::EventType;
use kuvert_core::submission::{Limits, Submission};
use kuvert_core::{Clock, Mailbox, ManualClock};
use kuvert_store::Store;
use kuvert_submit::Acceptor;
use kuvert_webhooks::{Dispatcher, WebhookConfig, signature};
use serde_json::Value;

#[derive(Default)]
struct Receiver {
    /// Answer 500 while this is above 0, counting down.
    failures: Mutex<u32>,
    got: Mutex<Vec<Value>>,
    attempts: Mutex<u32>,
}

async fn receive(State(r): State<Arc<Receiver>>, Json(body): Json<Value>) -> StatusCode {
    *r.attempts.lock().expect("lock") += 1;
    let mut f = r.failures.lock().expect("lock");
    if *f > 0 {
        *f -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.got.lock().expect("lock").push(body);
    StatusCode::OK
}

/// A store on a temporary directory, its clock, and an account with the sandbox domain
/// `hooks.test`.
async fn world() -> (tempfile::TempDir, ManualClock, Store, kuvert_store::Account) {
    let w = kuvert_testkit::world("hooks.test", Plan::Free).await;
    (w.dir, w.clock, w.store, w.account)
}

fn submission(to: &str) -> Submission {
    let mut s = Submission::plain(
        Mailbox::parse("news@hooks.test").expect("from"),
        vec![Mailbox::parse(to).expect("to")],
        "s",
        "t",
    );
    s.tags = vec!["t1".into()];
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_signed_and_in_order_after_failures() {
    let receiver = Arc::new(Receiver {
        failures: Mutex::new(2),
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (_dir, clock, store, account) = world().await;
    let key = kuvert_webhooks::new_signing_key();
    store
        .create_webhook(&account.id, &url, &[], &key)
        .await
        .expect("webhook");
    // A second endpoint that wants only drops: it must get none of the accepted events.
    let drops = store
        .create_webhook(&account.id, &url, &[EventType::Dropped], &key)
        .await
        .expect("webhook");
    // Listed together, each endpoint with its own event types (none: every event).
    let mut listed: Vec<Vec<EventType>> = store
        .list_webhooks(&account.id)
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.events)
        .collect();
    listed.sort();
    assert_eq!(listed, [vec![], vec![EventType::Dropped]]);

    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Free, Plan::Free.default_limits())].into(),
    );
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(
            acceptor
                .accept(&account.id, submission(&format!("r{i}@example.com")))
                .await
                .expect("accepted")
                .id
                .to_string(),
        );
    }
    let config = WebhookConfig {
        allow_private: true,
        ..WebhookConfig::default()
    };
    let dns = kuvert_dns::Dns::new(&[], kuvert_dns::Caching::Off).expect("dns");
    let dispatcher = Dispatcher::start(store.clone(), config, dns);

    // Two failures, each followed by a wait of the schedule: 10 s, then 30 s.
    let wait_attempts = |n: u32| {
        let r = receiver.clone();
        async move {
            for _ in 0..200 {
                if *r.attempts.lock().expect("lock") >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("never reached {n} attempts");
        }
    };
    wait_attempts(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        *receiver.attempts.lock().expect("lock"),
        1,
        "nothing else goes while the head fails"
    );
    clock.advance_millis(10_000);
    dispatcher.wake();
    wait_attempts(2).await;
    clock.advance_millis(30_000);
    dispatcher.wake();
    wait_attempts(7).await;

    let got = receiver.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 5, "{got:?}");
    let order: Vec<&str> = got
        .iter()
        .filter_map(|b| b["event-data"]["message-id"].as_str())
        .collect();
    assert_eq!(
        order,
        sent.iter().map(String::as_str).collect::<Vec<_>>(),
        "in the order they happened"
    );
    for body in &got {
        assert_eq!(body["event-data"]["event"], "accepted");
        assert_eq!(body["event-data"]["tags"], serde_json::json!(["t1"]));
        let s = &body["signature"];
        let (ts, token) = (
            s["timestamp"].as_str().expect("timestamp"),
            s["token"].as_str().expect("token"),
        );
        assert_eq!(
            s["signature"].as_str(),
            Some(signature(&key, ts, token).as_str())
        );
        assert_eq!(ts, (clock.now().millis() / 1000).to_string().as_str());
    }
    let deliveries = store
        .webhook_deliveries(&account.id, drops.id.as_str(), 10)
        .await
        .expect("deliveries");
    assert!(deliveries.is_empty(), "the drops-only endpoint got nothing");
}

/// DNS rebinding: a name that was public when the endpoint was saved, and points at
/// loopback when the event is sent. The request must go to the addresses that were checked,
/// so it is refused, and the receiver on loopback never hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_rebound_to_loopback_after_its_check_is_never_reached() {
    let receiver = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let names = kuvert_testkit::DnsServer::start();
    names.add_a("hook.rebind.test", "93.184.215.14".parse().expect("ip"));
    let dns = || kuvert_dns::Dns::new(&[names.addr()], kuvert_dns::Caching::Off).expect("dns");
    let url = format!("http://hook.rebind.test:{port}/hook");
    kuvert_webhooks::check_url(&url, &dns(), false)
        .await
        .expect("public when saved");
    // The name now points elsewhere (a rebinding server answers so on its second query).
    names.remove("hook.rebind.test", kuvert_testkit::dns::RecordType::A);
    names.add_a("hook.rebind.test", std::net::Ipv4Addr::LOCALHOST);
    assert!(
        kuvert_webhooks::check_url(&url, &dns(), false)
            .await
            .is_err(),
        "checked again, it is refused"
    );

    let (_dir, _clock, store, account) = world().await;
    let hook = store
        .create_webhook(&account.id, &url, &[], &kuvert_webhooks::new_signing_key())
        .await
        .expect("webhook");
    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Free, Plan::Free.default_limits())].into(),
    );
    acceptor
        .accept(&account.id, submission("r@example.com"))
        .await
        .expect("accepted");
    let _dispatcher = Dispatcher::start(store.clone(), WebhookConfig::default(), dns());
    let mut last_error = None;
    for _ in 0..200 {
        let deliveries = store
            .webhook_deliveries(&account.id, hook.id.as_str(), 10)
            .await
            .expect("deliveries");
        if let Some(e) = deliveries.iter().find_map(|d| d.last_error.clone()) {
            last_error = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let last_error = last_error.expect("an attempt was made and failed");
    assert!(last_error.contains("127.0.0.1"), "{last_error}");
    assert_eq!(*receiver.attempts.lock().expect("lock"), 0);
}

/// Mailjet's version 2: the events of one second go in one array, in order; a later second's
/// in a request of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailjet_version_2_groups_a_second_of_events() {
    let receiver = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (_dir, clock, store, account) = world().await;
    store
        .register_webhook(
            &account.id,
            kuvert_store::NewWebhook {
                url: &url,
                events: &[EventType::Dropped],
                signing_key: &kuvert_webhooks::new_signing_key(),
                format: kuvert_core::webhook::WebhookFormat::MailjetV2,
                domain_id: None,
            },
        )
        .await
        .expect("webhook");
    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Free, Plan::Free.default_limits())].into(),
    );
    // Sends to suppressed addresses are dropped: Mailjet's `blocked`. Three in one second
    // (the clock stands still), then one two seconds later.
    let drop_to = async |to: &str| {
        store
            .add_suppression(
                &account.id,
                to,
                kuvert_core::event::SuppressionReason::Bounce,
            )
            .await
            .expect("suppressed");
        acceptor
            .accept(&account.id, submission(to))
            .await
            .expect("accepted");
    };
    for to in ["g1@example.com", "g2@example.com", "g3@example.com"] {
        drop_to(to).await;
    }
    clock.advance_millis(2_000);
    drop_to("g4@example.com").await;
    let config = WebhookConfig {
        allow_private: true,
        ..WebhookConfig::default()
    };
    let dns = kuvert_dns::Dns::new(&[], kuvert_dns::Caching::Off).expect("dns");
    let _dispatcher = Dispatcher::start(store.clone(), config, dns);
    for _ in 0..200 {
        if receiver.got.lock().expect("lock").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = receiver.got.lock().expect("lock").clone();
    let requests: Vec<Vec<&str>> = got
        .iter()
        .map(|b| {
            b.as_array()
                .expect("an array")
                .iter()
                .map(|e| {
                    assert_eq!(e["event"], "blocked", "{e}");
                    e["email"].as_str().expect("email")
                })
                .collect()
        })
        .collect();
    assert_eq!(
        requests,
        [
            vec!["g1@example.com", "g2@example.com", "g3@example.com"],
            vec!["g4@example.com"]
        ],
        "a second's events together, in order, and nothing twice"
    );
}
