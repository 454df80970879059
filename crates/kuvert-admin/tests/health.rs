//! Domains re-checked daily on a moved clock, against the testkit's DNS server: a record that
//! breaks is shown and told once; a missing SPF record leaves the domain sending, a missing
//! DKIM record stops it; a DMARC record gone or wanting is advice, told and stopping nothing.

use kuvert_admin::health::DomainHealth;
use kuvert_admin::notices::Notices;
use kuvert_core::account::Plan;
use kuvert_core::domain::{DnsRecord, DomainSettings, RecordPurpose, RecordType};
use kuvert_core::submission::Limits;
use kuvert_store::Store;
use kuvert_submit::Acceptor;
use kuvert_testkit::DnsServer;

const DAY: i64 = 86_400_000;

fn publish(dns: &DnsServer, r: &DnsRecord) {
    match r.record_type {
        RecordType::Txt => dns.add_txt(&r.name, &r.value),
        RecordType::Mx => dns.add_mx(&r.name, 10, &r.value),
        RecordType::Cname => dns.add_cname(&r.name, &r.value),
    }
}

/// The notices the owner got.
async fn notices_to(store: &Store, notices: &Notices, owner: &str) -> usize {
    kuvert_testkit::world::accepted_for(store, notices.account())
        .await
        .iter()
        .filter(|to| *to == owner)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_record_is_shown_told_once_and_stops_mail_only_when_it_is_dkim() {
    let kuvert_testkit::World {
        dir: _dir,
        clock,
        store,
        account,
        ..
    } = kuvert_testkit::world("first.test", Plan::Free).await;
    let settings = DomainSettings::default();
    let server = DnsServer::start();
    let dns = kuvert_dns::Dns::new(&[server.addr()], kuvert_dns::Caching::Off).expect("dns");
    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Free, Plan::Free.default_limits())].into(),
    );
    let notices = Notices::open(
        &store,
        acceptor.clone(),
        "Kuvert <notices@platform.example>",
        &settings,
    )
    .await
    .expect("notices");
    let (d, records) =
        kuvert_admin::add_domain(&store, &account.id, "health.test", &settings, false)
            .await
            .expect("domain");
    for r in records.iter().filter(|r| r.required) {
        publish(&server, r);
    }
    let (d, _) = kuvert_admin::verify_domain(&store, &dns, &d, &settings, false)
        .await
        .expect("verify");
    assert!(d.can_send() && d.problems.is_empty());
    let advised: Vec<RecordPurpose> = d.advice.iter().map(|p| p.purpose).collect();
    assert_eq!(
        advised,
        [RecordPurpose::Dmarc],
        "sends without the advised records, which are shown"
    );
    for r in records.iter().filter(|r| !r.required) {
        publish(&server, r);
    }
    let (d, _) = kuvert_admin::verify_domain(&store, &dns, &d, &settings, false)
        .await
        .expect("verify");
    assert!(
        d.problems.is_empty() && d.advice.is_empty(),
        "{:?}",
        d.advice
    );
    let health = DomainHealth {
        store: store.clone(),
        dns: dns.clone(),
        notices: notices.clone(),
        settings: settings.clone(),
    };
    let (owner, _) = store.owner(&account.id).await.expect("owner");
    let record = |purpose| {
        records
            .iter()
            .find(|r| r.purpose == purpose)
            .expect("a record")
            .name
            .clone()
    };

    // Checked just now: not due. A day later: due, and healthy.
    assert!(health.check_due().await.expect("check").is_empty());
    clock.advance_millis(DAY + 1);
    assert!(health.check_due().await.expect("check").is_empty());
    assert_eq!(notices_to(&store, &notices, &owner).await, 0);

    // The SPF record goes: shown and told, and the domain still sends.
    server.remove(
        &record(RecordPurpose::Spf),
        kuvert_testkit::dns::RecordType::TXT,
    );
    clock.advance_millis(DAY + 1);
    let broken = health.check_due().await.expect("check");
    assert_eq!(broken.len(), 1);
    let purposes: Vec<RecordPurpose> = broken[0].problems.iter().map(|p| p.purpose).collect();
    assert_eq!(purposes, [RecordPurpose::Spf]);
    assert!(
        broken[0].can_send(),
        "a missing SPF record does not stop mail"
    );
    assert_eq!(notices_to(&store, &notices, &owner).await, 1);
    // Still broken a day later: shown, not told again.
    clock.advance_millis(DAY + 1);
    assert_eq!(health.check_due().await.expect("check").len(), 1);
    assert_eq!(notices_to(&store, &notices, &owner).await, 1);

    // The DKIM record goes too: a new set of problems, told, and the domain stops.
    server.remove(
        &record(RecordPurpose::Dkim),
        kuvert_testkit::dns::RecordType::TXT,
    );
    clock.advance_millis(DAY + 1);
    let broken = health.check_due().await.expect("check");
    let purposes: Vec<RecordPurpose> = broken[0].problems.iter().map(|p| p.purpose).collect();
    assert_eq!(purposes, [RecordPurpose::Dkim, RecordPurpose::Spf]);
    assert!(!broken[0].can_send(), "a missing DKIM record stops mail");
    assert_eq!(notices_to(&store, &notices, &owner).await, 2);

    // Put back and verified: sending again, nothing shown.
    for r in records.iter().filter(|r| r.required) {
        publish(&server, r);
    }
    let (d, _) = kuvert_admin::verify_domain(&store, &dns, &broken[0], &settings, false)
        .await
        .expect("verify");
    assert!(d.can_send() && d.problems.is_empty(), "{:?}", d.problems);

    // DMARC made strict for SPF: SPF no longer aligns through the return path. Advice,
    // told once, and the domain goes on.
    let dmarc = record(RecordPurpose::Dmarc);
    server.remove(&dmarc, kuvert_testkit::dns::RecordType::TXT);
    server.add_txt(&dmarc, "v=DMARC1; p=quarantine; aspf=s");
    clock.advance_millis(DAY + 1);
    let flagged = health.check_due().await.expect("check");
    assert_eq!(flagged.len(), 1);
    assert!(flagged[0].can_send() && flagged[0].problems.is_empty());
    let advised: Vec<RecordPurpose> = flagged[0].advice.iter().map(|p| p.purpose).collect();
    assert_eq!(advised, [RecordPurpose::Dmarc]);
    assert_eq!(
        flagged[0].advice[0].found,
        ["v=DMARC1; p=quarantine; aspf=s"]
    );
    assert_eq!(notices_to(&store, &notices, &owner).await, 3);
    clock.advance_millis(DAY + 1);
    assert_eq!(health.check_due().await.expect("check").len(), 1);
    assert_eq!(notices_to(&store, &notices, &owner).await, 3, "told once");

    // A domain the operator verified without DNS is left alone by the daily re-check.
    let (o, _) = kuvert_admin::add_domain(&store, &account.id, "override.test", &settings, false)
        .await
        .expect("domain");
    let (o, _) = kuvert_admin::verify_domain(&store, &dns, &o, &settings, true)
        .await
        .expect("override");
    clock.advance_millis(DAY + 1);
    let broken = health.check_due().await.expect("check");
    assert!(broken.iter().all(|b| b.id != o.id), "{broken:?}");
    assert!(store.domain_by_id(&o.id).await.expect("domain").can_send());
}
