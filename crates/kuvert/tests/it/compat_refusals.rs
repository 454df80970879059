//! Every option the compatibility table (`docs/compat.md`) marks refused, sent to the real
//! binary: each is answered 400 in its API's error shape, naming what was refused. The test
//! also reads the table, so that a refusal it names and no case here covers fails.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::{Api, dev_server};

const DOMAIN: &str = "sandbox.kuvert.test";

/// The error shape an answer must have.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `{"message": ...}`.
    Mailgun,
    /// `{"ErrorInfo", "ErrorMessage", "StatusCode"}`.
    MailjetRest,
    /// The send API's global error: `{"ErrorIdentifier", "ErrorCode", "ErrorMessage", ...}`.
    MailjetGlobal,
    /// The send API's answer with the first message refused: `Messages[0].Errors[0]`.
    MailjetMessage,
}

enum Body {
    None,
    Form(Vec<(&'static str, String)>),
    Json(Value),
}

struct Case {
    /// The table's names this case covers.
    covers: &'static [&'static str],
    method: &'static str,
    path: String,
    body: Body,
    shape: Shape,
    /// What the error's text must hold.
    names: &'static str,
}

fn send_form(extra: &[(&'static str, &str)]) -> Body {
    let mut f = vec![
        ("from", format!("news@{DOMAIN}")),
        ("to", "x@example.com".to_owned()),
        ("subject", "s".to_owned()),
        ("text", "t".to_owned()),
    ];
    f.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Body::Form(f)
}

fn mailjet_message(extra: Value) -> Body {
    let mut m = json!({"From": {"Email": format!("news@{DOMAIN}")}, "To": [{"Email": "x@example.com"}],
        "Subject": "s", "TextPart": "t"});
    for (k, v) in extra.as_object().expect("an object") {
        m[k] = v.clone();
    }
    Body::Json(json!({ "Messages": [m] }))
}

fn cases(template_id: &str, list_id: &str) -> Vec<Case> {
    let mg = |covers, extra: &[(&'static str, &str)], names| Case {
        covers,
        method: "post",
        path: format!("/v3/{DOMAIN}/messages"),
        body: send_form(extra),
        shape: Shape::Mailgun,
        names,
    };
    let events = |covers, query: &str, names| Case {
        covers,
        method: "get",
        path: format!("/v3/{DOMAIN}/events?{query}"),
        body: Body::None,
        shape: Shape::Mailgun,
        names,
    };
    let mj = |covers, extra: Value, names| Case {
        covers,
        method: "post",
        path: "/v3.1/send".to_owned(),
        body: mailjet_message(extra),
        shape: Shape::MailjetMessage,
        names,
    };
    let rest = |covers, method, path: String, body: Value, names| Case {
        covers,
        method,
        path,
        body: if body.is_null() {
            Body::None
        } else {
            Body::Json(body)
        },
        shape: Shape::MailjetRest,
        names,
    };
    let stat = |covers, query: &str, names| Case {
        covers,
        method: "get",
        path: format!("/v3/REST/statcounters?{query}"),
        body: Body::None,
        shape: Shape::MailjetRest,
        names,
    };
    vec![
        // Mailgun: sending.
        mg(&["inline"], &[("inline", "x")], "'inline' is not supported"),
        mg(&["amp-html"], &[("amp-html", "<html></html>")], "amp-html"),
        mg(&["t:text"], &[("t:text", "no")], "t:text"),
        mg(
            &["o:deliverytime-optimize-period"],
            &[("o:deliverytime-optimize-period", "24h")],
            "o:deliverytime-optimize-period",
        ),
        mg(
            &["o:time-zone-localize"],
            &[("o:time-zone-localize", "09:00")],
            "o:time-zone-localize",
        ),
        mg(&["o:testmode"], &[("o:testmode", "yes")], "o:testmode"),
        mg(
            &["o:tracking-pixel-location-top"],
            &[("o:tracking-pixel-location-top", "yes")],
            "o:tracking-pixel-location-top",
        ),
        mg(&["o:dkim"], &[("o:dkim", "no")], "o:dkim"),
        mg(
            &["o:sending-ip"],
            &[("o:sending-ip", "192.0.2.1")],
            "o:sending-ip",
        ),
        mg(
            &["o:sending-ip-pool"],
            &[("o:sending-ip-pool", "pool")],
            "o:sending-ip-pool",
        ),
        mg(&["o:"], &[("o:anything", "yes")], "o:anything"),
        mg(
            &["o:require-tls"],
            &[("o:require-tls", "yes")],
            "o:require-tls",
        ),
        mg(
            &["h:NAME"],
            &[("h:X-Mailgun-Track", "no")],
            "h:X-Mailgun-Track",
        ),
        mg(&[], &[("colour", "red")], "colour"),
        Case {
            covers: &["recipient-variables"],
            method: "post",
            path: format!("/v3/{DOMAIN}/messages"),
            body: send_form(&[
                ("cc", "cc@example.com"),
                ("recipient-variables", "{\"x@example.com\": {}}"),
            ]),
            shape: Shape::Mailgun,
            names: "cc",
        },
        // Mailgun: events.
        events(&["from"], "from=a@example.com", "from"),
        events(&["subject"], "subject=hi", "subject"),
        events(&["to"], "to=a@example.com", "to"),
        events(&["list"], "list=l@example.com", "list"),
        events(&["attachment"], "attachment=a.pdf", "attachment"),
        events(&["size"], "size=100", "size"),
        events(&["recipients"], "recipients=a@example.com", "recipients"),
        events(&["event"], "event=NOT%20delivered", "NOT"),
        // Mailgun: domains.
        Case {
            covers: &["POST /v4/domains"],
            method: "post",
            path: "/v4/domains".to_owned(),
            body: Body::Form(vec![
                ("name", "refused.example".to_owned()),
                ("dkim_key_size", "1024".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "dkim_key_size",
        },
        // Mailgun: templates.
        Case {
            covers: &["engine"],
            method: "post",
            path: format!("/v3/{DOMAIN}/templates"),
            body: Body::Form(vec![
                ("name", "go-template".to_owned()),
                ("template", "{{.Name}}".to_owned()),
                ("engine", "go".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "engine=go",
        },
        Case {
            covers: &["headers", "Subject"],
            method: "post",
            path: format!("/v3/{DOMAIN}/templates"),
            body: Body::Form(vec![
                ("name", "with-from".to_owned()),
                ("template", "<p>x</p>".to_owned()),
                ("headers", "{\"From\": \"a@example.com\"}".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "headers.From",
        },
        Case {
            covers: &["template", "PUT"],
            method: "put",
            path: format!("/v3/{DOMAIN}/templates/refusals/versions/v1"),
            body: Body::Form(vec![("template", "<p>new</p>".to_owned())]),
            shape: Shape::Mailgun,
            names: "'template'",
        },
        // Mailgun: suppressions.
        Case {
            covers: &["term"],
            method: "get",
            path: format!("/v3/{DOMAIN}/bounces?term=abc"),
            body: Body::None,
            shape: Shape::Mailgun,
            names: "term",
        },
        Case {
            covers: &["code"],
            method: "post",
            path: format!("/v3/{DOMAIN}/bounces"),
            body: Body::Form(vec![
                ("address", "b@example.com".to_owned()),
                ("code", "421".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "code",
        },
        Case {
            covers: &["error"],
            method: "post",
            path: format!("/v3/{DOMAIN}/bounces"),
            body: Body::Form(vec![
                ("address", "b@example.com".to_owned()),
                ("error", "mailbox full".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "error",
        },
        Case {
            covers: &["created_at"],
            method: "post",
            path: format!("/v3/{DOMAIN}/unsubscribes"),
            body: Body::Form(vec![
                ("address", "u@example.com".to_owned()),
                ("created_at", "Fri, 21 Oct 2011 11:02:55 UTC".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "created_at",
        },
        Case {
            covers: &["whitelists"],
            method: "get",
            path: format!("/v3/{DOMAIN}/whitelists"),
            body: Body::None,
            shape: Shape::Mailgun,
            names: "whitelists",
        },
        // Mailgun: tags.
        Case {
            covers: &["PUT /v3/{domain}/tags/{tag}", "description"],
            method: "put",
            path: format!("/v3/{DOMAIN}/tags/any"),
            body: Body::Form(vec![("description", "x".to_owned())]),
            shape: Shape::Mailgun,
            names: "'description'",
        },
        // Mailgun: mailing lists and validation.
        Case {
            covers: &["name", "description"],
            method: "post",
            path: "/v3/lists".to_owned(),
            body: Body::Form(vec![
                ("address", "described@example.com".to_owned()),
                ("description", "A list".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "'description'",
        },
        Case {
            covers: &["access_level", "readonly", "reply_preference", "list"],
            method: "post",
            path: "/v3/lists".to_owned(),
            body: Body::Form(vec![
                ("address", "open@example.com".to_owned()),
                ("access_level", "members".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "'access_level'",
        },
        Case {
            covers: &["subscribed=no"],
            method: "post",
            path: "/v3/lists/refusals@example.com/members".to_owned(),
            body: Body::Form(vec![
                ("address", "never@example.com".to_owned()),
                ("subscribed", "no".to_owned()),
            ]),
            shape: Shape::Mailgun,
            names: "'subscribed=no'",
        },
        Case {
            covers: &["address"],
            method: "put",
            path: "/v3/lists/refusals@example.com/members/member@example.com".to_owned(),
            body: Body::Form(vec![("address", "other@example.com".to_owned())]),
            shape: Shape::Mailgun,
            names: "'address'",
        },
        Case {
            covers: &["provider_lookup"],
            method: "get",
            path: "/v4/address/validate?address=a@example.com&provider_lookup=true".to_owned(),
            body: Body::None,
            shape: Shape::Mailgun,
            names: "'provider_lookup'",
        },
        // Mailjet: sending.
        mj(
            &["InlinedAttachments"],
            json!({"InlinedAttachments": [{"ContentType": "image/png", "Filename": "a.png",
                "ContentID": "a", "Base64Content": "AA=="}]}),
            "InlinedAttachments",
        ),
        mj(
            &["TemplateLanguage: false", "Variables", "TemplateID"],
            json!({"TextPart": null, "TemplateID": template_id, "TemplateLanguage": false,
                "Variables": {"name": "x"}}),
            "TemplateLanguage",
        ),
        mj(
            &["Variables"],
            json!({"Variables": {"x": "y"}}),
            "Variables",
        ),
        Case {
            covers: &["SandboxMode"],
            method: "post",
            path: "/v3.1/send".to_owned(),
            body: Body::Json(
                json!({"SandboxMode": true, "Messages": [{"From": {"Email": format!("news@{DOMAIN}")},
                "To": [{"Email": "x@example.com"}], "TextPart": "t"}]}),
            ),
            shape: Shape::MailjetGlobal,
            names: "SandboxMode",
        },
        mj(
            &["DeduplicateCampaign"],
            json!({"DeduplicateCampaign": true}),
            "DeduplicateCampaign",
        ),
        mj(
            &["TemplateErrorDeliver"],
            json!({"TemplateErrorDeliver": true}),
            "TemplateErrorDeliver",
        ),
        mj(
            &["TemplateErrorReporting"],
            json!({"TemplateErrorReporting": {"Email": "a@example.com"}}),
            "TemplateErrorReporting",
        ),
        mj(
            &["MonitoringCategory"],
            json!({"MonitoringCategory": "x"}),
            "MonitoringCategory",
        ),
        mj(&["URLTags"], json!({"URLTags": "a=b"}), "URLTags"),
        mj(&["Priority"], json!({"Priority": 2}), "Priority"),
        mj(
            &["Sender"],
            json!({"Sender": {"Email": format!("a@{DOMAIN}")}}),
            "Sender",
        ),
        mj(&[], json!({"Colour": "red"}), "Colour"),
        // Mailjet: contacts and lists.
        rest(
            &["IsDeleted"],
            "post",
            "/v3/REST/contactslist".to_owned(),
            json!({"Name": "x", "IsDeleted": true}),
            "IsDeleted",
        ),
        rest(
            &["IsExcludedFromCampaigns"],
            "post",
            "/v3/REST/contact".to_owned(),
            json!({"Email": "ex@example.com", "IsExcludedFromCampaigns": true}),
            "IsExcludedFromCampaigns",
        ),
        rest(
            &["countOnly"],
            "get",
            "/v3/REST/contact?countOnly=1".to_owned(),
            Value::Null,
            "countOnly",
        ),
        rest(
            &[],
            "get",
            "/v3/REST/message?countOnly=1".to_owned(),
            Value::Null,
            "countOnly",
        ),
        rest(
            &["NameSpace", "historic"],
            "post",
            "/v3/REST/contactmetadata".to_owned(),
            json!({"Name": "h", "Datatype": "str", "NameSpace": "historic"}),
            "NameSpace",
        ),
        rest(
            &[],
            "put",
            format!("/v3/REST/contactslist/{list_id}"),
            json!({"Name": "y", "Colour": "red"}),
            "Colour",
        ),
        // Mailjet: statistics.
        stat(
            &["CounterSource", "APIKey"],
            "CounterSource=List&CounterTiming=Event&CounterResolution=Lifetime",
            "CounterSource",
        ),
        stat(
            &["CounterTiming=Message"],
            "CounterSource=APIKey&CounterTiming=Message&CounterResolution=Lifetime",
            "CounterTiming",
        ),
        stat(
            &["CounterResolution", "Lifetime", "Day", "Hour"],
            "CounterSource=APIKey&CounterTiming=Event&CounterResolution=Highest",
            "CounterResolution",
        ),
        // Mailjet: event callbacks.
        rest(
            &["IsBackup"],
            "post",
            "/v3/REST/eventcallbackurl".to_owned(),
            json!({"EventType": "open", "Url": "http://127.0.0.1:9/h", "IsBackup": true}),
            "IsBackup",
        ),
        rest(
            &["Status"],
            "post",
            "/v3/REST/eventcallbackurl".to_owned(),
            json!({"EventType": "open", "Url": "http://127.0.0.1:9/h", "Status": "dead"}),
            "Status",
        ),
        // Mailjet: templates.
        rest(
            &[
                "Author",
                "Categories",
                "Copyright",
                "Locale",
                "Purposes",
                "IsStarred",
                "Presets",
            ],
            "post",
            "/v3/REST/template".to_owned(),
            json!({"Name": "authored", "Author": "Ann"}),
            "Author",
        ),
        rest(
            &["Headers", "Subject"],
            "post",
            format!("/v3/REST/template/{template_id}/detailcontent"),
            json!({"Html-part": "<p>x</p>", "Headers": {"From": "a@example.com"}}),
            "Headers.From",
        ),
        rest(
            &["{{var:name}}", "{% if %}"],
            "post",
            format!("/v3/REST/template/{template_id}/detailcontent"),
            json!({"Html-part": "<p>{{var:name}}</p>"}),
            "template language",
        ),
    ]
}

/// Checks one answer against its case; a problem's description, if any.
fn check(case: &Case, status: u16, body: &Value) -> Option<String> {
    let at = format!("{} {}", case.method.to_uppercase(), case.path);
    let (text, shaped) = match case.shape {
        Shape::Mailgun => (
            body["message"].as_str(),
            body.as_object().map(|o| o.len()) == Some(1),
        ),
        Shape::MailjetRest => (
            body["ErrorMessage"].as_str(),
            body["ErrorInfo"].is_string() && body["StatusCode"] == 400,
        ),
        Shape::MailjetGlobal => (
            body["ErrorMessage"].as_str(),
            body["ErrorCode"].is_string() && body["ErrorIdentifier"].is_string(),
        ),
        Shape::MailjetMessage => {
            let e = &body["Messages"][0]["Errors"][0];
            (
                e["ErrorMessage"].as_str(),
                body["Messages"][0]["Status"] == "error"
                    && e["ErrorCode"].is_string()
                    && e["ErrorIdentifier"].is_string()
                    && e["StatusCode"] == 400,
            )
        }
    };
    if status != 400 {
        return Some(format!("{at}: {status}, not 400: {body}"));
    }
    if !shaped {
        return Some(format!("{at}: not in {:?}'s shape: {body}", case.shape));
    }
    match text {
        Some(t) if t.contains(case.names) => None,
        _ => Some(format!(
            "{at}: the error does not name {:?}: {body}",
            case.names
        )),
    }
}

/// The backticked names in the first cell of each table row whose Kuvert cell says refused.
fn refused_in_table() -> BTreeSet<String> {
    let table = std::fs::read_to_string(format!(
        "{}/../../docs/compat.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("docs/compat.md");
    let mut names = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() < 3 || !cells[1].contains("refused") {
            continue;
        }
        for (i, part) in cells[0].split('`').enumerate() {
            if i % 2 == 1 {
                names.insert(part.to_owned());
            }
        }
    }
    names
}

async fn call(api: &Api, case: &Case) -> (u16, Value) {
    let method: reqwest::Method = case.method.to_uppercase().parse().expect("method");
    let mut r = api.http.request(method, api.url(&case.path));
    r = match case.shape {
        Shape::Mailgun => r.basic_auth("api", Some(&api.key)),
        _ => r.basic_auth(&api.key[..10], Some(&api.key)),
    };
    r = match &case.body {
        Body::None => r,
        Body::Form(f) => r.form(f),
        Body::Json(j) => r.json(j),
    };
    let response = r.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_option_is_answered_in_its_api_s_error_shape() {
    let api = dev_server("");
    // A Mailgun template with a version to refuse changing, a Mailjet template and a list.
    let r = api
        .http
        .post(api.url(&format!("/v3/{DOMAIN}/templates")))
        .basic_auth("api", Some(&api.key))
        .form(&[
            ("name", "refusals"),
            ("template", "<p>{{name}}</p>"),
            ("tag", "v1"),
        ])
        .send()
        .await
        .expect("template");
    assert_eq!(r.status(), 200);
    let (status, t) = api
        .post(
            "/v1/templates",
            &json!({"name": "mj-refusals", "version": {"engine": "html", "content": "<p>{{name}}</p>"}}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let template_id = t["id"].as_str().expect("id").to_owned();
    // A Mailgun list with a member, to refuse changes to.
    for (path, form) in [
        ("/v3/lists", vec![("address", "refusals@example.com")]),
        (
            "/v3/lists/refusals@example.com/members",
            vec![("address", "member@example.com")],
        ),
    ] {
        let r = api
            .http
            .post(api.url(path))
            .basic_auth("api", Some(&api.key))
            .form(&form)
            .send()
            .await
            .expect("list");
        assert_eq!(r.status(), 200, "{path}");
    }
    let (status, l) = api.post("/v1/lists", &json!({"name": "refusals"})).await;
    assert_eq!(status, 201, "{l}");
    let list_id = l["id"].as_str().expect("id").to_owned();

    let cases = cases(&template_id, &list_id);
    let mut problems = Vec::new();
    for case in &cases {
        let (status, body) = call(&api, case).await;
        problems.extend(check(case, status, &body));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // An endpoint not served yet is a 404 in its API's shape.
    for (path, field) in [
        ("/v3/routes", "message"),
        ("/v4/address/validate/bulk", "message"),
        ("/v3/REST/campaign", "ErrorMessage"),
        ("/v3/REST/contactfilter", "ErrorMessage"),
    ] {
        let r = api
            .http
            .get(api.url(path))
            .basic_auth(&api.key[..10], Some(&api.key))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.expect("json");
        assert!(
            body[field]
                .as_str()
                .is_some_and(|m| m.contains("not served")),
            "{path}: {body}"
        );
    }
    let (status, body) = api.get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["code"], "not_found",
        "Kuvert's own shape: {body}"
    );

    // Every refusal the table names has a case.
    let covered: BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.covers.iter().copied())
        .collect();
    let missing: Vec<String> = refused_in_table()
        .into_iter()
        .filter(|n| !covered.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "refusals in docs/compat.md without a case here: {missing:?}"
    );
}
