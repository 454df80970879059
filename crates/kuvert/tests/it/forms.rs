//! Double opt-in end to end: a list's public form posted as a browser posts it, the
//! confirmation mail caught at an SMTP sink, its link followed; the honeypot, the rate
//! limit and the limits of what a stranger at the form can make Kuvert send.

use std::time::Duration;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{Api, assert_error, mail_to, server_with_sink, unfolded, url_after};

async fn post_form(api: &Api, list: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = api
        .http
        .post(api.url(&format!("/f/{list}")))
        .form(form)
        .send()
        .await
        .expect("post");
    (r.status().as_u16(), r.text().await.expect("text"))
}

async fn subscription(api: &Api, address: &str) -> (u16, Value) {
    api.get(&format!("/v1/contacts/{address}")).await
}

fn mails_to(sink: &SmtpSink, rcpt: &str) -> usize {
    sink.received()
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == rcpt))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_form_subscribes_only_after_the_confirmation_link() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "[contacts]\nform_requests_per_minute = 12\n");

    // What cannot work is refused when the list is made.
    let doi_without_sender = api
        .post("/v1/lists", &json!({"name": "a", "double_opt_in": true}))
        .await;
    assert_error(
        &doi_without_sender,
        422,
        "invalid_field",
        Some("confirm_from"),
    );
    let open_form = api
        .post("/v1/lists", &json!({"name": "b", "public_form": true}))
        .await;
    assert_error(&open_form, 422, "invalid_field", Some("public_form"));
    let foreign = api
        .post(
            "/v1/lists",
            &json!({"name": "c", "double_opt_in": true, "confirm_from": "x@elsewhere.example"}),
        )
        .await;
    assert_error(&foreign, 422, "unknown_domain", Some("confirm_from"));

    let (status, list) = api
        .post(
            "/v1/lists",
            &json!({"name": "Weekly letter", "double_opt_in": true, "public_form": true, "record_source": true,
                    "confirm_from": "Letters <letters@sandbox.kuvert.test>", "consent_text": "letter consent v1"}),
        )
        .await;
    assert_eq!(status, 201, "{list}");
    let id = list["id"].as_str().expect("id").to_owned();
    assert_eq!(list["form_url"], api.url(&format!("/f/{id}")));
    let (status, closed) = api.post("/v1/lists", &json!({"name": "internal"})).await;
    assert_eq!(status, 201, "{closed}");

    // 1: a list whose form is off has none.
    let (status, _) = post_form(
        &api,
        closed["id"].as_str().expect("id"),
        &[("email", "a@example.com")],
    )
    .await;
    assert_eq!(status, 404);

    // 2: a post; what the stranger typed besides the address goes into no mail.
    let (status, page) = post_form(
        &api,
        &id,
        &[
            ("email", "reader@example.com"),
            ("name", "Buy pills at https://spam.example/"),
            ("website", ""),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("confirmation link"), "{page}");
    let mail = mail_to(&sink, "reader@example.com").await;
    let text = unfolded(&mail.data);
    assert!(
        text.contains("From: \"Letters\" <letters@sandbox.kuvert.test>"),
        "{text}"
    );
    assert!(
        mail.mail_from.ends_with("@bounces.sandbox.kuvert.test"),
        "{}",
        mail.mail_from
    );
    assert!(!text.contains("spam.example"), "{text}");
    assert!(text.contains("Weekly letter"), "{text}");
    let link = url_after(&text, &format!("{}/s/", api.server.base_url));
    let (status, c) = subscription(&api, "reader@example.com").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["subscriptions"][0]["status"], "pending", "{c}");
    assert_eq!(c["consent"], json!([]), "no consent before the link: {c}");

    // 3: the honeypot filled: the same page, nothing else.
    let (status, page) = post_form(
        &api,
        &id,
        &[
            ("email", "bot@example.com"),
            ("website", "https://x.example"),
        ],
    )
    .await;
    assert_eq!((status, page.contains("confirmation link")), (200, true));
    assert_eq!(subscription(&api, "bot@example.com").await.0, 404);

    // 4: the same address again within the hour: the same page, no second mail.
    let (status, _) = post_form(&api, &id, &[("email", "reader@example.com")]).await;
    assert_eq!(status, 200);

    // 5: not an address.
    let (status, body) = post_form(&api, &id, &[("email", "not an address")]).await;
    assert_eq!(status, 422, "{body}");

    // 6: the link's page confirms nothing (mail scanners follow links).
    let r = api.http.get(&link).send().await.expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .is_ok_and(|v| v.starts_with("default-src 'none'")),
        "{:?}",
        r.headers()
    );
    let page = r.text().await.expect("page");
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert_eq!(
        subscription(&api, "reader@example.com").await.1["subscriptions"][0]["status"],
        "pending"
    );

    // 7: its button does, and the consent is recorded with where it came from.
    let r = api.http.post(&link).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let (_, c) = subscription(&api, "reader@example.com").await;
    assert_eq!(c["subscriptions"][0]["status"], "subscribed", "{c}");
    assert_eq!(
        c["name"], "Buy pills at https://spam.example/",
        "the name is the contact's, kept sealed"
    );
    assert_eq!(c["consent"].as_array().map(Vec::len), Some(1), "{c}");
    assert_eq!(c["consent"][0]["method"], "double_opt_in");
    assert_eq!(c["consent"][0]["action"], "given");
    assert_eq!(c["consent"][0]["consent_text"], "letter consent v1");
    assert_eq!(c["consent"][0]["source"], "127.0.0.1");

    // 8: an altered link names nothing.
    let altered = format!("{}x", link);
    let r = api.http.post(&altered).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 404);

    // The API subscribes to a double opt-in list the same way, unless told it is confirmed.
    let (status, c) = api
        .post(
            "/v1/contacts",
            &json!({"address": "api@example.com", "lists": [id]}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["subscriptions"][0]["status"], "pending", "{c}");
    mail_to(&sink, "api@example.com").await;
    let (status, c) = api
        .post(
            "/v1/contacts",
            &json!({"address": "known@example.com", "lists": [id], "preconfirmed": true}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["subscriptions"][0]["status"], "subscribed", "{c}");

    // Only one confirmation mail went to the reader.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mails_to(&sink, "reader@example.com"), 1);
    assert_eq!(mails_to(&sink, "bot@example.com"), 0);
    assert_eq!(mails_to(&sink, "known@example.com"), 0);

    // The limit per client network: 12 at once, then one per 5 s; 8 posts so far, so within
    // a few more (the bucket refills while the test runs) one is refused.
    let mut refused = None;
    for n in 9..=30 {
        let (status, _) =
            post_form(&api, &id, &[("email", "x@example.com"), ("website", "x")]).await;
        if status == 429 {
            refused = Some(n);
            break;
        }
    }
    assert!(refused.is_some_and(|n| n >= 13), "refused at {refused:?}");
}
