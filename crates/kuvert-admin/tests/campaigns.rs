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
use kuvert_core::{EmailAddress, ManualClock, Timestamp};
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
                kuvert_store::NewContact {
                    address: EmailAddress::parse(&format!("c{i}@example.com")).expect("address"),
                    name: Some(format!("C{i}")),
                    properties: Default::default(),
                    lists: vec![list.id.clone()],
                    consent: kuvert_store::ConsentInput {
                        method: ConsentMethod::Api,
                        text: None,
                        source: None,
                    },
                },
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
                    audience: Audience {
                        lists: vec![self.list.clone()],
                        segments: Vec::new(),
                    },
                    send_at: None,
                    per_hour,
                    max_errors: 10,
                },
            )
            .await
            .expect("campaign");
        self.store
            .set_campaign_state(&self.account, c.id.as_str(), CampaignState::Scheduled, None)
            .await
            .expect("scheduled")
    }

    fn runner(&self) -> kuvert_admin::campaigns::CampaignRunner {
        kuvert_admin::campaigns::CampaignRunner::new(
            self.store.clone(),
            self.acceptor.clone(),
            "node-a",
            tokio::sync::watch::channel(false).1,
        )
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
        let sub = kuvert_admin::campaigns::copy_submission(&claimed.campaign, contact, rendered)
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
    let done = w
        .store
        .campaign(&w.account, c.id.as_str())
        .await
        .expect("campaign");
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
    let now = w
        .store
        .campaign(&w.account, c.id.as_str())
        .await
        .expect("campaign");
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
    let now = w
        .store
        .campaign(&w.account, c.id.as_str())
        .await
        .expect("campaign");
    // The rate counts from the resume: the pause saved nothing up.
    assert_eq!(now.sent, 4, "{now:?}");
    // Three hours on, the rest.
    w.clock.advance_millis(3 * 3_600_000);
    assert!(runner.run_one().await.expect("run"));
    let now = w
        .store
        .campaign(&w.account, c.id.as_str())
        .await
        .expect("campaign");
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
    let now = w
        .store
        .campaign(&w.account, c.id.as_str())
        .await
        .expect("campaign");
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
    let now = w
        .store
        .campaign(&w.account, c.id.as_str())
        .await
        .expect("campaign");
    assert_eq!(
        (now.state, now.sent),
        (CampaignState::Sent, CONTACTS as u64)
    );
    assert_eq!(w.counts(&c).await, (CONTACTS as i64, CONTACTS));
}
