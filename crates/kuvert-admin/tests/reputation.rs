//! Sending paused on reputation, end to end on a moved clock: mail is delivered through the
//! engine to a sink, bounces and complaints come back as mail to the inbound MX, and the
//! guard pauses the account whose rates pass its plan's limits, tells its owner, refuses its
//! submissions and holds its queued mail until the operator lifts the pause.

use std::net::Ipv4Addr;
use std::time::Duration;

use kuvert_admin::notices::Notices;
use kuvert_admin::reputation::{ReputationGuard, unsuspend};
use kuvert_core::account::{AccountStatus, Plan, PlanLimits};
use kuvert_core::domain::DomainSettings;
use kuvert_core::event::{EventType, RecipientStatus};
use kuvert_core::id::AccountId;
use kuvert_core::reputation::{PauseCause, ReputationLimits};
use kuvert_core::submission::{Limits, Submission};
use kuvert_core::{Clock, Mailbox, Timestamp};
use kuvert_mta::{DeliveryConfig, Engine};
use kuvert_smtpd::{Listener, SmtpConfig, SmtpContext};
use kuvert_store::{EventFilter, Store};
use kuvert_submit::{AcceptError, Acceptor};
use kuvert_testkit::{DnsServer, SinkOptions, SmtpSink};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Recipients each account sends to; the plan judges from 20.
const SENT: usize = 40;

struct World {
    clock: kuvert_core::ManualClock,
    store: Store,
    acceptor: Acceptor,
    engine: Engine,
    sink: SmtpSink,
    notices: Notices,
    inbound: std::net::SocketAddr,
    _dns: DnsServer,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn plans() -> std::collections::HashMap<Plan, PlanLimits> {
    let limits = PlanLimits {
        reputation: ReputationLimits {
            min_recipients: 20,
            ..Default::default()
        },
        ..Plan::Free.default_limits()
    };
    [
        (Plan::Free, limits),
        (Plan::Premium, Plan::Premium.default_limits()),
    ]
    .into()
}

async fn world() -> World {
    let kuvert_testkit::World {
        dir, clock, store, ..
    } = kuvert_testkit::world("first.test", Plan::Free).await;
    let settings = DomainSettings::default();
    let sink = SmtpSink::start(SinkOptions::default());
    let dns = DnsServer::start();
    dns.add_mx("example.test", 10, "mx.example.test");
    dns.add_a("mx.example.test", Ipv4Addr::LOCALHOST);
    let engine = Engine::start(
        store.clone(),
        DeliveryConfig {
            mx_port: sink.addr().port(),
            ..DeliveryConfig::default()
        },
        kuvert_dns::Dns::new(&[dns.addr()], kuvert_dns::Caching::On).expect("dns"),
        &settings,
        "test-node",
    );
    let acceptor =
        Acceptor::new(store.clone(), Limits::default(), plans()).notify_on_queue(engine.waker());
    let notices = Notices::open(
        &store,
        acceptor.clone(),
        "Kuvert <notices@platform.example>",
        &settings,
    )
    .await
    .expect("notices");
    let ctx = SmtpContext::new(
        store.clone(),
        acceptor.clone(),
        SmtpConfig::default(),
        &settings,
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let inbound = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(kuvert_smtpd::serve(
        listener,
        ctx,
        Listener::Inbound,
        stopped,
    ));
    World {
        clock,
        store,
        acceptor,
        engine,
        sink,
        notices,
        inbound,
        _dns: dns,
        _dir: dir,
        _stop: stop,
    }
}

fn message(domain: &str, to: &str) -> Submission {
    Submission::plain(
        Mailbox::parse(&format!("News <news@{domain}>")).expect("from"),
        vec![Mailbox::parse(to).expect("to")],
        "News",
        "Hello.",
    )
}

/// A delivered copy: its recipient and the return path it went out with.
struct Copy {
    rcpt: String,
    verp: String,
}

impl World {
    /// An account with its sandbox domain, on the free plan.
    async fn account(&self, name: &str) -> AccountId {
        kuvert_testkit::world::sandbox_account(
            &self.store,
            &format!("owner@{name}.owners.example"),
            &format!("{name}.test"),
            Plan::Free,
        )
        .await
        .0
        .id
    }

    /// Sends `SENT` messages from the account, one recipient each, and waits until the sink
    /// has every one.
    async fn deliver(&self, account: &AccountId, name: &str) -> Vec<Copy> {
        let before = self.sink.received().len();
        for i in 0..SENT {
            self.acceptor
                .accept(
                    account,
                    message(&format!("{name}.test"), &format!("{name}-{i}@example.test")),
                )
                .await
                .expect("accepted");
        }
        for _ in 0..400 {
            if self.sink.received().len() >= before + SENT && self.engine.in_flight() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let got = self.sink.received();
        assert_eq!(got.len(), before + SENT, "every copy delivered");
        // The outcomes are written after the sink answers: wait until all are.
        for _ in 0..400 {
            if self.count(account, EventType::Delivered).await == SENT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        got[before..]
            .iter()
            .map(|r| Copy {
                rcpt: r.rcpt_to[0].clone(),
                verp: r.mail_from.clone(),
            })
            .collect()
    }

    async fn count(&self, account: &AccountId, t: EventType) -> usize {
        self.store
            .list_events(
                account,
                &EventFilter {
                    types: vec![t],
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .expect("events")
            .items
            .len()
    }

    /// Mails `report` to `rcpt` at the inbound MX with a null sender, as reports come; the
    /// reply to its end of data.
    async fn report(&self, rcpt: &str, report: &str) -> String {
        let stream = tokio::net::TcpStream::connect(self.inbound)
            .await
            .expect("connect");
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut last = String::new();
        for line in [
            String::new(),
            "EHLO mx.provider.test\r\n".into(),
            "MAIL FROM:<>\r\n".into(),
            format!("RCPT TO:<{rcpt}>\r\n"),
            "DATA\r\n".into(),
            format!("{}\r\n.\r\n", report.replace("\r\n.", "\r\n..")),
            "QUIT\r\n".into(),
        ] {
            write.write_all(line.as_bytes()).await.expect("write");
            loop {
                let mut l = String::new();
                read.read_line(&mut l).await.expect("read");
                let done = l.as_bytes().get(3) != Some(&b'-');
                if done {
                    last = l;
                    break;
                }
            }
            if line.starts_with("RCPT") {
                assert!(last.starts_with("250"), "{rcpt}: {last}");
            }
            if line.starts_with("DATA") {
                assert!(last.starts_with("354"), "{last}");
            }
            if line.ends_with("\r\n.\r\n") {
                assert!(last.starts_with("250"), "the report was taken: {last}");
            }
        }
        last
    }

    /// A hard bounce of `copy`, as a receiving MX sends it to the return path.
    async fn bounce(&self, copy: &Copy) {
        let dsn = format!(
            "From: MAILER-DAEMON@mx.provider.test\r\nTo: {verp}\r\nSubject: Undelivered\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
             --b1\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n\r\n\
             --b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.provider.test\r\n\r\n\
             Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--b1--\r\n",
            verp = copy.verp,
            rcpt = copy.rcpt,
        );
        self.report(&copy.verp, &dsn).await;
    }

    /// A spam complaint about `copy` (ARF, RFC 5965) to the return path host's feedback
    /// address.
    async fn complaint(&self, copy: &Copy) {
        let host = copy.verp.split_once('@').expect("@").1;
        let arf = format!(
            "From: feedback@fbl.provider.test\r\nTo: fbl@{host}\r\nSubject: FW: News\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r\n\r\n\
             --b2\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\r\n\
             --b2\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
             User-Agent: Provider-FBL/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <{verp}>\r\n\
             Original-Rcpt-To: <{rcpt}>\r\n\r\n\
             --b2\r\nContent-Type: message/rfc822\r\n\r\nReturn-Path: <{verp}>\r\nTo: {rcpt}\r\nSubject: News\r\n\r\nHello.\r\n\r\n--b2--\r\n",
            verp = copy.verp,
            rcpt = copy.rcpt,
        );
        self.report(&format!("fbl@{host}"), &arf).await;
    }

    async fn wait_for(&self, account: &AccountId, t: EventType, n: usize) {
        for _ in 0..400 {
            if self.count(account, t).await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{n} {t} events never came");
    }

    fn guard(&self) -> ReputationGuard {
        ReputationGuard {
            store: self.store.clone(),
            notices: self.notices.clone(),
            plans: plans(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_and_complaints_pause_an_account_and_tell_its_owner() {
    let w = world().await;
    let guard = w.guard();
    let bouncy = w.account("bouncy").await;
    let spammy = w.account("spammy").await;
    let clean = w.account("clean").await;
    let bouncy_copies = w.deliver(&bouncy, "bouncy").await;
    let spammy_copies = w.deliver(&spammy, "spammy").await;
    let clean_copies = w.deliver(&clean, "clean").await;
    assert!(guard.check().await.expect("check").is_empty());

    // Two hard bounces of the forty sent to are 5 %: at the limit, not above it.
    for c in &bouncy_copies[..2] {
        w.bounce(c).await;
    }
    w.wait_for(&bouncy, EventType::Bounced, 2).await;
    // One complaint for the clean account is 2.5 %, above 0.1 %, but it comes a day later.
    assert!(guard.check().await.expect("check").is_empty());

    // A mail scheduled for tomorrow waits in the queue of the account about to pause.
    let mut later = message("bouncy.test", "later@example.test");
    later.send_at = Some(Timestamp(w.clock.now().millis() + 86_400_000));
    let waiting = w.acceptor.accept(&bouncy, later).await.expect("accepted");

    // The third bounce (7.5 %) and a complaint (2.5 %) pause both.
    w.bounce(&bouncy_copies[2]).await;
    w.complaint(&spammy_copies[0]).await;
    w.wait_for(&bouncy, EventType::Bounced, 3).await;
    w.wait_for(&spammy, EventType::Complained, 1).await;
    let mut paused = guard.check().await.expect("check");
    paused.sort_by_key(|(a, _)| a != &bouncy);
    assert_eq!(paused.len(), 2, "{paused:?}");
    let (who, why) = &paused[0];
    assert_eq!(who, &bouncy);
    assert_eq!(
        (why.cause, why.count, why.of, why.rate_bp, why.limit_bp),
        // The mail scheduled for tomorrow was sent to as well.
        (PauseCause::Bounces, 3, 41, 731, 500)
    );
    assert_eq!(paused[1].0, spammy);
    assert_eq!(
        (paused[1].1.cause, paused[1].1.count, paused[1].1.of),
        (PauseCause::Complaints, 1, 40)
    );

    for account in [&bouncy, &spammy] {
        // Suspended, with the figures, and a `suspended` event saying why.
        let state = w.store.account_state(account).await.expect("state");
        assert_eq!(state.status, AccountStatus::Suspended);
        assert!(w.store.suspension(account).await.expect("why").is_some());
        assert_eq!(w.count(account, EventType::Suspended).await, 1);
        // New mail is refused with the reason.
        let domain = if account == &bouncy {
            "bouncy.test"
        } else {
            "spammy.test"
        };
        match w
            .acceptor
            .accept(account, message(domain, "new@example.test"))
            .await
        {
            Err(AcceptError::Paused(p)) => {
                assert!(p.to_string().contains("above the limit"), "{p}")
            }
            other => panic!("{other:?}"),
        }
    }
    // The queued mail is held, not sent.
    let m = w
        .store
        .message(&bouncy, waiting.id.as_str())
        .await
        .expect("message");
    assert_eq!(m.recipients[0].status, RecipientStatus::Held);

    // Each owner is told, by a notice from the system account, with the figures.
    let (owner, _) = w.store.owner(&bouncy).await.expect("owner");
    let told = kuvert_testkit::world::accepted_for(&w.store, w.notices.account()).await;
    assert!(told.contains(&owner), "{told:?}");
    assert!(
        told.contains(&"owner@spammy.owners.example".to_owned()),
        "{told:?}"
    );
    assert_eq!(told.len(), 2, "one notice each: {told:?}");
    // Lifted at once: the figures that paused it do not pause it again, and nobody is told
    // twice.
    assert!(unsuspend(&w.store, &spammy, "ops").await.expect("lift"));
    assert!(
        guard.check().await.expect("check").is_empty(),
        "paused again"
    );
    assert_eq!(
        w.store.account_state(&spammy).await.expect("state").status,
        AccountStatus::Active
    );
    // The check runs again, a day later: nobody is paused twice, nor told twice.
    w.clock.advance_millis(25 * 3_600_000);
    assert!(guard.check().await.expect("check").is_empty());

    // The clean account's complaint a day after its sending: out of the window.
    w.complaint(&clean_copies[0]).await;
    w.wait_for(&clean, EventType::Complained, 1).await;
    assert!(guard.check().await.expect("check").is_empty());
    assert_eq!(
        w.store.account_state(&clean).await.expect("state").status,
        AccountStatus::Active
    );

    // The operator lifts the pause: the held mail is due at once and the account sends.
    assert!(unsuspend(&w.store, &bouncy, "ops").await.expect("lift"));
    assert!(!unsuspend(&w.store, &bouncy, "ops").await.expect("again"));
    let m = w
        .store
        .message(&bouncy, waiting.id.as_str())
        .await
        .expect("message");
    assert_eq!(m.recipients[0].status, RecipientStatus::Queued);
    w.acceptor
        .accept(&bouncy, message("bouncy.test", "again@example.test"))
        .await
        .expect("sends again");
    let audit = w.store.audit_log(&bouncy, None, 10).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "lifted the pause of sending" && e.actor == "ops"),
        "{audit:?}"
    );
}
