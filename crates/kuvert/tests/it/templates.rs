//! Templates end to end on the real binary: an MJML template with variables is saved,
//! previewed (a missing variable is an error, not a blank), test-sent and used by a
//! transactional send; the sink gets the variables filled, the unsubscribe link written in
//! and signed.

use std::time::Duration;

use kuvert_testkit::{SinkOptions, SmtpSink};
use serde_json::json;

use crate::common::{Api, dkim_record, server_with_sink, unfolded};

const MJML: &str = r#"<mjml>
  <mj-head><mj-title>{{title}}</mj-title></mj-head>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>Hello {{name}}, your order {{order.id}} ships {{#if express}}tomorrow{{else}}soon{{/if}}.</mj-text>
      {{#each items}}<mj-text>- {{this}}</mj-text>{{/each}}
      <mj-button href="https://shop.example/orders/{{order.id}}">Track it</mj-button>
      <mj-text><a href="{{unsubscribe_url}}">Unsubscribe</a></mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>"#;

async fn wait_for(sink: &SmtpSink, n: usize) {
    for _ in 0..400 {
        if sink.received_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sink got {} of {n} messages", sink.received_count());
}

fn variables() -> serde_json::Value {
    json!({"title": "Your order", "name": "Ada <Lovelace>", "order": {"id": "A-17"},
        "express": true, "items": ["Tea", "Scones"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mjml_template_is_previewed_test_sent_and_sent() {
    let sink = SmtpSink::start(SinkOptions::default());
    let api: Api = server_with_sink(&sink, "");

    // Invalid sources are refused with the reason, and nothing is stored.
    for (content, engine) in [
        ("<mjml><mj-body><mj-section>", "mjml"),
        ("<p>{{> header}}</p>", "html"),
        ("<p>{{#each a}}x</p>", "html"),
    ] {
        let (status, e) = api
            .post(
                "/v1/templates",
                &json!({"name": "bad", "version": {"engine": engine, "content": content}}),
            )
            .await;
        assert_eq!(status, 422, "{content}: {e}");
        assert_eq!(e["error"]["code"], "invalid_template", "{e}");
        assert_eq!(e["error"]["field"], "content", "{e}");
    }
    let (status, e) = api
        .post(
            "/v1/templates",
            &json!({"name": "no spaces", "version": {"engine": "html", "content": "x"}}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (422, Some("name")),
        "{e}"
    );
    let (_, all) = api.get("/v1/templates").await;
    assert_eq!(all, json!([]));

    let (status, t) = api
        .post(
            "/v1/templates",
            &json!({"name": "Order-Shipped", "description": "sent when an order ships",
                "version": {"engine": "mjml", "content": MJML, "subject": "{{name}}, order {{order.id}} ships"}}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["name"], "order-shipped");
    assert_eq!(t["active_version"], "v1");

    // A preview with a variable missing names it; with all of them it renders.
    let (status, e) = api
        .post(
            "/v1/templates/order-shipped/preview",
            &json!({"variables": {"name": "Ada", "title": "t", "express": false, "items": []}}),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["code"], "missing_variable", "{e}");
    assert!(
        e["error"]["field"]
            .as_str()
            .unwrap_or_default()
            .starts_with("variables.order"),
        "{e}"
    );
    let (status, p) = api
        .post(
            "/v1/templates/order-shipped/preview",
            &json!({"variables": variables()}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["subject"], "Ada <Lovelace>, order A-17 ships");
    let html = p["html"].as_str().unwrap_or_default();
    assert!(
        html.contains("Hello Ada &lt;Lovelace&gt;, your order A-17 ships tomorrow."),
        "{html}"
    );
    assert!(html.contains("https://shop.example/orders/A-17"), "{html}");
    assert!(
        !html.contains("fonts.googleapis.com"),
        "no third-party fonts"
    );
    let text = p["text"].as_str().unwrap_or_default();
    assert!(text.contains("- Tea"), "{text}");
    assert!(
        text.contains("Track it (https://shop.example/orders/A-17)"),
        "{text}"
    );
    let mut names: Vec<&str> = p["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["express", "items", "name", "order", "title"]);

    // A test send reaches the sink with the variables filled and the unsubscribe link.
    let (status, sent) = api
        .post(
            "/v1/templates/order-shipped/test",
            &json!({"from": "shop@sandbox.kuvert.test", "to": ["tester@example.com"],
                "variables": variables()}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    wait_for(&sink, 1).await;
    let got = sink.received();
    let mail = unfolded(&got[0].data);
    assert!(
        mail.contains("Subject: Ada <Lovelace>, order A-17 ships"),
        "{mail}"
    );
    assert!(mail.contains("List-Unsubscribe: <"), "{mail}");
    assert!(
        !mail.contains("{{unsubscribe_url}}"),
        "the placeholder is filled: {mail}"
    );
    let record = dkim_record(&api).await;
    if let Err(e) = kuvert_testkit::dkimpy_verify(&got[0].data, &record) {
        panic!("{e}");
    }

    // A second version, made active; a transactional send without a version uses it, and
    // one naming v1 gets v1.
    let (status, t) = api
        .post(
            "/v1/templates/order-shipped/versions",
            &json!({"engine": "html", "content": "<p>v2 for {{name}} from {{shop}}</p>", "subject": "v2",
                "defaults": {"shop": "the shop"}, "active": true}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["active_version"], "v2");
    // Names and tags are kept in lower case, and found in any case.
    let (status, v) = api.get("/v1/templates/Order-Shipped/versions/V2").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"], "<p>v2 for {{name}} from {{shop}}</p>");
    assert_eq!(v["defaults"], json!({"shop": "the shop"}));
    let (status, sent) = api
        .post(
            "/v1/messages",
            &json!({"from": "shop@sandbox.kuvert.test", "to": "buyer@example.com",
                "template": "order-shipped", "variables": {"name": "Bo"}}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let (status, sent) = api
        .post(
            "/v1/messages",
            &json!({"from": "shop@sandbox.kuvert.test", "to": "buyer2@example.com",
                "template": "order-shipped", "version": "v1", "subject": "Given",
                "variables": variables()}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    wait_for(&sink, 3).await;
    let got = sink.received();
    let to = |addr: &str| {
        got.iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == addr))
            .map(|m| unfolded(&m.data))
            .expect("delivered")
    };
    let v2 = to("buyer@example.com");
    assert!(
        v2.contains("Subject: v2") && v2.contains("v2 for Bo"),
        "{v2}"
    );
    let v1 = to("buyer2@example.com");
    assert!(v1.contains("Subject: Given"), "{v1}");
    assert!(
        v1.contains("List-Unsubscribe: <"),
        "a template linking unsubscribe_url gets the link: {v1}"
    );

    // Errors of a send: a missing variable, an unknown template or version, both a template
    // and a body.
    for (body, code, field) in [
        (
            json!({"template": "order-shipped"}),
            "missing_variable",
            "variables.name",
        ),
        (
            json!({"template": "nope", "subject": "s"}),
            "not_found",
            "template",
        ),
        (
            json!({"template": "order-shipped", "version": "v9", "variables": {"name": "x"}}),
            "not_found",
            "version",
        ),
        (
            json!({"template": "order-shipped", "html": "<p>x</p>"}),
            "invalid_field",
            "template",
        ),
    ] {
        let mut body = body;
        body["from"] = json!("shop@sandbox.kuvert.test");
        body["to"] = json!("x@example.com");
        let (status, e) = api.post("/v1/messages", &body).await;
        assert_eq!(status, 422, "{body}: {e}");
        assert_eq!(
            (e["error"]["code"].as_str(), e["error"]["field"].as_str()),
            (Some(code), Some(field)),
            "{e}"
        );
    }

    // Activating v1 again; the active version cannot be deleted, another can; the template
    // goes whole.
    let (status, t) = api
        .send(
            reqwest::Method::PATCH,
            "/v1/templates/order-shipped/versions/v1",
            &json!({"active": true, "comment": "back to v1"}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["active_version"], "v1");
    assert_eq!(
        t["versions"]
            .as_array()
            .map(|v| v.iter().filter(|v| v["active"] == true).count()),
        Some(1)
    );
    assert_eq!(
        api.delete("/v1/templates/order-shipped/versions/v1").await,
        409
    );
    assert_eq!(
        api.delete("/v1/templates/order-shipped/versions/v2").await,
        204
    );
    assert_eq!(api.delete("/v1/templates/order-shipped").await, 204);
    let (status, _) = api.get("/v1/templates/order-shipped").await;
    assert_eq!(status, 404);
}
