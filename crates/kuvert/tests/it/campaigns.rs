//! A campaign end to end on the real binary: an MJML template with variables, previewed and
//! test-sent, goes to a list of 1,000 contacts and a segment that overlaps it; the sink
//! receives each contact once, filled in, with both unsubscribe headers signed (dkimpy) and
//! a link in the body; a one-click unsubscribe takes a contact out of the next campaign.

use std::collections::HashMap;
use std::time::Duration;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{Api, dkim_record, dkim_signature, server_with_sink, unfolded, url_after};

const LIST_SIZE: usize = 1000;
/// Contacts in the segment but on no list.
const SEGMENT_ONLY: usize = 50;

async fn import(api: &Api, query: &str, body: String) {
    let id = crate::common::import(api, query, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for _ in 0..6000 {
        let (_, i) = api.get(&format!("/v1/imports/{id}")).await;
        assert_ne!(i["state"], "failed", "{i}");
        assert_ne!(i["state"], "review", "{i}");
        if i["state"] == "done" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the import did not finish");
}

async fn wait_for(sink: &SmtpSink, n: usize) {
    for _ in 0..2400 {
        if sink.received_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sink got {} of {n} messages", sink.received_count());
}

async fn wait_state(api: &Api, id: &str, state: &str) -> Value {
    for _ in 0..2400 {
        let (_, c) = api.get(&format!("/v1/campaigns/{id}")).await;
        if c["state"] == state {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, c) = api.get(&format!("/v1/campaigns/{id}")).await;
    panic!("the campaign is not {state}: {c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reaches_each_contact_once_and_honours_unsubscribes() {
    let sink = SmtpSink::start(SinkOptions::default());
    // Two campaigns of a thousand copies: more than the free plan's day.
    let api = server_with_sink(
        &sink,
        "[plans.free]\ndaily_limit = 6000\nhourly_limit = 6000",
    );

    let (status, p) = api
        .post(
            "/v1/contact-properties",
            &json!({"name": "city", "kind": "string"}),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    let (status, list) = api.post("/v1/lists", &json!({"name": "news"})).await;
    assert_eq!(status, 201, "{list}");
    let list = list["id"].as_str().expect("list id").to_owned();
    // Every tenth contact of the list lives in Paris; so do the segment-only ones.
    let mut csv = String::from("email,name,city\n");
    for i in 0..LIST_SIZE {
        let city = if i % 10 == 0 { "Paris" } else { "Berlin" };
        csv.push_str(&format!("reader{i}@example.com,Reader {i},{city}\n"));
    }
    import(&api, &format!("list={list}&mode=add"), csv).await;
    let mut csv = String::from("email,name,city\n");
    for i in 0..SEGMENT_ONLY {
        csv.push_str(&format!("visitor{i}@example.com,Visitor {i},Paris\n"));
    }
    import(&api, "mode=add", csv).await;
    let (status, seg) = api
        .post(
            "/v1/segments",
            &json!({"name": "parisians", "filter": {"property": {"name": "city", "op": "eq", "value": "Paris"}}}),
        )
        .await;
    assert_eq!(status, 201, "{seg}");
    assert_eq!(seg["count"], (LIST_SIZE / 10 + SEGMENT_ONLY) as u64);
    let segment = seg["id"].as_str().expect("segment id").to_owned();

    let (status, t) = api
        .post(
            "/v1/templates",
            &json!({"name": "weekly", "version": {"engine": "mjml", "subject": "News for {{city}}",
                "content": "<mjml><mj-body><mj-section><mj-column><mj-text>Hello {{name}} in {{city}}</mj-text></mj-column></mj-section></mj-body></mjml>"}}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let (status, p) = api
        .post(
            "/v1/templates/weekly/preview",
            &json!({"variables": {"name": "Ann", "city": "Lyon"}}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert!(
        p["html"]
            .as_str()
            .unwrap_or_default()
            .contains("Hello Ann in Lyon"),
        "{p}"
    );

    let campaign = json!({"name": "Week 49", "from": "News <news@sandbox.kuvert.test>",
        "template": "weekly", "audience": {"lists": [list], "segments": [segment]}});
    let (status, c) = api.post("/v1/campaigns", &campaign).await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["state"], "draft");
    let id = c["id"].as_str().expect("campaign id").to_owned();

    // A test send first: one message, to the tester.
    let (status, sent) = api
        .post(
            &format!("/v1/campaigns/{id}/test"),
            &json!({"to": ["tester@example.com"], "variables": {"name": "Tess", "city": "Rome"}}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    wait_for(&sink, 1).await;

    let (status, c) = api
        .post(&format!("/v1/campaigns/{id}/schedule"), &json!({}))
        .await;
    assert_eq!(status, 200, "{c}");
    let total = LIST_SIZE + SEGMENT_ONLY;
    wait_for(&sink, 1 + total).await;
    let c = wait_state(&api, &id, "sent").await;
    assert_eq!(c["sent"], total as u64, "{c}");
    assert_eq!(c["errors"], 0, "{c}");

    // Each contact once, filled in with its own properties, signed with both unsubscribe
    // headers, and a link in the body.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sink.received();
    let mut per_rcpt: HashMap<String, usize> = HashMap::new();
    for m in &got {
        for r in &m.rcpt_to {
            *per_rcpt.entry(r.clone()).or_default() += 1;
        }
    }
    assert_eq!(per_rcpt.len(), total + 1, "every contact and the tester");
    assert!(per_rcpt.values().all(|n| *n == 1), "each once");
    let copy = |addr: &str| {
        got.iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == addr))
            .expect("delivered")
    };
    let paris = unfolded(&copy("reader10@example.com").data);
    assert!(paris.contains("Subject: News for Paris"), "{paris}");
    assert!(paris.contains("Hello Reader 10 in Paris"), "{paris}");
    let visitor = unfolded(&copy("visitor3@example.com").data);
    assert!(visitor.contains("Hello Visitor 3 in Paris"), "{visitor}");
    let berlin = copy("reader11@example.com");
    let text = unfolded(&berlin.data);
    let base = api.server.base_url.clone();
    let unsubscribe = url_after(&text, &format!("{base}/u/"));
    assert!(
        text.contains(&format!("List-Unsubscribe: <{unsubscribe}>")),
        "{text}"
    );
    assert!(
        text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{text}"
    );
    assert!(
        text.matches(unsubscribe.as_str()).count() >= 2,
        "the link is in the body too: {text}"
    );
    if let Err(e) = kuvert_testkit::dkimpy_verify(&berlin.data, &dkim_record(&api).await) {
        panic!("{e}");
    }
    let signature = dkim_signature(&text);
    assert!(
        signature.contains("List-Unsubscribe:List-Unsubscribe-Post"),
        "{signature}"
    );

    // The one-click unsubscribe (a POST; a GET only shows a page).
    let r = api.http.get(&unsubscribe).send().await.expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let r = api
        .http
        .post(&unsubscribe)
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success(), "{}", r.status());
    let page = r.text().await.expect("page");
    assert!(page.contains("You are unsubscribed from: news."), "{page}");
    assert!(page.contains("Leave every list"), "{page}");
    // Off that list, not suppressed: mail the person asked for still reaches them.
    let (_, reader) = api.get("/v1/contacts/reader11@example.com").await;
    assert_eq!(reader["status"], "active", "{reader}");
    assert_eq!(
        reader["subscriptions"][0]["status"], "unsubscribed",
        "{reader}"
    );
    let (_, sup) = api.get("/v1/suppressions?type=unsubscribe").await;
    assert_eq!(sup["items"].as_array().map_or(0, Vec::len), 0, "{sup}");
    // A second click changes nothing more; a contact the campaign reached through its
    // segment alone (on no list of it) leaves the account's marketing.
    let post = |url: String| {
        let http = api.http.clone();
        async move {
            let r = http.post(&url).send().await.expect("post");
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    post(unsubscribe.clone()).await;
    let (_, reader) = api.get("/v1/contacts/reader11@example.com").await;
    assert_eq!(reader["status"], "active", "{reader}");
    let visitor_copy = unfolded(&copy("visitor3@example.com").data);
    post(url_after(&visitor_copy, &format!("{base}/u/"))).await;
    let (_, visitor) = api.get("/v1/contacts/visitor3@example.com").await;
    assert_eq!(visitor["status"], "unsubscribed", "{visitor}");

    // The campaign's statistics: its copies, their deliveries and the unsubscribe.
    let mut stats = Value::Null;
    for _ in 0..200 {
        let (status, s) = api.get(&format!("/v1/campaigns/{id}/stats")).await;
        assert_eq!(status, 200, "{s}");
        stats = s;
        if stats["stats"]["totals"]["delivered"] == total as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stats["recipients"], total as u64, "{stats}");
    assert_eq!(
        stats["stats"]["totals"]["accepted"], total as u64,
        "{stats}"
    );
    assert_eq!(
        stats["stats"]["totals"]["delivered"], total as u64,
        "{stats}"
    );
    // People, not clicks: reader11 (twice) and visitor3.
    assert_eq!(stats["stats"]["totals"]["unsubscribed"], 2, "{stats}");
    assert_eq!(stats["stats"]["rates"]["delivered"], 1.0, "{stats}");

    // A second campaign to the list: everyone but the one who left.
    let before = sink.received_count();
    let second = json!({"name": "Week 50", "from": "news@sandbox.kuvert.test", "subject": "More",
        "template": "weekly", "audience": {"lists": [list]}});
    let (_, c2) = api.post("/v1/campaigns", &second).await;
    let id2 = c2["id"].as_str().expect("id").to_owned();
    let (status, _) = api
        .post(&format!("/v1/campaigns/{id2}/schedule"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let c2 = wait_state(&api, &id2, "sent").await;
    assert_eq!(c2["sent"], (LIST_SIZE - 1) as u64, "{c2}");
    wait_for(&sink, before + LIST_SIZE - 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = sink.received();
    assert!(
        !again[before..]
            .iter()
            .any(|m| m.rcpt_to.iter().any(|r| r == "reader11@example.com")),
        "the contact who left gets no more"
    );
    assert_eq!(again.len(), before + LIST_SIZE - 1);

    // A sent campaign stays sent; a draft can be deleted, a sent one cannot.
    let (status, e) = api
        .post(&format!("/v1/campaigns/{id}/pause"), &json!({}))
        .await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(api.delete(&format!("/v1/campaigns/{id}")).await, 409);
    let (_, draft) = api.post("/v1/campaigns", &second).await;
    let draft = draft["id"].as_str().expect("id").to_owned();
    assert_eq!(api.delete(&format!("/v1/campaigns/{draft}")).await, 204);

    // The operator's view: the CLI lists both, and refuses to pause a sent one.
    let account = ["--account", "demo@sandbox.kuvert.test", "--json"];
    let listed = api
        .server
        .cli(&[&["campaigns", "list"][..], &account[..]].concat());
    assert!(listed.ok(), "{}", listed.stdout());
    let listed = listed.json();
    let states: Vec<_> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| (c["id"].as_str().unwrap_or_default(), c["state"].as_str()))
        .collect();
    assert!(states.contains(&(id.as_str(), Some("sent"))), "{listed}");
    assert!(states.contains(&(id2.as_str(), Some("sent"))), "{listed}");
    let paused = api.server.cli(
        &[
            &["campaigns", "set", id.as_str(), "pause"][..],
            &account[..],
        ]
        .concat(),
    );
    assert!(!paused.ok(), "a sent campaign stays sent");
}

/// The recipient (one per message here) of each message the sink took, with how often.
fn per_recipient(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for m in sink.received() {
        for r in m.rcpt_to {
            *out.entry(r).or_default() += 1;
        }
    }
    out
}

/// A campaign to 100,000 contacts, its process SIGKILLed while it queues them and started
/// again: each contact gets one copy. Only what delivery had in flight at the kill may
/// arrive twice (the queue has one copy per contact); the test counts both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_killed_midway_reaches_each_of_100000_contacts_once() {
    const CONTACTS: usize = 100_000;
    const MAX_IN_FLIGHT: usize = 40;
    let sink = SmtpSink::start(SinkOptions::default());
    let mut api = crate::common::dev_server(&format!(
        "[plans.free]\nevent_retention_months = 3\nmonthly_quota = 1000000\ndaily_limit = 1000000\nhourly_limit = 1000000\nmax_domains = 10\n[delivery]\nmode = \"mx\"\nbatch = 20\nmax_in_flight = {MAX_IN_FLIGHT}\n[delivery.routes]\n\"*\" = \"{}\"\n",
        sink.addr()
    ));
    let (status, list) = api.post("/v1/lists", &json!({"name": "all"})).await;
    assert_eq!(status, 201, "{list}");
    let list = list["id"].as_str().expect("list id").to_owned();
    let mut csv = String::with_capacity(CONTACTS * 32);
    csv.push_str("email\n");
    for i in 0..CONTACTS {
        csv.push_str(&format!("m{i}@example.com\n"));
    }
    import(&api, &format!("list={list}&mode=add"), csv).await;
    let (status, t) = api
        .post(
            "/v1/templates",
            &json!({"name": "plain", "version": {"engine": "html", "subject": "Hello",
                "content": "<p>For {{email}}</p>"}}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let (_, c) = api
        .post(
            "/v1/campaigns",
            &json!({"name": "Big", "from": "news@sandbox.kuvert.test", "template": "plain",
                "audience": {"lists": [list]}}),
        )
        .await;
    let id = c["id"].as_str().expect("campaign id").to_owned();
    let (status, _) = api
        .post(&format!("/v1/campaigns/{id}/schedule"), &json!({}))
        .await;
    assert_eq!(status, 200);

    // Killed while it queues: some pages recorded, most not yet.
    let mut queued_at_kill = 0;
    for _ in 0..12_000 {
        let (_, c) = api.get(&format!("/v1/campaigns/{id}")).await;
        queued_at_kill = c["sent"].as_u64().unwrap_or(0);
        if queued_at_kill >= 10_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    api.server.kill();
    let arrived_at_kill = sink.received_count();
    assert!(
        (10_000..CONTACTS as u64 / 2).contains(&queued_at_kill),
        "killed midway: {queued_at_kill} of {CONTACTS} queued"
    );

    api.server.restart();
    let mut c = Value::Null;
    for _ in 0..36_000 {
        let (_, now) = api.get(&format!("/v1/campaigns/{id}")).await;
        c = now;
        if c["state"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c["state"], "sent", "{c}");
    assert_eq!(c["sent"], CONTACTS as u64, "{c}");
    assert_eq!(
        (c["skipped"].as_u64(), c["errors"].as_u64()),
        (Some(0), Some(0)),
        "{c}"
    );
    for _ in 0..36_000 {
        if sink.received_count() >= CONTACTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Retries of what was in flight may still come: give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = per_recipient(&sink);
    let missing = (0..CONTACTS)
        .filter(|i| !got.contains_key(&format!("m{i}@example.com")))
        .count();
    let twice: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "killed with {queued_at_kill} copies queued and {arrived_at_kill} arrived; \
         after the restart: {missing} missing, {twice} arrived twice (in flight at most {MAX_IN_FLIGHT})"
    );
    assert_eq!(missing, 0, "every contact gets the campaign");
    assert_eq!(got.len(), CONTACTS);
    assert!(
        twice <= MAX_IN_FLIGHT,
        "{twice} twice: more than delivery had in flight"
    );
    // One copy per contact in the queue: the statistics count each accepted once.
    let (_, stats) = api.get(&format!("/v1/campaigns/{id}/stats")).await;
    assert_eq!(
        stats["stats"]["totals"]["accepted"], CONTACTS as u64,
        "{stats}"
    );
}
