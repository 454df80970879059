//! Opens, clicks and one-click unsubscribe, end to end: a tracked message goes to the sink,
//! and the test follows its links as a mail client would.

use std::time::Duration;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::{Value, json};

use crate::common::{Api, dkim_record, dkim_signature, server_with_sink, unfolded, url_after};

async fn events(api: &Api, kind: &str) -> Vec<Value> {
    let (_, page) = api.get(&format!("/v1/events?type={kind}")).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_clicks_and_one_click_unsubscribe() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let base = api.server.base_url.clone();
    let body = json!({
        "from": "Shop <news@sandbox.kuvert.test>", "to": ["reader@example.com"], "subject": "Sale", "tags": ["newsletter"],
        "html": "<html><body><p>Grüße! <a href=\"https://shop.example/sale?x=1&amp;y=2\">Sale</a> <a data-kuvert-notrack href=\"https://shop.example/plain\">Plain</a></p></body></html>",
        "text": "Sale: https://shop.example/sale\nUnsubscribe: {{unsubscribe_url}}\n",
        "tracking": {"opens": true, "clicks": true, "unsubscribe": true}
    });
    let (status, sent) = api.post("/v1/messages", &body).await;
    assert_eq!(status, 202, "{sent}");
    for _ in 0..200 {
        if sink.received_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = sink.received();
    let text = unfolded(&got[0].data);

    // The List-Unsubscribe headers are there, and inside the DKIM signature, which an
    // independent verifier accepts.
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
        text.contains(&format!("Unsubscribe: {unsubscribe}")),
        "the placeholder is filled: {text}"
    );
    let signature = dkim_signature(&text);
    assert!(
        signature.contains("List-Unsubscribe:List-Unsubscribe-Post"),
        "{signature}"
    );
    let record = dkim_record(&api).await;
    if let Err(e) = kuvert_testkit::dkimpy_verify(&got[0].data, &record) {
        panic!("{e}");
    }
    assert!(
        text.contains("https://shop.example/plain"),
        "a data-kuvert-notrack link stays as it was"
    );

    // The pixel: an image nobody caches, and an `opened` event.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let pixel = url_after(&text, &format!("{base}/o/"));
    let r = http
        .get(&pixel)
        .header(
            "user-agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile",
        )
        .send()
        .await
        .expect("pixel");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/gif");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("no-store")
    );
    assert_eq!(r.bytes().await.expect("body").len(), 43);
    let opened = events(&api, "opened").await;
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (
            opened[0]["recipient"].as_str(),
            opened[0]["data"]["ip"].as_str(),
            opened[0]["data"]["client"].as_str()
        ),
        (
            Some("reader@example.com"),
            Some("127.0.0.0/24"),
            Some("mobile")
        )
    );
    http.get(&pixel).send().await.expect("pixel again");

    // The click: a 302 to the original URL, and a `clicked` event.
    let click = url_after(&text, &format!("{base}/c/"));
    let r = http.get(&click).send().await.expect("click");
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], "https://shop.example/sale?x=1&y=2");
    let clicked = events(&api, "clicked").await;
    assert_eq!(
        clicked[0]["data"]["url"],
        "https://shop.example/sale?x=1&y=2"
    );

    // Forged or altered tokens: 404, and no event.
    let mut forged = click.clone();
    let last = forged.pop().expect("char");
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(
        http.get(&forged)
            .send()
            .await
            .expect("forged")
            .status()
            .as_u16(),
        404
    );
    let (prefix, token) = click.rsplit_once('/').expect("token");
    let (_, mac) = token.split_once('.').expect("mac");
    let evil = format!(
        "{prefix}/{}.{mac}",
        base64url(&format!(
            "c|{}|https://evil.example/",
            sent["recipients"][0]["id"].as_str().expect("id")
        ))
    );
    assert_eq!(
        http.get(&evil)
            .send()
            .await
            .expect("altered")
            .status()
            .as_u16(),
        404,
        "no open redirect"
    );
    assert_eq!(
        http.get(format!("{base}/o/nonsense"))
            .send()
            .await
            .expect("nonsense")
            .status()
            .as_u16(),
        404
    );
    assert_eq!(events(&api, "clicked").await.len(), 1);

    // Unsubscribe: a GET (a mail scanner) shows a page and changes nothing; the one-click
    // POST suppresses at once.
    let r = http.get(&unsubscribe).send().await.expect("page");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("<form method=\"post\"")
    );
    let (_, list) = api.get("/v1/suppressions").await;
    assert!(
        list["items"].as_array().expect("items").is_empty(),
        "GET must not unsubscribe: {list}"
    );
    let r = http
        .post(&unsubscribe)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let (_, list) = api.get("/v1/suppressions").await;
    assert_eq!(list["items"][0]["address"], "reader@example.com");
    assert_eq!(list["items"][0]["reason"], "unsubscribe");
    assert_eq!(events(&api, "unsubscribed").await.len(), 1);

    // The statistics saw it all: two opens, one of them unique.
    let (_, stats) = api.get("/v1/stats?tag=newsletter").await;
    let t = &stats["totals"];
    assert_eq!(
        (
            t["opened"].as_i64(),
            t["opened_unique"].as_i64(),
            t["clicked"].as_i64(),
            t["clicked_unique"].as_i64(),
            t["unsubscribed"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(1), Some(1)),
        "{stats}"
    );
}

/// Sends a message and waits for its copies at the sink; answers their unfolded texts.
async fn deliver(api: &Api, sink: &SmtpSink, body: Value) -> Vec<String> {
    let before = sink.received_count();
    let want = body["to"].as_array().map_or(1, Vec::len);
    let (status, sent) = api.post("/v1/messages", &body).await;
    assert_eq!(status, 202, "{sent}");
    for _ in 0..200 {
        if sink.received_count() >= before + want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = sink.received();
    assert_eq!(got.len(), before + want, "every copy arrives");
    got[before..].iter().map(|m| unfolded(&m.data)).collect()
}

async fn totals(api: &Api) -> (i64, i64, i64, i64) {
    let (_, stats) = api.get("/v1/stats").await;
    let t = &stats["totals"];
    let n = |k: &str| t[k].as_i64().unwrap_or(0);
    (
        n("opened"),
        n("opened_unique"),
        n("clicked"),
        n("clicked_unique"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_and_domain_defaults_and_privacy_modes() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api = server_with_sink(&sink, "");
    let base = api.server.base_url.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let message = |to: &[&str], tags: &[&str]| {
        json!({
            "from": "news@sandbox.kuvert.test", "to": to, "subject": "News", "tags": tags,
            "html": "<p><a href=\"https://shop.example/\">Shop</a></p>"
        })
    };

    // The account's defaults apply to a message that says nothing, a tag in
    // `unsubscribe_tags` adds the unsubscribe link, and the full address is kept when the
    // account turns truncation off.
    let (status, t) = api
        .send(
            reqwest::Method::PATCH,
            "/v1/account/tracking",
            &json!({"opens": true, "clicks": true, "truncate_ip": false, "unsubscribe_tags": ["newsletter"]}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["mode"], "full");
    let (_, account) = api.get("/v1/account").await;
    assert_eq!(account["tracking"]["unsubscribe_tags"][0], "newsletter");
    let copy = &deliver(&api, &sink, message(&["a@example.com"], &["newsletter"])).await[0];
    assert!(copy.contains(&format!("{base}/c/")), "{copy}");
    assert!(copy.contains("List-Unsubscribe-Post"), "{copy}");
    http.get(url_after(copy, &format!("{base}/o/")))
        .send()
        .await
        .expect("pixel");
    assert_eq!(events(&api, "opened").await[0]["data"]["ip"], "127.0.0.1");

    // The domain's setting wins over the account's; the message's over both.
    let (status, d) = api
        .send(
            reqwest::Method::PUT,
            "/v1/domains/sandbox.kuvert.test/tracking",
            &json!({"clicks": false}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["tracking"], json!({"opens": null, "clicks": false}));
    let copy = &deliver(&api, &sink, message(&["b@example.com"], &[])).await[0];
    assert!(copy.contains(&format!("{base}/o/")), "{copy}");
    assert!(!copy.contains(&format!("{base}/c/")), "{copy}");
    // No such field (the signature names it, over-signed, so that none can be added).
    assert!(!copy.contains("\r\nList-Unsubscribe:"), "{copy}");
    let mut asked = message(&["c@example.com"], &[]);
    asked["tracking"] = json!({"clicks": true, "opens": false});
    let copy = &deliver(&api, &sink, asked).await[0];
    assert!(!copy.contains(&format!("{base}/o/")), "{copy}");
    assert!(copy.contains(&format!("{base}/c/")), "{copy}");

    // Aggregate mode: opens and clicks are counted, totals and uniques, and no event names
    // who opened or clicked. (The domain goes back to following the account.)
    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            "/v1/domains/sandbox.kuvert.test/tracking",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, t) = api
        .send(
            reqwest::Method::PATCH,
            "/v1/account/tracking",
            &json!({"mode": "aggregate", "clicks": true}),
        )
        .await;
    assert_eq!((status, t["mode"].as_str()), (200, Some("aggregate")));
    let before = totals(&api).await;
    let copies = deliver(
        &api,
        &sink,
        message(&["d@example.com", "e@example.com"], &[]),
    )
    .await;
    let opened_events = events(&api, "opened").await.len();
    let clicked_events = events(&api, "clicked").await.len();
    for (copy, opens) in copies.iter().zip([2, 1]) {
        for _ in 0..opens {
            let r = http
                .get(url_after(copy, &format!("{base}/o/")))
                .send()
                .await
                .expect("pixel");
            assert_eq!(r.status().as_u16(), 200);
        }
    }
    let r = http
        .get(url_after(&copies[0], &format!("{base}/c/")))
        .send()
        .await
        .expect("click");
    assert_eq!(r.status().as_u16(), 302);
    let after = totals(&api).await;
    assert_eq!(
        (
            after.0 - before.0,
            after.1 - before.1,
            after.2 - before.2,
            after.3 - before.3
        ),
        (3, 2, 1, 1),
        "counts stay correct"
    );
    assert_eq!(events(&api, "opened").await.len(), opened_events);
    assert_eq!(events(&api, "clicked").await.len(), clicked_events);

    // Off: no pixel and no rewritten link, even when the message asks; links already sent
    // still answer, and count nothing.
    let (status, _) = api
        .send(
            reqwest::Method::PATCH,
            "/v1/account/tracking",
            &json!({"mode": "off"}),
        )
        .await;
    assert_eq!(status, 200);
    let mut asked = message(&["f@example.com"], &[]);
    asked["tracking"] = json!({"clicks": true, "opens": true});
    let copy = &deliver(&api, &sink, asked).await[0];
    assert!(!copy.contains(&format!("{base}/o/")), "{copy}");
    assert!(copy.contains("href=\"https://shop.example/\""), "{copy}");
    let r = http
        .get(url_after(&copies[1], &format!("{base}/o/")))
        .send()
        .await
        .expect("old pixel");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(totals(&api).await, after);

    let bad = api
        .send(
            reqwest::Method::PATCH,
            "/v1/account/tracking",
            &json!({"mode": "sometimes"}),
        )
        .await;
    crate::common::assert_error(&bad, 422, "invalid_field", Some("mode"));
}

fn base64url(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
