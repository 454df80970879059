//! Every outcome of delivery, against the testkit's SMTP sink and DNS server on loopback: the
//! engine runs in this process on a real store, messages enter through the real `accept()`,
//! and time moves only when a test moves the clock.

use std::net::Ipv4Addr;
use std::time::Duration;

use kuvert_core::account::Plan;
use kuvert_core::domain::DomainSettings;
use kuvert_core::event::{EventDetails, EventType, RecipientStatus};
use kuvert_core::id::AccountId;
use kuvert_core::submission::{Limits, Submission};
use kuvert_core::{Clock, Mailbox, ManualClock, Timestamp};
use kuvert_dns::Dns;
use kuvert_mail::smtp::Reply;
use kuvert_mail::verp::{self, VerpTarget};
use kuvert_mta::{DeliveryConfig, Engine};
use kuvert_store::{EventFilter, EventRecord, Store};
use kuvert_submit::{Accepted, Acceptor};
use kuvert_testkit::{Behaviour, DnsServer, SinkOptions, SmtpSink};

const FROM_DOMAIN: &str = "news.sender.test";

struct World {
    _dir: tempfile::TempDir,
    clock: ManualClock,
    store: Store,
    acceptor: Acceptor,
    engine: Engine,
    sink: SmtpSink,
    dns: DnsServer,
    account: AccountId,
}

async fn world(
    sink: SinkOptions,
    tweak: impl FnOnce(&mut DeliveryConfig, &SmtpSink, &std::path::Path),
) -> World {
    let kuvert_testkit::World {
        dir,
        clock,
        store,
        account,
        ..
    } = kuvert_testkit::world(FROM_DOMAIN, Plan::Premium).await;
    let settings = DomainSettings::default();

    let sink = SmtpSink::start(sink);
    let dns = DnsServer::start();
    dns.add_mx("example.test", 10, "mx.example.test");
    dns.add_mx("other.test", 10, "mx.example.test");
    dns.add_a("mx.example.test", Ipv4Addr::LOCALHOST);
    dns.add_null_mx("nullmx.test");
    dns.add_mx("noaddress.test", 10, "mx.noaddress.test");

    let mut config = DeliveryConfig {
        mx_port: sink.addr().port(),
        ..DeliveryConfig::default()
    };
    config.timeouts.idle = kuvert_core::duration::HumanDuration::secs(30);
    tweak(&mut config, &sink, dir.path());
    let engine = Engine::start(
        store.clone(),
        config,
        Dns::new(&[dns.addr()], kuvert_dns::Caching::On).expect("dns"),
        &settings,
        "test-node",
    );
    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Premium, Plan::Premium.default_limits())].into(),
    )
    .notify_on_queue(engine.waker());
    World {
        _dir: dir,
        clock,
        store,
        acceptor,
        engine,
        sink,
        dns,
        account: account.id,
    }
}

fn submission(to: &[&str]) -> Submission {
    let mut s = Submission::plain(
        Mailbox::parse(&format!("News <news@{FROM_DOMAIN}>")).expect("from"),
        to.iter().map(|t| Mailbox::parse(t).expect("to")).collect(),
        "Hello there",
        "First line.\r\n.A line that starts with a dot.\r\n",
    );
    s.tags = vec!["t1".into()];
    s
}

impl World {
    async fn send(&self, sub: Submission) -> Accepted {
        self.acceptor
            .accept(&self.account, sub)
            .await
            .expect("accepted")
    }

    /// Waits (in real time, bounded) until the recipient reaches `want`.
    async fn wait_for(&self, sent: &Accepted, email: &str, want: RecipientStatus) {
        for _ in 0..200 {
            let m = self
                .store
                .message(&self.account, sent.id.as_str())
                .await
                .expect("message");
            let r = m
                .recipients
                .iter()
                .find(|r| r.email == email)
                .expect("recipient");
            if r.status == want && self.engine.in_flight() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let m = self
            .store
            .message(&self.account, sent.id.as_str())
            .await
            .expect("message");
        panic!(
            "{email} never became {want}: {:?}\nevents: {:?}",
            m.recipients,
            self.events(EventType::Deferred).await
        );
    }

    /// Sends a message to `to`, waits for its deferral and returns the reason given.
    async fn deferral_reason(&self, to: &str) -> String {
        let sent = self.send(submission(&[to])).await;
        self.wait_for(&sent, to, RecipientStatus::Deferred).await;
        match &self.events(EventType::Deferred).await[0].details {
            EventDetails::Deferred(d) => d.reason.clone().unwrap_or_default(),
            other => panic!("a deferral has the details of one: {other:?}"),
        }
    }

    async fn events(&self, t: EventType) -> Vec<EventRecord> {
        let f = EventFilter {
            types: vec![t],
            limit: 300,
            ..Default::default()
        };
        self.store
            .list_events(&self.account, &f)
            .await
            .expect("events")
            .items
    }

    /// Moves the clock to the next attempt and wakes the scheduler.
    fn advance(&self, by: Duration) {
        self.clock.advance_millis(by.as_millis() as i64);
        self.engine.waker().notify_one();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_signed_with_a_verp_return_path() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    let sent = w.send(submission(&["Reader <reader@example.test>"])).await;
    w.wait_for(&sent, "reader@example.test", RecipientStatus::Delivered)
        .await;

    let got = w.sink.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["reader@example.test"]);
    assert!(!got[0].tls, "the sink offered no STARTTLS");
    let text = got[0].text();
    assert!(
        text.starts_with("DKIM-Signature: v=1;") && text.contains("a=rsa-sha256;"),
        "{text}"
    );
    assert!(
        text.contains("c=relaxed/relaxed;") && text.contains(&format!("d={FROM_DOMAIN};")),
        "{text}"
    );
    assert!(
        text.contains("\r\n.A line that starts with a dot."),
        "dot-stuffing is undone by the sink: {text}"
    );
    // The return path names the recipient and checks.
    let target = verp::decode(w.store.verp_key(), &got[0].mail_from).expect("a valid VERP address");
    assert_eq!(target, VerpTarget::Recipient(sent.recipients[0].id.clone()));
    assert!(
        got[0]
            .mail_from
            .ends_with(&format!("@bounces.{FROM_DOMAIN}")),
        "{}",
        got[0].mail_from
    );

    let delivered = w.events(EventType::Delivered).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].data()["mx"], "mx.example.test");
    assert!(
        delivered[0].data()["reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("250 2.0.0")),
        "{:?}",
        delivered[0].data()
    );
    assert_eq!(delivered[0].tags, ["t1"]);
    dkimpy_verifies(&w, &got[0].data).await;

    // From, To, Subject and List-Unsubscribe are over-signed: a copy of one added on the
    // way, above the genuine field, breaks the signature.
    let record = rsa_record(&w).await;
    let body_at = text.find("\r\n\r\n").expect("a header block");
    let first_field = text[..body_at]
        .match_indices("\r\n")
        .map(|(i, _)| i + 2)
        .find(|&i| !text[i..].starts_with(['\t', ' ']))
        .expect("a field after the signature");
    for added in [
        "From: ceo@bank.example",
        "To: other@example.test",
        "Subject: Pay this invoice",
        "List-Unsubscribe: <https://evil.example/u>",
    ] {
        let forged = format!(
            "{}{added}\r\n{}",
            &text[..first_field],
            &text[first_field..]
        );
        assert!(
            kuvert_testkit::dkimpy_verify(forged.as_bytes(), &record).is_err(),
            "dkimpy accepted the signature with {added:?} added"
        );
    }
}

/// The TXT record of the sending domain's one key.
async fn rsa_record(w: &World) -> String {
    let domain = w.store.domain(FROM_DOMAIN).await.expect("domain");
    let keys = w.store.dkim_keys(&domain.id).await.expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].record_value()
}

/// An implementation no one here wrote checks the signature: dkimpy, given the domain's
/// published key.
async fn dkimpy_verifies(w: &World, message: &[u8]) {
    let record = rsa_record(w).await;
    if let Err(e) = kuvert_testkit::dkimpy_verify(message, &record) {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_when_offered_and_recorded() {
    let w = world(
        SinkOptions {
            starttls: true,
            ..Default::default()
        },
        |_, _, _| {},
    )
    .await;
    let sent = w.send(submission(&["reader@example.test"])).await;
    w.wait_for(&sent, "reader@example.test", RecipientStatus::Delivered)
        .await;
    assert!(w.sink.received()[0].tls);
    let delivered = w.events(EventType::Delivered).await;
    assert!(
        delivered[0].data()["tls"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1_")),
        "{:?}",
        delivered[0].data()
    );
    dkimpy_verifies(&w, &w.sink.received()[0].data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_then_delivered_when_the_clock_reaches_the_retry() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    w.sink
        .on("later@example.test", Behaviour::TempFail { times: 1 });
    let sent = w.send(submission(&["later@example.test"])).await;
    w.wait_for(&sent, "later@example.test", RecipientStatus::Deferred)
        .await;
    let deferred = w.events(EventType::Deferred).await;
    assert_eq!(deferred.len(), 1);
    assert_eq!(deferred[0].data()["attempt"], 1);
    assert!(
        deferred[0].data()["reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("451 4.3.0")),
        "{:?}",
        deferred[0].data()
    );
    let due = Timestamp(w.clock.now().millis() + 60_000).to_rfc3339();
    assert_eq!(
        deferred[0].data()["next_attempt_at"],
        due.as_str(),
        "the first retry comes after 1 minute"
    );

    // Just before the retry time nothing happens; at it, the second attempt delivers.
    w.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.sink.attempts("later@example.test"), 1);
    w.advance(Duration::from_secs(1));
    w.wait_for(&sent, "later@example.test", RecipientStatus::Delivered)
        .await;
    assert_eq!(w.sink.attempts("later@example.test"), 2);
    let m = w
        .store
        .message(&w.account, sent.id.as_str())
        .await
        .expect("message");
    assert_eq!(m.recipients[0].attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_bounce_is_suppressed_and_the_next_send_dropped() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    w.sink.on(
        "gone@example.test",
        Behaviour::RejectRcpt(Reply::new(
            550,
            (5, 1, 1),
            "<gone@example.test>: no such user",
        )),
    );
    let sent = w.send(submission(&["gone@example.test"])).await;
    w.wait_for(&sent, "gone@example.test", RecipientStatus::Bounced)
        .await;
    let bounced = w.events(EventType::Bounced).await;
    assert_eq!(bounced[0].data()["class"], "hard");
    assert_eq!(bounced[0].data()["code"], "5.1.1");
    assert!(
        w.store
            .suppressed(&w.account, &["gone@example.test"])
            .await
            .expect("suppressed")
            .contains_key("gone@example.test")
    );
    let again = w.send(submission(&["gone@example.test"])).await;
    assert_eq!(
        again.recipients[0].status,
        RecipientStatus::Dropped,
        "dropped at accept"
    );
    assert_eq!(w.sink.attempts("gone@example.test"), 1, "never tried again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_bounce_is_recorded_but_not_suppressed() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    w.sink.on(
        "strict@example.test",
        Behaviour::RejectData(Reply::new(550, (5, 7, 1), "Message rejected by policy")),
    );
    let sent = w.send(submission(&["strict@example.test"])).await;
    w.wait_for(&sent, "strict@example.test", RecipientStatus::Bounced)
        .await;
    let bounced = w.events(EventType::Bounced).await;
    assert_eq!(
        (
            bounced[0].data()["class"].as_str(),
            bounced[0].data()["code"].as_str()
        ),
        (Some("policy"), Some("5.7.1"))
    );
    assert!(
        w.store
            .suppressed(&w.account, &["strict@example.test"])
            .await
            .expect("suppressed")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_after_the_maximum_age() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    w.sink
        .on("full@example.test", Behaviour::TempFail { times: u32::MAX });
    let sent = w.send(submission(&["full@example.test"])).await;
    let config = DeliveryConfig::default();
    let mut attempts = 1u32;
    loop {
        // Wait for attempt number `attempts` to be recorded.
        let mut status = RecipientStatus::Queued;
        for _ in 0..200 {
            let m = w
                .store
                .message(&w.account, sent.id.as_str())
                .await
                .expect("message");
            status = m.recipients[0].status;
            if m.recipients[0].attempts == i64::from(attempts) && w.engine.in_flight() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if status == RecipientStatus::Failed {
            break;
        }
        assert_eq!(status, RecipientStatus::Deferred, "attempt {attempts}");
        w.advance(config.retry_after(attempts).0);
        attempts += 1;
        assert!(attempts < 100, "never expired");
    }
    w.wait_for(&sent, "full@example.test", RecipientStatus::Failed)
        .await;
    let failed = w.events(EventType::Failed).await;
    assert_eq!(failed[0].data()["reason"], "expired");
    // Attempts at 0, 1m, 6m, 21m, 51m, 1h51m, 3h51m, 7h51m, then every 4h up to 71h51m: 24.
    // The next would come after 75h51m, past the 72 hours.
    assert_eq!(w.sink.attempts("full@example.test"), 24);
    assert_eq!(attempts, 24);
    let elapsed = w.clock.now().millis() - 1_795_000_000_000;
    assert!(
        elapsed <= 3 * 86_400_000,
        "given up before the maximum age passed: {elapsed}"
    );
}

/// Expiry used to overwrite the last failure's reason with `expired`: both are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_keeps_the_last_failure_beside_it() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    let sent = w.send(submission(&["x@noaddress.test"])).await;
    w.wait_for(&sent, "x@noaddress.test", RecipientStatus::Deferred)
        .await;
    w.advance(Duration::from_secs(73 * 3600));
    w.wait_for(&sent, "x@noaddress.test", RecipientStatus::Failed)
        .await;
    let failed = w.events(EventType::Failed).await;
    assert_eq!(
        failed[0].data()["reason"],
        "expired",
        "{:?}",
        failed[0].data()
    );
    assert!(
        failed[0].data()["last_reason"]
            .as_str()
            .is_some_and(|r| r.contains("mx.noaddress.test")),
        "{:?}",
        failed[0].data()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_in_data_is_deferred() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    w.sink.on("flaky@example.test", Behaviour::DisconnectInData);
    let reason = w.deferral_reason("flaky@example.test").await;
    assert!(reason.contains("closed"), "{reason}");
    assert!(w.sink.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out_and_is_deferred() {
    let w = world(SinkOptions::default(), |c, _, _| {
        c.timeouts.rcpt = kuvert_core::duration::HumanDuration::secs(1)
    })
    .await;
    w.sink.on("slow@example.test", Behaviour::Stall);
    let reason = w.deferral_reason("slow@example.test").await;
    assert!(reason.contains("timed out"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_but_not_offered_fails() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    let mut sub = submission(&["secret@example.test"]);
    sub.require_tls = true;
    let sent = w.send(sub).await;
    w.wait_for(&sent, "secret@example.test", RecipientStatus::Failed)
        .await;
    let failed = w.events(EventType::Failed).await;
    assert_eq!(failed[0].data()["reason"], "tls_required");
    assert!(w.sink.received().is_empty(), "nothing went in clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_mx_bounces_at_once() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    let sent = w.send(submission(&["anyone@nullmx.test"])).await;
    w.wait_for(&sent, "anyone@nullmx.test", RecipientStatus::Bounced)
        .await;
    let bounced = w.events(EventType::Bounced).await;
    assert_eq!(
        (
            bounced[0].data()["class"].as_str(),
            bounced[0].data()["code"].as_str()
        ),
        (Some("hard"), Some("5.1.10"))
    );
    assert_eq!(w.sink.connections(), 0, "no server was contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_share_transactions_and_domains_share_connections() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    let sent = w
        .send(submission(&[
            "a@example.test",
            "b@example.test",
            "c@other.test",
        ]))
        .await;
    for r in ["a@example.test", "b@example.test", "c@other.test"] {
        w.wait_for(&sent, r, RecipientStatus::Delivered).await;
    }
    let got = w.sink.received();
    let mut shapes: Vec<usize> = got.iter().map(|r| r.rcpt_to.len()).collect();
    shapes.sort();
    assert_eq!(
        shapes,
        [1, 2],
        "one transaction for example.test's two, one for other.test"
    );
    let multi = got.iter().find(|r| r.rcpt_to.len() == 2).expect("shared");
    assert_eq!(
        verp::decode(w.store.verp_key(), &multi.mail_from),
        Some(VerpTarget::Message(sent.id.clone()))
    );
    // Both domains are served by mx.example.test: the next message reuses an open connection.
    let before = w.sink.connections();
    let sent2 = w.send(submission(&["d@other.test"])).await;
    w.wait_for(&sent2, "d@other.test", RecipientStatus::Delivered)
        .await;
    assert_eq!(w.sink.connections(), before, "no new connection");
    assert_eq!(
        w.engine.stats().connections_opened.get(),
        u64::from(w.sink.connections())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_pools_choose_the_source_address_and_its_ehlo_name() {
    use kuvert_mta::config::{Pool, PoolAddress};
    let address = |ip: [u8; 4], ehlo: &str| PoolAddress {
        ip: Ipv4Addr::from(ip).into(),
        ehlo: ehlo.into(),
    };
    let w = world(SinkOptions::default(), |c, _, _| {
        c.pools.insert(
            "dedicated".into(),
            Pool {
                addresses: vec![address([127, 0, 0, 2], "mta2.sender.test")],
            },
        );
        c.pools.insert(
            "shared".into(),
            Pool {
                addresses: vec![address([127, 0, 0, 3], "mta3.sender.test")],
            },
        );
    })
    .await;
    let mut seen = Vec::new();
    for (rcpt, setup) in [
        ("a@example.test", 0),
        ("b@example.test", 1),
        ("c@example.test", 2),
    ] {
        match setup {
            1 => w
                .store
                .set_account_pool(&w.account, Some("shared"))
                .await
                .expect("account pool"),
            2 => w
                .store
                .set_domain_pool(FROM_DOMAIN, Some("dedicated"))
                .await
                .expect("domain pool"),
            _ => {}
        }
        let sent = w.send(submission(&[rcpt])).await;
        w.wait_for(&sent, rcpt, RecipientStatus::Delivered).await;
        let got = w
            .sink
            .received()
            .into_iter()
            .find(|r| r.rcpt_to == [rcpt])
            .expect("received");
        seen.push((got.peer.ip().to_string(), got.helo));
    }
    let default_name = DomainSettings::default().hostname;
    assert_eq!(
        seen,
        [
            ("127.0.0.1".to_owned(), default_name),
            ("127.0.0.3".to_owned(), "mta3.sender.test".to_owned()),
            ("127.0.0.2".to_owned(), "mta2.sender.test".to_owned()),
        ],
        "no pool, then the account's, then the domain's before the account's"
    );
}

/// A smarthost (the sink, with STARTTLS and AUTH) and an engine relaying through it with
/// `password`.
async fn relay_world(password: &str) -> World {
    relay_world_trusting(password, true).await
}

/// The same, with the smarthost's certificate in `[delivery.relay] ca_file` when `trusted`.
async fn relay_world_trusting(password: &str, trusted: bool) -> World {
    let auth = ("relay-user".to_owned(), "relay-pass".to_owned());
    let sink = SinkOptions {
        starttls: true,
        auth: Some(auth.clone()),
        ..Default::default()
    };
    world(sink, |c, sink, dir| {
        c.mode = kuvert_mta::Mode::Relay;
        c.relay.host = sink.addr().to_string();
        c.relay.username = auth.0;
        c.relay.password = password.to_owned();
        if trusted {
            let ca = dir.join("relay-ca.pem");
            std::fs::write(&ca, sink.certificate_pem().expect("STARTTLS")).expect("CA file");
            c.relay.ca_file = ca.display().to_string();
        }
    })
    .await
}

/// The relay password goes only to a smarthost whose certificate checks: one that no
/// configured authority signed gets no AUTH, and the mail waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_smarthost_certificate_gets_no_password() {
    let w = relay_world_trusting("relay-pass", false).await;
    let reason = w.deferral_reason("a@example.test").await;
    assert!(
        reason.to_ascii_lowercase().contains("certificate"),
        "{reason}"
    );
    assert!(w.sink.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_mode_sends_everything_through_the_smarthost_with_auth() {
    let w = relay_world("relay-pass").await;
    // Even a domain without any MX goes to the smarthost.
    let sent = w
        .send(submission(&["someone@nullmx.test", "else@nowhere.test"]))
        .await;
    w.wait_for(&sent, "someone@nullmx.test", RecipientStatus::Delivered)
        .await;
    w.wait_for(&sent, "else@nowhere.test", RecipientStatus::Delivered)
        .await;
    let got = w.sink.received();
    assert!(
        got.iter()
            .all(|r| r.tls && r.auth_user.as_deref() == Some("relay-user")),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_relay_password_defers() {
    let w = relay_world("wrong").await;
    let reason = w.deferral_reason("a@example.test").await;
    assert!(reason.contains("535"), "{reason}");
    assert!(w.sink.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pipelining_each_recipient_gets_its_own_answer() {
    let w = world(
        SinkOptions {
            pipelining: false,
            ..Default::default()
        },
        |_, _, _| {},
    )
    .await;
    w.sink.on(
        "gone@example.test",
        Behaviour::RejectRcpt(Reply::new(550, (5, 1, 1), "no such user")),
    );
    w.sink
        .on("later@example.test", Behaviour::TempFail { times: 1 });
    let sent = w
        .send(submission(&[
            "ok@example.test",
            "gone@example.test",
            "later@example.test",
        ]))
        .await;
    w.wait_for(&sent, "ok@example.test", RecipientStatus::Delivered)
        .await;
    w.wait_for(&sent, "gone@example.test", RecipientStatus::Bounced)
        .await;
    w.wait_for(&sent, "later@example.test", RecipientStatus::Deferred)
        .await;
    let got = w.sink.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].rcpt_to,
        ["ok@example.test"],
        "only the accepted recipient is in the transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_messages_leave_at_their_time() {
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    let mut sub = submission(&["later@example.test"]);
    sub.send_at = Some(Timestamp(w.clock.now().millis() + 3_600_000));
    let sent = w.send(sub).await;
    w.engine.waker().notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.sink.connections(), 0, "not before its time");
    w.advance(Duration::from_secs(3599));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.sink.connections(), 0, "not a second early");
    w.advance(Duration::from_secs(1));
    w.wait_for(&sent, "later@example.test", RecipientStatus::Delivered)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_server_closed_is_replaced_not_deferred() {
    let mut w = world(SinkOptions::default(), |_, _, _| {}).await;
    let first = w.send(submission(&["one@example.test"])).await;
    w.wait_for(&first, "one@example.test", RecipientStatus::Delivered)
        .await;
    // The server restarts on the same address: the connection kept for reuse is dead.
    let addr = w.sink.addr();
    drop(std::mem::replace(
        &mut w.sink,
        SmtpSink::start(SinkOptions::default()),
    ));
    while std::net::TcpListener::bind(addr).is_err() {
        tokio::task::yield_now().await;
    }
    w.sink = SmtpSink::start(SinkOptions {
        listen: addr,
        ..Default::default()
    });
    let second = w.send(submission(&["two@example.test"])).await;
    w.wait_for(&second, "two@example.test", RecipientStatus::Delivered)
        .await;
    assert!(w.events(EventType::Deferred).await.is_empty());
    assert_eq!(w.sink.received().len(), 1);
}

/// The selectors that signed a message, top first.
fn selectors(message: &str) -> Vec<String> {
    message
        .split("DKIM-Signature:")
        .skip(1)
        .filter_map(|field| {
            let at = field.find("s=")? + 2;
            let end = field[at..].find(';')? + at;
            Some(field[at..end].trim().to_owned())
        })
        .collect()
}

impl World {
    /// A domain whose records are in the testkit's DNS, verified (not a sandbox).
    async fn published_domain(&self, name: &str) -> (kuvert_store::Domain, Dns) {
        let settings = DomainSettings::default();
        let (d, records) =
            kuvert_admin::add_domain(&self.store, &self.account, name, &settings, false)
                .await
                .expect("domain");
        for r in records.iter().filter(|r| r.required) {
            self.publish(r);
        }
        let dns = Dns::new(&[self.dns.addr()], kuvert_dns::Caching::Off).expect("dns");
        let (d, _) = kuvert_admin::verify_domain(&self.store, &dns, &d, &settings, false)
            .await
            .expect("verify");
        assert!(d.can_send());
        (d, dns)
    }

    fn publish(&self, r: &kuvert_core::domain::DnsRecord) {
        use kuvert_core::domain::RecordType;
        match r.record_type {
            RecordType::Txt => self.dns.add_txt(&r.name, &r.value),
            RecordType::Mx => self.dns.add_mx(&r.name, 10, &r.value),
            RecordType::Cname => self.dns.add_cname(&r.name, &r.value),
        }
    }

    /// The DKIM records as the test's DNS serves them: (name, value).
    fn published(
        &self,
        domain: &kuvert_store::Domain,
        keys: &[kuvert_core::domain::DkimKey],
    ) -> Vec<(String, String)> {
        keys.iter()
            .map(|k| {
                (
                    format!("{}._domainkey.{}", k.selector, domain.name),
                    k.record_value(),
                )
            })
            .collect()
    }

    /// Sends one message from `domain` and returns it as the sink got it.
    async fn sent_from(&self, domain: &str, to: &str) -> String {
        let before = self.sink.received().len();
        let mut s = submission(&[to]);
        s.from = Mailbox::parse(&format!("News <news@{domain}>")).expect("from");
        let sent = self.send(s).await;
        self.wait_for(&sent, to, RecipientStatus::Delivered).await;
        let got = self.sink.received();
        assert_eq!(got.len(), before + 1);
        got[before].text()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_signs_beside_rsa_once_its_record_is_published() {
    use kuvert_admin::dkim::{NewKey, new_key};
    use kuvert_core::domain::DkimAlgorithm;
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    let settings = DomainSettings::default();
    let (d, dns) = w.published_domain("both.sender.test").await;
    let keys = new_key(&w.store, &d, DkimAlgorithm::Ed25519, NewKey::Add, &settings)
        .await
        .expect("an Ed25519 key");
    assert_eq!(keys.len(), 2);
    let ed = keys
        .iter()
        .find(|k| k.algorithm == DkimAlgorithm::Ed25519)
        .expect("ed25519")
        .clone();
    assert_eq!(ed.state, kuvert_core::domain::DkimKeyState::Pending);
    // A second one is refused while the first waits.
    assert!(
        new_key(&w.store, &d, DkimAlgorithm::Ed25519, NewKey::Add, &settings)
            .await
            .is_err()
    );

    // Its record is not published: only RSA signs.
    let text = w.sent_from("both.sender.test", "one@example.test").await;
    assert_eq!(selectors(&text), ["kuvert"], "{text}");

    // Published without its algorithm, the record says RSA: not this key's record.
    let name = format!("{}._domainkey.both.sender.test", ed.selector);
    w.dns
        .add_txt(&name, &format!("v=DKIM1; p={}", ed.public_b64));
    kuvert_admin::verify_domain(&w.store, &dns, &d, &settings, false)
        .await
        .expect("verify");
    let keys = w.store.dkim_keys(&d.id).await.expect("keys");
    assert!(
        keys.iter()
            .any(|k| k.selector == ed.selector
                && k.state == kuvert_core::domain::DkimKeyState::Pending),
        "{keys:?}"
    );
    w.dns.remove(&name, kuvert_testkit::dns::RecordType::TXT);

    // Published and verified: both sign, and dkimpy verifies both.
    w.dns.add_txt(&name, &ed.record_value());
    let (d, _) = kuvert_admin::verify_domain(&w.store, &dns, &d, &settings, false)
        .await
        .expect("verify");
    assert!(d.can_send());
    w.advance(Duration::from_millis(
        kuvert_store::KEY_RECHECK_MS as u64 + 1,
    ));
    let text = w.sent_from("both.sender.test", "two@example.test").await;
    let keys = w.store.dkim_keys(&d.id).await.expect("keys");
    let verdicts = kuvert_testkit::dkimpy_verify_each(text.as_bytes(), &w.published(&d, &keys))
        .expect("dkimpy");
    let mut algorithms: Vec<(&str, bool)> = verdicts
        .iter()
        .map(|v| (v.algorithm.as_str(), v.pass))
        .collect();
    algorithms.sort();
    assert_eq!(
        algorithms,
        [("ed25519-sha256", true), ("rsa-sha256", true)],
        "{verdicts:?}\n{text}"
    );
    // The Ed25519 record is now required: taken away, the domain stops.
    w.dns.remove(
        &format!("{}._domainkey.both.sender.test", ed.selector),
        kuvert_testkit::dns::RecordType::TXT,
    );
    let (d, _) = kuvert_admin::verify_domain(&w.store, &dns, &d, &settings, false)
        .await
        .expect("verify");
    assert!(!d.can_send(), "an active key's record went missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_never_signs_with_an_unpublished_key() {
    use kuvert_admin::dkim::{NewKey, check_rotations, new_key};
    use kuvert_core::domain::{DkimAlgorithm, DkimKeyState};
    let w = world(SinkOptions::default(), |_, _, _| {}).await;
    let settings = DomainSettings::default();
    let (d, dns) = w.published_domain("rotate.sender.test").await;
    let recheck = Duration::from_millis(kuvert_store::KEY_RECHECK_MS as u64 + 1);
    // Every message is checked against what DNS held when it was signed.
    let check = |text: &str, want: &str, published: &[(String, String)]| {
        assert_eq!(selectors(text), [want], "{text}");
        let verdicts =
            kuvert_testkit::dkimpy_verify_each(text.as_bytes(), published).expect("dkimpy");
        assert!(verdicts.iter().all(|v| v.pass), "{verdicts:?}");
    };
    let first = w.store.dkim_keys(&d.id).await.expect("keys");
    let text = w.sent_from("rotate.sender.test", "a@example.test").await;
    check(&text, "kuvert", &w.published(&d, &first));

    let keys = new_key(&w.store, &d, DkimAlgorithm::Rsa, NewKey::Rotate, &settings)
        .await
        .expect("rotate");
    let new = keys
        .iter()
        .find(|k| k.state == DkimKeyState::Pending)
        .expect("a pending key")
        .clone();
    assert_ne!(new.selector, "kuvert");
    // Both records are listed; the old one is the one required.
    let records = kuvert_admin::records(&w.store, &d, &settings)
        .await
        .expect("records");
    let dkim: Vec<(String, bool)> = records
        .iter()
        .filter(|r| r.name.contains("._domainkey."))
        .map(|r| (r.name.clone(), r.required))
        .collect();
    assert_eq!(
        dkim,
        [
            ("kuvert._domainkey.rotate.sender.test".to_owned(), true),
            (
                format!("{}._domainkey.rotate.sender.test", new.selector),
                false
            ),
        ]
    );

    // Unpublished, for a day of checks: the old key keeps signing. The background check
    // looks at the new key alone: an SPF record gone meanwhile is verify's business, and
    // does not stop the domain here.
    w.dns.remove(
        "bounces.rotate.sender.test",
        kuvert_testkit::dns::RecordType::TXT,
    );
    for _ in 0..3 {
        w.advance(Duration::from_secs(8 * 3600));
        assert_eq!(
            check_rotations(&w.store, &dns, &settings)
                .await
                .expect("check"),
            0
        );
        let text = w.sent_from("rotate.sender.test", "b@example.test").await;
        check(&text, "kuvert", &w.published(&d, &first));
    }

    // Published: the server's own check moves the keys on, and the new one signs.
    w.dns.add_txt(
        &format!("{}._domainkey.rotate.sender.test", new.selector),
        &new.record_value(),
    );
    assert_eq!(
        check_rotations(&w.store, &dns, &settings)
            .await
            .expect("check"),
        2
    );
    let keys = w.store.dkim_keys(&d.id).await.expect("keys");
    let states: Vec<(&str, DkimKeyState)> = keys
        .iter()
        .map(|k| (k.selector.as_str(), k.state))
        .collect();
    assert_eq!(
        states,
        [
            ("kuvert", DkimKeyState::Retiring),
            (new.selector.as_str(), DkimKeyState::Active)
        ]
    );
    assert!(
        w.store
            .domain_by_id(&d.id)
            .await
            .expect("domain")
            .can_send()
    );
    w.advance(recheck);
    let text = w.sent_from("rotate.sender.test", "c@example.test").await;
    check(&text, &new.selector, &w.published(&d, &keys));

    // The old record stays listed for the grace period, then is forgotten.
    w.advance(Duration::from_millis(
        settings.dkim_retire_after_ms as u64 - 3_600_000,
    ));
    check_rotations(&w.store, &dns, &settings)
        .await
        .expect("check");
    assert_eq!(w.store.dkim_keys(&d.id).await.expect("keys").len(), 2);
    w.advance(Duration::from_secs(3600));
    assert_eq!(
        check_rotations(&w.store, &dns, &settings)
            .await
            .expect("check"),
        1
    );
    let records = kuvert_admin::records(&w.store, &d, &settings)
        .await
        .expect("records");
    assert!(
        !records
            .iter()
            .any(|r| r.name.starts_with("kuvert._domainkey.")),
        "{records:?}"
    );
    let text = w.sent_from("rotate.sender.test", "d@example.test").await;
    check(
        &text,
        &new.selector,
        &w.published(&d, &w.store.dkim_keys(&d.id).await.expect("keys")),
    );
}

const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// Where TLS reports are posted (the same HTTPS server).
const REPORT_HOST: &str = "reports.sts.test";

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

/// A world whose MX host (the sink) presents a certificate for `mx.sts.test`, beside an
/// HTTPS server for the policy hosts of `domains`; both are trusted through
/// `[delivery.mta_sts] ca_file`, as a private CA would be.
async fn sts_world(domains: &[&str]) -> (World, kuvert_testkit::HttpsServer) {
    let hosts: Vec<String> = domains.iter().map(|d| format!("mta-sts.{d}")).collect();
    let mut names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    names.push(REPORT_HOST);
    let https = kuvert_testkit::HttpsServer::start(&names).await;
    let (port, ca) = (https.addr.port(), https.ca_pem.clone());
    let sink = SinkOptions {
        starttls: true,
        certificate_names: vec!["mx.sts.test".into()],
        ..Default::default()
    };
    let w = world(sink, |c, sink, dir| {
        let file = dir.join("sts-ca.pem");
        let mx_cert = sink.certificate_pem().expect("STARTTLS");
        std::fs::write(&file, format!("{ca}{mx_cert}")).expect("CA file");
        c.mta_sts.ca_file = file.display().to_string();
        c.mta_sts.policy_port = port;
        c.mta_sts.allow_private = true;
    })
    .await;
    // Records change within a test and must be seen at once.
    w.dns.set_ttl(0);
    for (d, host) in domains.iter().zip(&hosts) {
        w.dns.add_a(host, Ipv4Addr::LOCALHOST);
        w.dns.add_txt(&format!("_mta-sts.{d}"), "v=STSv1; id=1");
    }
    (w, https)
}

/// `domain` receives at `mx` (on loopback) and serves `policy_text` as its MTA-STS policy.
fn sts_domain(
    w: &World,
    https: &kuvert_testkit::HttpsServer,
    domain: &str,
    mx: &str,
    policy_text: &str,
) {
    w.dns.add_mx(domain, 10, mx);
    w.dns.add_a(mx, Ipv4Addr::LOCALHOST);
    https.serve(
        &format!("mta-sts.{domain}"),
        POLICY_PATH,
        200,
        "text/plain; charset=utf-8",
        policy_text,
    );
}

impl World {
    /// The reasons of the deferrals of `sent`.
    async fn reasons(&self, sent: &Accepted) -> Vec<String> {
        self.events(EventType::Deferred)
            .await
            .into_iter()
            .filter(|e| e.message_id.as_ref() == Some(&sent.id))
            .filter_map(|e| match e.details {
                EventDetails::Deferred(d) => d.reason,
                _ => None,
            })
            .collect()
    }

    async fn sessions(&self, domain: &str) -> Vec<(String, Option<&'static str>, u64)> {
        self.engine.flush_tls_sessions().await;
        let day = self.clock.now().seconds().div_euclid(86_400);
        self.store
            .tls_sessions(day, domain)
            .await
            .expect("sessions")
            .into_iter()
            .flat_map(|p| p.sessions)
            .map(|c| (c.mx_host, c.result.map(|r| r.as_str()), c.count))
            .collect()
    }
}

/// MTA-STS (RFC 8461) in `enforce` mode: a domain whose policy names none of its MX hosts
/// gets nothing, and the deferral says why; an MX host named by the policy whose certificate
/// is for another name gets nothing either. Once the domain publishes a policy (new id) that
/// names its MX, whose certificate checks, the mail goes, over TLS. Each session is counted
/// for the TLS report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_mta_sts_policy_decides_where_mail_may_go() {
    let (w, https) = sts_world(&["sts.test", "badcert.test"]).await;
    sts_domain(
        &w,
        &https,
        "sts.test",
        "mx.sts.test",
        &policy("enforce", "mx.elsewhere.test"),
    );
    // The policy names this MX, but the server's certificate is for mx.sts.test.
    sts_domain(
        &w,
        &https,
        "badcert.test",
        "mx.badcert.test",
        &policy("enforce", "mx.badcert.test"),
    );

    let sent = w.send(submission(&["a@sts.test"])).await;
    w.wait_for(&sent, "a@sts.test", RecipientStatus::Deferred)
        .await;
    let reasons = w.reasons(&sent).await;
    assert!(
        reasons[0].contains("MTA-STS policy of sts.test (enforce)")
            && reasons[0].contains("mx.sts.test"),
        "{reasons:?}"
    );
    let bad = w.send(submission(&["b@badcert.test"])).await;
    w.wait_for(&bad, "b@badcert.test", RecipientStatus::Deferred)
        .await;
    let reasons = w.reasons(&bad).await;
    assert!(
        reasons[0].contains("MTA-STS") && reasons[0].contains("certificate"),
        "{reasons:?}"
    );
    assert!(w.sink.received().is_empty(), "nothing went anywhere");
    assert_eq!(
        w.sessions("badcert.test").await,
        [(
            "mx.badcert.test".to_owned(),
            Some("certificate-host-mismatch"),
            1
        )]
    );

    // The domain fixes its policy and says so with a new id: seen at the next look.
    w.dns
        .remove("_mta-sts.sts.test", kuvert_testkit::dns::RecordType::TXT);
    w.dns.add_txt("_mta-sts.sts.test", "v=STSv1; id=2");
    https.serve(
        "mta-sts.sts.test",
        POLICY_PATH,
        200,
        "text/plain",
        &policy("enforce", "*.sts.test"),
    );
    w.advance(Duration::from_millis(
        kuvert_mta::mta_sts::RECHECK_MS as u64,
    ));
    w.wait_for(&sent, "a@sts.test", RecipientStatus::Delivered)
        .await;
    let got = w.sink.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].tls, "delivered over TLS");
    assert_eq!(got[0].rcpt_to, ["a@sts.test"]);
    let cached = w.store.sts_policy("sts.test").await.expect("cache");
    assert_eq!(cached.map(|c| c.id), Some("2".to_owned()));
    assert_eq!(
        w.sessions("sts.test").await,
        [("mx.sts.test".to_owned(), None, 1)],
        "one session; none was tried while no MX was named"
    );

    // An attacker strips the record, breaks the policy host and points the MX elsewhere:
    // the cached policy still applies, and the mail waits.
    w.dns
        .remove("_mta-sts.sts.test", kuvert_testkit::dns::RecordType::TXT);
    https.serve("mta-sts.sts.test", POLICY_PATH, 404, "text/plain", "gone");
    w.dns
        .remove("sts.test", kuvert_testkit::dns::RecordType::MX);
    w.dns.add_mx("sts.test", 10, "mx.rogue.test");
    w.dns.add_a("mx.rogue.test", Ipv4Addr::LOCALHOST);
    w.advance(Duration::from_millis(
        kuvert_mta::mta_sts::RECHECK_MS as u64,
    ));
    let again = w.send(submission(&["c@sts.test"])).await;
    w.wait_for(&again, "c@sts.test", RecipientStatus::Deferred)
        .await;
    let reasons = w.reasons(&again).await;
    assert!(reasons[0].contains("mx.rogue.test"), "{reasons:?}");
    assert_eq!(w.sink.received().len(), 1, "nothing more arrived");
}

/// Under `enforce`, an MX host that offers no STARTTLS is passed over for the next one the
/// policy names; the first is counted as a failure, the second as a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_policy_passes_over_an_mx_without_starttls() {
    let (w, https) = sts_world(&["fallback.test"]).await;
    // A second server on the same port of another loopback address, without STARTTLS.
    let plain = SmtpSink::start(SinkOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 2], w.sink.addr().port())),
        ..Default::default()
    });
    w.dns.add_mx("fallback.test", 10, "mx-plain.sts.test");
    w.dns
        .add_a("mx-plain.sts.test", Ipv4Addr::new(127, 0, 0, 2));
    w.dns.add_mx("fallback.test", 20, "mx.sts.test");
    w.dns.add_a("mx.sts.test", Ipv4Addr::LOCALHOST);
    https.serve(
        "mta-sts.fallback.test",
        POLICY_PATH,
        200,
        "text/plain",
        &policy("enforce", "*.sts.test"),
    );
    let sent = w.send(submission(&["a@fallback.test"])).await;
    w.wait_for(&sent, "a@fallback.test", RecipientStatus::Delivered)
        .await;
    assert!(
        plain.received().is_empty(),
        "the server without TLS got nothing"
    );
    let got = w.sink.received();
    assert!(got.len() == 1 && got[0].tls, "{got:?}");
    assert_eq!(
        w.sessions("fallback.test").await,
        [
            (
                "mx-plain.sts.test".to_owned(),
                Some("starttls-not-supported"),
                1
            ),
            ("mx.sts.test".to_owned(), None, 1),
        ]
    );
}

/// The first jobs to a domain, started together, fetch its policy once between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_fetch_a_policy_once() {
    let (w, https) = sts_world(&["sts.test"]).await;
    sts_domain(
        &w,
        &https,
        "sts.test",
        "mx.sts.test",
        &policy("enforce", "mx.sts.test"),
    );
    // A tracked message is one job per recipient: twenty jobs, started together.
    let to: Vec<String> = (0..20).map(|i| format!("r{i}@sts.test")).collect();
    let mut sub = submission(&to.iter().map(String::as_str).collect::<Vec<_>>());
    sub.tracking.opens = Some(true);
    let sent = w.send(sub).await;
    for t in &to {
        w.wait_for(&sent, t, RecipientStatus::Delivered).await;
    }
    assert_eq!(w.sink.received().len(), 20, "twenty transactions");
    assert_eq!(https.gets(), 1, "one fetch for twenty jobs");
}

/// In `testing` mode the mail goes as without a policy, and what `enforce` would have
/// refused is counted; a policy that cannot be read is no policy, and counted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_testing_policy_delivers_and_counts_what_would_have_failed() {
    let (w, https) = sts_world(&["testing.test", "broken.test"]).await;
    for d in ["testing.test", "broken.test"] {
        w.dns.add_mx(d, 10, &format!("mx.{d}"));
        w.dns.add_a(&format!("mx.{d}"), Ipv4Addr::LOCALHOST);
    }
    https.serve(
        "mta-sts.testing.test",
        POLICY_PATH,
        200,
        "text/plain",
        &policy("testing", "mx.elsewhere.test"),
    );
    // Not a policy at all (an error page), so the domain has none: the mail goes.
    https.serve(
        "mta-sts.broken.test",
        POLICY_PATH,
        200,
        "text/html",
        "<html>oops</html>",
    );
    let sent = w
        .send(submission(&["a@testing.test", "b@broken.test"]))
        .await;
    w.wait_for(&sent, "a@testing.test", RecipientStatus::Delivered)
        .await;
    w.wait_for(&sent, "b@broken.test", RecipientStatus::Delivered)
        .await;
    assert_eq!(
        w.sessions("testing.test").await,
        [("mx.testing.test".to_owned(), Some("validation-failure"), 1)]
    );
    assert_eq!(
        w.sessions("broken.test").await,
        [(String::new(), Some("sts-policy-invalid"), 1)]
    );
}

/// The daily TLS report (RFC 8460): the day after, the sessions counted under a domain's
/// policy go to each address of its `_smtp._tls` record, by HTTPS and by mail (a
/// `multipart/report` from the notices account), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_tls_report_goes_where_the_domain_asks() {
    let (w, https) = sts_world(&["sts.test", "badcert.test"]).await;
    // Reports by mail go to a domain whose enforced policy no server of it meets: RFC 8460
    // §5.3 wants them delivered all the same.
    sts_domain(
        &w,
        &https,
        "badcert.test",
        "mx.badcert.test",
        &policy("enforce", "mx.badcert.test"),
    );
    w.dns.add_mx("sts.test", 10, "mx.sts.test");
    w.dns.add_a("mx.sts.test", Ipv4Addr::LOCALHOST);
    w.dns.add_a(REPORT_HOST, Ipv4Addr::LOCALHOST);
    https.serve(
        "mta-sts.sts.test",
        POLICY_PATH,
        200,
        "text/plain",
        &policy("enforce", "mx.sts.test"),
    );
    w.dns.add_txt(
        "_smtp._tls.sts.test",
        &format!(
            "v=TLSRPTv1; rua=mailto:tls-reports@badcert.test,https://{REPORT_HOST}:{}/tlsrpt",
            https.addr.port()
        ),
    );
    let sent = w.send(submission(&["a@sts.test", "b@sts.test"])).await;
    w.wait_for(&sent, "a@sts.test", RecipientStatus::Delivered)
        .await;
    w.engine.flush_tls_sessions().await;

    let notices = kuvert_admin::notices::Notices::open(
        &w.store,
        w.acceptor.clone(),
        "Kuvert <notices@kuvert.test>",
        &DomainSettings::default(),
    )
    .await
    .expect("notices");
    w.engine.exempt_reports_of(notices.account().clone());
    // The tag alone, from a customer's account, exempts nothing.
    let mut tagged = submission(&["x@badcert.test"]);
    tagged.tags = vec![kuvert_core::mta_sts::TLSRPT_TAG.to_owned()];
    let tagged = w.send(tagged).await;
    w.wait_for(&tagged, "x@badcert.test", RecipientStatus::Deferred)
        .await;
    let reporter = kuvert_admin::tls_reports::TlsReporter::new(
        w.store.clone(),
        Dns::new(&[w.dns.addr()], kuvert_dns::Caching::Off).expect("dns"),
        notices,
        "mta.kuvert.test",
        true,
        Some(https.ca_pem.as_bytes()),
    );
    assert_eq!(
        reporter.send_due().await.expect("reports"),
        0,
        "not before the day ends"
    );
    w.advance(Duration::from_secs(86_400));
    assert_eq!(reporter.send_due().await.expect("reports"), 1);
    assert_eq!(reporter.send_due().await.expect("reports"), 0, "once");

    let posts = https.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/tlsrpt");
    assert_eq!(posts[0].content_type, "application/tlsrpt+json");
    let posted: serde_json::Value = serde_json::from_slice(&posts[0].body).expect("JSON");
    let p = &posted["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "sts");
    assert_eq!(p["policy"]["policy-domain"], "sts.test");
    assert_eq!(p["policy"]["mx-host"][0], "mx.sts.test");
    assert_eq!(
        p["summary"]["total-successful-session-count"], 1,
        "one transaction, one session"
    );
    assert_eq!(p["summary"]["total-failure-session-count"], 0);
    assert_eq!(posted["organization-name"], "mta.kuvert.test");
    assert_eq!(posted["contact-info"], "notices@kuvert.test");

    // The same report by mail.
    let mut mail = None;
    for _ in 0..200 {
        mail = w
            .sink
            .received()
            .into_iter()
            .find(|r| r.rcpt_to == ["tls-reports@badcert.test"]);
        if mail.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = mail.expect("the report by mail").text();
    for field in [
        "TLS-Report-Domain: sts.test",
        "TLS-Report-Submitter: mta.kuvert.test",
        "multipart/report; report-type=\"tlsrpt\"",
        "Subject: Report Domain: sts.test Submitter: mta.kuvert.test Report-ID: <",
        "filename=\"mta.kuvert.test!sts.test!",
        "DKIM-Signature:",
    ] {
        assert!(text.contains(field), "{field} in\n{text}");
    }
    let attachment = text
        .split("Content-Disposition: attachment")
        .nth(1)
        .and_then(|rest| rest.split("\r\n\r\n").nth(1))
        .and_then(|rest| rest.split("\r\n--").next())
        .expect("the attachment");
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(attachment.replace("\r\n", ""))
        .expect("base64");
    let mailed: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(mailed, posted);
    assert!(
        w.sink
            .received()
            .iter()
            .all(|r| r.rcpt_to != ["x@badcert.test"]),
        "the customer's tagged mail still waits"
    );
}
