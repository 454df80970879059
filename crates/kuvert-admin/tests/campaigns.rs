//! The campaign runner on a real store (SQLite) with a moved clock: each contact gets a
//! campaign once, whether a node died in the middle of a page (its copies committed, its
//! progress not) or the account paused and resumed it under an hourly rate.

use std::sync::Arc;

use kuvert_core::account::{CompanyProfile, Plan, UserProfile};
use kuvert_core::campaign::{Audience, CampaignState};
use kuvert_core::contact::ConsentMethod;
use kuvert_core::domain::DomainSettings;
use kuvert_core::id::AccountId;
use kuvert_core::submission::Limits;
use kuvert_core::{Clock, EmailAddress, ManualClock, Timestamp};
use kuvert_store::{CampaignCopy, CampaignSettings, Store, StoreOptions};
use kuvert_submit::Acceptor;

const CONTACTS: usize = 300;

struct World {
    store: Store,
    clock: ManualClock,
    acceptor: Acceptor,
    account: AccountId,
    list: String,
    _dir: tempfile::TempDir,
}

/// The template `note`: `content`, with the subject "For {{name}}".
async fn note(store: &Store, account: &AccountId, content: &str) {
    kuvert_admin::templates::create_template(
        store,
        account,
        "note",
        None,
        kuvert_admin::templates::VersionRequest {
            tag: None,
            comment: None,
            active: true,
            source: kuvert_template::Source {
                engine: kuvert_template::Engine::Html,
                content: content.into(),
                text: None,
                subject: Some("For {{name}}".into()),
                defaults: Default::default(),
            },
        },
    )
    .await
    .expect("template");
}

/// A contact subscribed to `list` through the API.
fn member(address: &str, name: &str, list: &kuvert_core::id::ListId) -> kuvert_store::NewContact {
    kuvert_store::NewContact {
        address: EmailAddress::parse(address).expect("address"),
        name: Some(name.to_owned()),
        properties: Default::default(),
        lists: vec![list.clone()],
        consent: kuvert_store::ConsentInput {
            method: ConsentMethod::Api,
            text: None,
            source: None,
        },
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("dir");
    let clock = ManualClock::new(Timestamp(1_795_000_000_000));
    let store = Store::open(StoreOptions {
        url: StoreOptions::sqlite_url(dir.path()),
        master_key: [5; 32],
        clock: Arc::new(clock.clone()),
    })
    .await
    .expect("store");
    let (account, _) = kuvert_admin::create_account(
        &store,
        kuvert_admin::AccountRequest {
            email: "owner@camp.example".into(),
            password: "s3cret-pass".into(),
            plan: Plan::Premium,
            region: Default::default(),
            company: CompanyProfile::default(),
            owner: UserProfile::default(),
        },
    )
    .await
    .expect("account");
    kuvert_admin::add_domain(
        &store,
        &account.id,
        "camp.example",
        &DomainSettings::default(),
        true,
    )
    .await
    .expect("domain");
    let list = store
        .create_list(&account.id, kuvert_store::ListSettings::named("news"))
        .await
        .expect("list");
    for i in 0..CONTACTS {
        store
            .create_contact(
                &account.id,
                member(&format!("c{i}@example.com"), &format!("C{i}"), &list.id),
            )
            .await
            .expect("contact");
    }
    note(&store, &account.id, "<p>Hi {{name}}</p>").await;
    let acceptor = Acceptor::new(
        store.clone(),
        Limits::default(),
        [(Plan::Premium, Plan::Premium.default_limits())].into(),
    );
    World {
        store,
        clock,
        acceptor,
        account: account.id,
        list: list.id.to_string(),
        _dir: dir,
    }
}

impl World {
    /// The campaign as it is now.
    async fn current(&self, c: &kuvert_store::Campaign) -> kuvert_store::Campaign {
        self.store
            .campaign(&self.account, c.id.as_str())
            .await
            .expect("campaign")
    }

    /// The campaigns' audience as the runner reads it: the list.
    fn audience(&self) -> Vec<kuvert_core::segment::Filter> {
        vec![kuvert_core::segment::Filter::List(
            kuvert_core::segment::ListCondition {
                list: self.list.clone(),
                status: None,
            },
        )]
    }

    async fn campaign(&self, per_hour: Option<u32>) -> kuvert_store::Campaign {
        self.campaign_with(per_hour, None).await
    }

    async fn campaign_with(
        &self,
        per_hour: Option<u32>,
        ab: Option<kuvert_core::campaign::AbTest>,
    ) -> kuvert_store::Campaign {
        let audience = Audience {
            lists: vec![self.list.clone()],
            segments: Vec::new(),
        };
        self.scheduled(per_hour, ab, audience).await
    }

    /// A campaign of the template `note` to `audience`, scheduled.
    async fn scheduled(
        &self,
        per_hour: Option<u32>,
        ab: Option<kuvert_core::campaign::AbTest>,
        audience: Audience,
    ) -> kuvert_store::Campaign {
        let c = self
            .store
            .create_campaign(
                &self.account,
                CampaignSettings {
                    name: "c".into(),
                    from: "news@camp.example".into(),
                    reply_to: None,
                    subject: None,
                    template: "note".into(),
                    version: None,
                    audience,
                    send_at: None,
                    per_hour,
                    max_errors: 10,
                    ab,
                },
            )
            .await
            .expect("campaign");
        self.store
            .set_campaign_state(&self.account, c.id.as_str(), CampaignState::Scheduled, None)
            .await
            .expect("scheduled")
    }

    /// A runner whose acceptor holds the account to `limit` recipients an hour.
    fn runner_with_hourly_limit(&self, limit: u64) -> kuvert_admin::campaigns::CampaignRunner {
        let mut limits = Plan::Premium.default_limits();
        limits.hourly_limit = limit;
        let acceptor = Acceptor::new(
            self.store.clone(),
            Limits::default(),
            [(Plan::Premium, limits)].into(),
        );
        kuvert_admin::campaigns::CampaignRunner::new(
            self.store.clone(),
            acceptor,
            "node-a",
            tokio::sync::watch::channel(false).1,
        )
    }

    fn runner(&self) -> kuvert_admin::campaigns::CampaignRunner {
        kuvert_admin::campaigns::CampaignRunner::new(
            self.store.clone(),
            self.acceptor.clone(),
            "node-a",
            tokio::sync::watch::channel(false).1,
        )
    }

    /// Every message of the account: its subject, tags and recipient.
    async fn messages(&self) -> Vec<(String, Vec<String>, kuvert_core::id::RecipientId)> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let ids = self
                .store
                .message_ids(&self.account, after.as_deref(), 500)
                .await
                .expect("ids");
            let Some(last) = ids.last() else { break };
            after = Some(last.to_string());
            for id in ids {
                let m = self
                    .store
                    .message(&self.account, id.as_str())
                    .await
                    .expect("message");
                for r in m.recipients {
                    out.push((m.subject.clone(), m.tags.clone(), r.id));
                }
            }
        }
        out
    }

    async fn engage(
        &self,
        recipient: &kuvert_core::id::RecipientId,
        what: kuvert_store::Engagement,
    ) {
        self.engage_at(recipient, what, None).await;
    }

    async fn engage_at(
        &self,
        recipient: &kuvert_core::id::RecipientId,
        what: kuvert_store::Engagement,
        url: Option<&str>,
    ) {
        let r = self
            .store
            .recipient_ref(recipient)
            .await
            .expect("ref")
            .expect("recipient");
        self.store
            .record_engagement(
                &r,
                &what,
                kuvert_core::event::Interaction {
                    url: url.map(str::to_owned),
                    ..Default::default()
                },
                kuvert_core::tracking::TrackingMode::Full,
            )
            .await
            .expect("engagement");
    }

    /// Messages of the account and copies recorded for the campaign.
    async fn counts(&self, c: &kuvert_store::Campaign) -> (i64, usize) {
        let rows = self.store.account_rows(&self.account).await.expect("rows");
        let messages = rows
            .iter()
            .find(|(t, _)| *t == "messages")
            .map_or(0, |r| r.1);
        let ids: Vec<String> = self
            .store
            .audience_page(&self.account, &self.audience(), None, 10_000)
            .await
            .expect("audience")
            .into_iter()
            .map(|c| c.id.to_string())
            .collect();
        let copies = self
            .store
            .campaign_sent_to(&c.id, &ids)
            .await
            .expect("copies")
            .len();
        (messages, copies)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_a_dead_node_left_is_not_sent_again() {
    let w = world().await;
    let c = w.campaign(None).await;
    // Another node took the campaign, committed the copies of 50 contacts and died before
    // it recorded its page.
    let claimed = w
        .store
        .claim_campaign("node-dead.1", 60_000)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(claimed.campaign.id, c.id);
    let first = w
        .store
        .audience_page(&w.account, &w.audience(), None, 50)
        .await
        .expect("page");
    for contact in &first {
        let (_, rendered) = w
            .acceptor
            .render_template(
                &w.account,
                &kuvert_submit::TemplateUse {
                    name: "note".into(),
                    ..Default::default()
                },
                [("name".to_owned(), serde_json::json!(contact.name))]
                    .into_iter()
                    .collect(),
            )
            .await
            .expect("render");
        let sub = kuvert_admin::campaigns::copy_submission(
            &claimed.campaign,
            claimed.campaign.settings.subject.as_deref(),
            contact,
            rendered,
        )
        .expect("copy");
        let mark = CampaignCopy {
            campaign: c.id.clone(),
            contact: contact.id.clone(),
        };
        w.acceptor
            .accept_copy(&w.account, sub.clone(), Some(mark.clone()))
            .await
            .expect("copy accepted");
        // A second commit of the same copy is refused: the contact has it.
        assert!(matches!(
            w.acceptor.accept_copy(&w.account, sub, Some(mark)).await,
            Err(kuvert_submit::AcceptError::AlreadySent)
        ));
    }
    // Its lease runs out; this node takes over and finishes.
    let runner = w.runner();
    assert!(
        !runner.run_one().await.expect("run"),
        "the dead node's lease still holds"
    );
    w.clock.advance_millis(61_000);
    assert!(runner.run_one().await.expect("run"));
    let done = w.current(&c).await;
    assert_eq!(done.state, CampaignState::Sent);
    // The dead node's 50 count as sent: their copies went, only the count was lost.
    assert_eq!(
        (done.sent, done.skipped, done.errors),
        (CONTACTS as u64, 0, 0)
    );
    assert_eq!(
        w.counts(&c).await,
        (CONTACTS as i64, CONTACTS),
        "one message per contact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_the_hourly_rate_send_nobody_twice() {
    let w = world().await;
    // 120 an hour: two a minute, and a minute's worth at the start.
    let c = w.campaign(Some(120)).await;
    let runner = w.runner();
    assert!(runner.run_one().await.expect("run"));
    let now = w.current(&c).await;
    assert_eq!((now.state, now.sent), (CampaignState::Sending, 2));
    // Paused while the runner holds it, resumed half an hour later: it goes on where it was.
    w.store
        .set_campaign_state(&w.account, c.id.as_str(), CampaignState::Paused, None)
        .await
        .expect("pause");
    w.clock.advance_millis(30 * 60_000);
    assert!(
        !runner.run_one().await.expect("run"),
        "a paused campaign is not claimed"
    );
    w.store
        .set_campaign_state(&w.account, c.id.as_str(), CampaignState::Sending, None)
        .await
        .expect("resume");
    assert!(runner.run_one().await.expect("run"));
    let now = w.current(&c).await;
    // The rate counts from the resume: the pause saved nothing up.
    assert_eq!(now.sent, 4, "{now:?}");
    // Three hours on, the rest.
    w.clock.advance_millis(3 * 3_600_000);
    assert!(runner.run_one().await.expect("run"));
    let now = w.current(&c).await;
    assert_eq!(
        (now.state, now.sent, now.skipped),
        (CampaignState::Sent, CONTACTS as u64, 0)
    );
    assert_eq!(w.counts(&c).await, (CONTACTS as i64, CONTACTS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_that_must_wait_loses_no_contact() {
    let w = world().await;
    let c = w.campaign(None).await;
    // The template goes while the campaign waits: nothing can go, the campaign pauses with
    // the reason, and no contact is passed over.
    w.store
        .delete_template(&w.account, "note")
        .await
        .expect("delete");
    let runner = w.runner();
    assert!(runner.run_one().await.expect("run"));
    let now = w.current(&c).await;
    assert_eq!(now.state, CampaignState::Paused);
    assert_eq!((now.sent, now.skipped, now.errors), (0, 0, 0));
    assert!(
        now.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("note"),
        "{now:?}"
    );
    // The template is back; resumed, the campaign reaches everyone.
    note(&w.store, &w.account, "<p>Back, {{name}}</p>").await;
    w.store
        .set_campaign_state(&w.account, c.id.as_str(), CampaignState::Sending, None)
        .await
        .expect("resume");
    assert!(runner.run_one().await.expect("run"));
    let now = w.current(&c).await;
    assert_eq!(
        (now.state, now.sent),
        (CampaignState::Sent, CONTACTS as u64)
    );
    assert_eq!(w.counts(&c).await, (CONTACTS as i64, CONTACTS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_test_sends_the_variant_with_more_opens_to_the_rest() {
    use kuvert_core::campaign::{AbMetric, AbTest, AbVariant};
    let w = world().await;
    let ab = AbTest {
        variants: vec![
            AbVariant {
                subject: Some("Subject A".into()),
                ..Default::default()
            },
            AbVariant {
                subject: Some("Subject B".into()),
                ..Default::default()
            },
        ],
        sample_percent: 40,
        metric: AbMetric::Opens,
        wait_minutes: 120,
    };
    let c = w.campaign_with(None, Some(ab.clone())).await;
    let runner = w.runner();
    // The sample: about 40 % of the contacts, each with its variant, tagged with it.
    assert!(runner.run_one().await.expect("run"));
    let sample = w.messages().await;
    assert!(
        (60..=180).contains(&sample.len()),
        "a sample of {} of {CONTACTS}",
        sample.len()
    );
    let of = |letter: &str| {
        sample
            .iter()
            .filter(|(subject, tags, _)| {
                subject == &format!("Subject {}", letter.to_uppercase())
                    && tags.contains(&format!("{}.{letter}", c.id))
            })
            .map(|(_, _, r)| r.clone())
            .collect::<Vec<_>>()
    };
    let (a, b) = (of("a"), of("b"));
    assert_eq!(a.len() + b.len(), sample.len(), "each copy is a variant's");
    assert!(
        a.len() >= 10 && b.len() >= 10,
        "{} and {}",
        a.len(),
        b.len()
    );
    let waiting = w.current(&c).await;
    assert_eq!(waiting.state, CampaignState::Sending);
    assert!(waiting.ab_decide_at.is_some() && waiting.ab_result.is_none());
    // Before the wait is over nothing more goes.
    w.clock.advance_millis(60 * 60_000);
    assert!(!runner.run_one().await.expect("run"), "not due yet");
    assert_eq!(w.messages().await.len(), sample.len());
    // B's readers open more (some twice: unique opens count), A's fewer.
    for r in &b[..8] {
        w.engage(r, kuvert_store::Engagement::Open).await;
        w.engage(r, kuvert_store::Engagement::Open).await;
    }
    for r in &a[..5] {
        w.engage(r, kuvert_store::Engagement::Open).await;
    }
    // Ten join the list during the wait; those the hash puts in the sample missed it, and
    // get the winner with the rest.
    let mut joined_in_sample = 0;
    for i in 0..10 {
        let joined = w
            .store
            .create_contact(
                &w.account,
                member(
                    &format!("late{i}@example.com"),
                    &format!("Late {i}"),
                    &kuvert_core::id::ListId::from_string(w.list.clone()),
                ),
            )
            .await
            .expect("contact");
        joined_in_sample += usize::from(ab.assign(c.id.as_str(), joined.id.as_str()).is_some());
    }
    assert!(joined_in_sample > 0, "none of ten in a 40 % sample");
    w.clock.advance_millis(61 * 60_000);
    assert!(runner.run_one().await.expect("run"));
    let done = w.current(&c).await;
    assert_eq!(done.state, CampaignState::Sent, "{done:?}");
    let result = done.ab_result.expect("a choice");
    assert_eq!(result.winner, 1, "{result:?}");
    assert_eq!(result.figures[0].opened_unique, 5);
    assert_eq!(result.figures[1].opened_unique, 8);
    assert_eq!(result.figures[0].sent, a.len() as u64);
    assert_eq!(result.figures[1].sent, b.len() as u64);
    // The rest got B, untagged by a variant; every contact once.
    let everyone = CONTACTS + 10;
    let all = w.messages().await;
    assert_eq!(all.len(), everyone);
    let rest: Vec<_> = all.iter().filter(|(_, tags, _)| tags.len() == 1).collect();
    assert_eq!(rest.len(), everyone - sample.len());
    assert!(rest.iter().all(|(subject, _, _)| subject == "Subject B"));
    assert_eq!(done.sent, everyone as u64);
    assert_eq!(w.counts(&c).await, (everyone as i64, everyone));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_from_a_copy_leaves_the_campaigns_list_only() {
    let w = world().await;
    let other = w
        .store
        .create_list(&w.account, kuvert_store::ListSettings::named("other"))
        .await
        .expect("list");
    w.store
        .update_contact(
            &w.account,
            "c1@example.com",
            kuvert_store::ContactPatch {
                subscribe: vec![other.id.clone()],
                ..Default::default()
            },
        )
        .await
        .expect("second list");
    let c = w.campaign(None).await;
    assert!(w.runner().run_one().await.expect("run"));
    let all = w.messages().await;
    let (_, _, to_c1) = all
        .iter()
        .find(|(subject, _, _)| subject == "For C1")
        .expect("c1's copy");
    w.engage(to_c1, kuvert_store::Engagement::Unsubscribe).await;
    let c1 = w
        .store
        .contact(&w.account, "c1@example.com")
        .await
        .expect("contact");
    // Off the campaign's list, on the other, still active and not suppressed: a receipt
    // still reaches them.
    assert_eq!(c1.status, kuvert_core::contact::ContactStatus::Active);
    let status = |list: &str| {
        c1.subscriptions
            .iter()
            .find(|s| s.list_id.as_str() == list)
            .map(|s| s.status)
    };
    assert_eq!(
        status(&w.list),
        Some(kuvert_core::contact::SubscriptionStatus::Unsubscribed)
    );
    assert_eq!(
        status(other.id.as_str()),
        Some(kuvert_core::contact::SubscriptionStatus::Subscribed)
    );
    assert!(
        w.store
            .contact_refusal(&w.account, "c1@example.com")
            .await
            .expect("refusal")
            .is_none()
    );
    let withdrawn = c1
        .consent
        .iter()
        .filter(|r| r.action == kuvert_core::contact::ConsentAction::Withdrawn)
        .count();
    assert_eq!(withdrawn, 1, "{:?}", c1.consent);
    // Leaving every list: off the other too, the contact unsubscribed.
    w.engage(to_c1, kuvert_store::Engagement::LeaveAll).await;
    let c1 = w
        .store
        .contact(&w.account, "c1@example.com")
        .await
        .expect("contact");
    assert_eq!(c1.status, kuvert_core::contact::ContactStatus::Unsubscribed);
    assert!(
        c1.subscriptions
            .iter()
            .all(|s| s.status == kuvert_core::contact::SubscriptionStatus::Unsubscribed)
    );
    let _ = c;
}

/// Each metric of the campaign's copies, summed over its hours.
async fn campaign_totals(
    w: &World,
    c: &kuvert_store::Campaign,
) -> std::collections::BTreeMap<String, i64> {
    let q = kuvert_store::StatsQuery {
        from: Timestamp(0),
        to: Timestamp(w.clock.now().millis() + 1),
        domain_id: None,
        tag: Some(c.id.to_string()),
    };
    let mut out = std::collections::BTreeMap::new();
    for (_, metric, n) in w.store.stats(&w.account, &q).await.expect("stats") {
        *out.entry(metric).or_default() += n;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_statistics_match_the_events_and_outlive_them() {
    use kuvert_store::Engagement;
    let w = world().await;
    let c = w.campaign(None).await;
    assert!(w.runner().run_one().await.expect("run"));
    let copies = w.messages().await;
    assert_eq!(copies.len(), CONTACTS);
    // 40 open (10 of them twice), 12 click (two links, one twice), 3 unsubscribe.
    for (i, (_, _, r)) in copies.iter().take(40).enumerate() {
        w.engage(r, Engagement::Open).await;
        if i < 10 {
            w.clock.advance_millis(3_600_000);
            w.engage(r, Engagement::Open).await;
        }
        if i < 12 {
            let url = if i % 3 == 0 {
                "https://shop.example/b"
            } else {
                "https://shop.example/a"
            };
            w.engage_at(r, Engagement::Click, Some(url)).await;
        }
        if i == 0 {
            w.engage_at(r, Engagement::Click, Some("https://shop.example/a"))
                .await;
        }
        if i < 3 {
            w.engage(r, Engagement::Unsubscribe).await;
        }
    }
    // The events of the campaign's copies, counted by type and by recipient.
    let mut events: std::collections::BTreeMap<String, i64> = Default::default();
    let mut openers = std::collections::BTreeSet::new();
    let mut clickers = std::collections::BTreeSet::new();
    let mut before = None;
    loop {
        let page = w
            .store
            .list_events(
                &w.account,
                &kuvert_store::EventFilter {
                    tag: Some(c.id.to_string()),
                    before,
                    limit: 200,
                    ..Default::default()
                },
            )
            .await
            .expect("events");
        for e in &page.items {
            *events.entry(e.event_type.as_str().to_owned()).or_default() += 1;
            let r = e.recipient_id.clone().expect("recipient");
            match e.event_type.as_str() {
                "opened" => openers.insert(r),
                "clicked" => clickers.insert(r),
                _ => false,
            };
        }
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    let expected: std::collections::BTreeMap<String, i64> = [
        ("accepted", CONTACTS as i64),
        ("opened", 50),
        ("clicked", 13),
        ("unsubscribed", 3),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(events, expected, "the events");
    let mut counted = expected.clone();
    counted.insert("opened_unique".into(), openers.len() as i64);
    counted.insert("clicked_unique".into(), clickers.len() as i64);
    assert_eq!((openers.len(), clickers.len()), (40, 12));
    let totals = campaign_totals(&w, &c).await;
    assert_eq!(totals, counted, "the statistics say what the events say");
    // Per link: a has 9 clicks (8 readers, one twice), b 4.
    let links = w
        .store
        .campaign_links(&w.account, &c.id, 100)
        .await
        .expect("links");
    assert_eq!(
        links,
        vec![
            ("https://shop.example/a".to_owned(), 9),
            ("https://shop.example/b".to_owned(), 4)
        ]
    );
    // The raw events go; the statistics stay.
    let purged = w
        .store
        .purge_events_before(Timestamp(w.clock.now().millis() + 1), 100_000)
        .await
        .expect("purge");
    assert!(purged >= (CONTACTS + 66) as u64, "{purged}");
    let left = w
        .store
        .list_events(
            &w.account,
            &kuvert_store::EventFilter {
                tag: Some(c.id.to_string()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("events");
    assert!(left.items.is_empty());
    assert_eq!(campaign_totals(&w, &c).await, counted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_ends_what_the_campaign_reached_the_contact_through() {
    use kuvert_core::contact::{ContactStatus, SubscriptionStatus};
    use kuvert_store::Engagement;
    let w = world().await;
    let news = kuvert_core::id::ListId::from_string(w.list.clone());
    let other = w
        .store
        .create_list(&w.account, kuvert_store::ListSettings::named("other"))
        .await
        .expect("list");
    let segment = w
        .store
        .create_segment(
            &w.account,
            "on other",
            &kuvert_core::segment::Filter::List(kuvert_core::segment::ListCondition {
                list: other.id.to_string(),
                status: None,
            }),
        )
        .await
        .expect("segment");
    // c5 left news long ago and is on other: the campaign reaches it through its segment.
    w.store
        .update_contact(
            &w.account,
            "c5@example.com",
            kuvert_store::ContactPatch {
                subscribe: vec![other.id.clone()],
                unsubscribe: vec![news.clone()],
                ..Default::default()
            },
        )
        .await
        .expect("c5");
    let audience = Audience {
        lists: vec![w.list.clone()],
        segments: vec![segment.id.to_string()],
    };
    let c = w.scheduled(None, None, audience).await;
    assert!(w.runner().run_one().await.expect("run"));
    let all = w.messages().await;
    assert_eq!(all.len(), CONTACTS);
    let copy_for = |name: &str| {
        all.iter()
            .find(|(subject, _, _)| subject == &format!("For {name}"))
            .map(|(_, _, r)| r.clone())
            .expect("a copy")
    };
    let status = |address: &'static str| {
        let store = w.store.clone();
        let account = w.account.clone();
        async move {
            store
                .contact(&account, address)
                .await
                .expect("contact")
                .status
        }
    };
    // The segment still selects c5 after the click: it leaves everything.
    w.engage(&copy_for("C5"), Engagement::Unsubscribe).await;
    assert_eq!(status("c5@example.com").await, ContactStatus::Unsubscribed);
    // c1 came through news alone: off news, still active; a second click adds nothing.
    w.engage(&copy_for("C1"), Engagement::Unsubscribe).await;
    w.engage(&copy_for("C1"), Engagement::Unsubscribe).await;
    let c1 = w
        .store
        .contact(&w.account, "c1@example.com")
        .await
        .expect("c1");
    assert_eq!(c1.status, ContactStatus::Active);
    assert_eq!(c1.subscriptions[0].status, SubscriptionStatus::Unsubscribed);
    // c2 was deleted after the send: with no list to leave, the address is suppressed, so
    // that an import cannot bring it back to the next campaign.
    w.store
        .delete_contact(&w.account, "c2@example.com")
        .await
        .expect("delete");
    w.engage(&copy_for("C2"), Engagement::Unsubscribe).await;
    assert!(
        w.store
            .contact_refusal(&w.account, "c2@example.com")
            .await
            .expect("refusal")
            .is_some()
    );
    // Three people unsubscribed, whatever the clicks.
    assert_eq!(campaign_totals(&w, &c).await.get("unsubscribed"), Some(&3));
}

/// A campaign that reaches a quota waits for its reset, claimed by no one, and goes on by
/// itself: no contact is passed over, none gets two copies, and it never pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_at_its_quota_waits_for_the_reset() {
    let w = world().await;
    let runner = w.runner_with_hourly_limit(120);
    let c = w.campaign(None).await;
    assert!(runner.run_one().await.expect("run"));
    let now = w.current(&c).await;
    assert_eq!(now.state, CampaignState::Sending, "waiting, not paused");
    // Copies go 32 at once: those after the first refused one in the page's order are
    // counted when the campaign goes on.
    assert!(now.sent <= 120, "{now:?}");
    assert_eq!(w.counts(&c).await, (120, 120), "the hour's quota, exactly");
    assert!(
        now.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("hour"),
        "{now:?}"
    );
    assert!(
        !runner.run_one().await.expect("run"),
        "not claimed before the reset"
    );
    // The next hour, the next 120; the one after, the rest.
    for sent in [240, CONTACTS] {
        w.clock.advance_millis(3_600_000);
        assert!(runner.run_one().await.expect("run"));
        assert_eq!(w.counts(&c).await, (sent as i64, sent));
    }
    let now = w.current(&c).await;
    assert_eq!(
        (now.state, now.sent),
        (CampaignState::Sent, CONTACTS as u64)
    );
}

/// A wait for a quota saves nothing up for the hourly rate: right after the reset the
/// campaign sends a minute's worth, not the hour it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_wait_saves_nothing_up_for_the_hourly_rate() {
    let w = world().await;
    let runner = w.runner_with_hourly_limit(100);
    // 1,200 an hour: twenty a minute, and a minute's worth at the start.
    let c = w.campaign(Some(1200)).await;
    assert!(runner.run_one().await.expect("run"));
    assert_eq!(w.counts(&c).await.1, 20);
    // Ten minutes on the rate allows 200 more; the hour's quota, 80.
    w.clock.advance_millis(10 * 60_000);
    assert!(runner.run_one().await.expect("run"));
    assert_eq!(w.counts(&c).await.1, 100);
    let reset = kuvert_core::quota::QuotaPeriod::Hour.resets_at(w.clock.now());
    w.clock.set(Timestamp(reset.millis() + 1));
    assert!(runner.run_one().await.expect("run"));
    // A minute's worth after the reset (the page may hold copies that raced past the
    // refusal before the wait, counted as sent then), not another hour's quota.
    let copies = w.counts(&c).await.1;
    assert!((101..=120).contains(&copies), "{copies}");
    assert_eq!(w.current(&c).await.state, CampaignState::Sending);
}
