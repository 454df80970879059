//! The cross-account access matrix: every route of the OpenAPI document and of the
//! compatible APIs (`kuvert_http::mailgun::ROUTES`), walked with account
//! A's full key and every id of account B's (always 404: never B's data, never a change to
//! it, never 500), with a send-only key (403 but for sending), and with no key (401 but for
//! the public routes). A route added to the document without an entry here fails the test.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::{Api, dev_server};

/// Who may use a route.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Access {
    /// No key: health, metrics, the tracking links.
    Public,
    /// Any key, a send-only one too.
    Send,
    /// A full key.
    Full,
}

/// What A's key must get on the route, given B's ids.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cross {
    /// The path names an object of B's: 404.
    NotFound,
    /// The route is about A's own account (a list, a create): its answer names nothing of B's.
    Own,
    /// Not account data (tracking tokens, health).
    Unscoped,
}

/// Every route of the document: method, path, who may use it, what A gets with B's ids, and
/// a body that passes the route's own checks (so that a refusal is about access).
fn routes() -> Vec<(&'static str, &'static str, Access, Cross, Option<Value>)> {
    use Access::*;
    use Cross::*;
    vec![
        (
            "post",
            "/v1/messages",
            Send,
            Own,
            Some(
                json!({"from": "Demo <demo@sandbox.kuvert.test>", "to": ["x@example.com"], "subject": "s", "text": "t"}),
            ),
        ),
        ("get", "/v1/messages/{id}", Full, NotFound, None),
        ("get", "/v1/events", Full, Own, None),
        ("get", "/v1/events/stream", Full, Own, None),
        ("get", "/v1/capture", Full, Own, None),
        ("get", "/v1/stats", Full, Own, None),
        ("get", "/v1/webhooks", Full, Own, None),
        (
            "post",
            "/v1/webhooks",
            Full,
            Own,
            Some(json!({"url": "http://127.0.0.1:9/a-hook"})),
        ),
        ("get", "/v1/webhooks/{id}", Full, NotFound, None),
        (
            "patch",
            "/v1/webhooks/{id}",
            Full,
            NotFound,
            Some(json!({"events": ["delivered"]})),
        ),
        ("delete", "/v1/webhooks/{id}", Full, NotFound, None),
        ("get", "/v1/webhooks/{id}/deliveries", Full, NotFound, None),
        ("get", "/v1/suppressions", Full, Own, None),
        (
            "post",
            "/v1/suppressions",
            Full,
            Own,
            Some(json!({"address": "a-own@example.com"})),
        ),
        ("delete", "/v1/suppressions/{address}", Full, NotFound, None),
        ("get", "/v1/domains", Full, Own, None),
        (
            "post",
            "/v1/domains",
            Full,
            Own,
            Some(json!({"name": "a-own.example.com"})),
        ),
        ("get", "/v1/domains/{name}", Full, NotFound, None),
        ("delete", "/v1/domains/{name}", Full, NotFound, None),
        ("post", "/v1/domains/{name}/verify", Full, NotFound, None),
        (
            "post",
            "/v1/domains/{name}/dkim-keys",
            Full,
            NotFound,
            Some(json!({"algorithm": "ed25519"})),
        ),
        (
            "post",
            "/v1/domains/{name}/dkim-keys/rotate",
            Full,
            NotFound,
            Some(json!({"algorithm": "rsa"})),
        ),
        (
            "put",
            "/v1/domains/{name}/tracking",
            Full,
            NotFound,
            Some(json!({"opens": true})),
        ),
        ("get", "/v1/keys", Full, Own, None),
        (
            "post",
            "/v1/keys",
            Full,
            Own,
            Some(json!({"name": "matrix"})),
        ),
        ("delete", "/v1/keys/{id}", Full, NotFound, None),
        ("get", "/v1/account", Full, Own, None),
        (
            "patch",
            "/v1/account",
            Full,
            Own,
            Some(json!({"company": "A GmbH"})),
        ),
        (
            "delete",
            "/v1/account",
            Full,
            Own,
            Some(json!({"password": "not-the-password-1!"})),
        ),
        (
            "patch",
            "/v1/users/{id}",
            Full,
            NotFound,
            Some(json!({"first_name": "Mallory"})),
        ),
        (
            "put",
            "/v1/account/restriction",
            Full,
            Own,
            Some(json!({"restricted": false})),
        ),
        ("get", "/v1/audit", Full, Own, None),
        ("get", "/v1/support/grant", Full, Own, None),
        (
            "put",
            "/v1/support/grant",
            Full,
            Own,
            Some(json!({"hours": 1})),
        ),
        ("delete", "/v1/support/grant", Full, Own, None),
        ("get", "/v1/privacy/requests", Full, Own, None),
        ("get", "/v1/account/export", Full, Own, None),
        (
            "patch",
            "/v1/account/tracking",
            Full,
            Own,
            Some(json!({"opens": false})),
        ),
        ("get", "/v1/contacts", Full, Own, None),
        (
            "post",
            "/v1/contacts",
            Full,
            Own,
            Some(json!({"address": "a-contact@example.com"})),
        ),
        ("get", "/v1/contacts/{contact}", Full, NotFound, None),
        (
            "patch",
            "/v1/contacts/{contact}",
            Full,
            NotFound,
            Some(json!({"name": "Mallory"})),
        ),
        ("delete", "/v1/contacts/{contact}", Full, NotFound, None),
        (
            "post",
            "/v1/contacts/delete",
            Full,
            Own,
            Some(json!({"addresses": ["b-contact@example.com"]})),
        ),
        ("get", "/v1/contacts/export", Full, Own, None),
        ("get", "/v1/contact-properties", Full, Own, None),
        (
            "post",
            "/v1/contact-properties",
            Full,
            Own,
            Some(json!({"name": "a_prop", "kind": "string"})),
        ),
        (
            "delete",
            "/v1/contact-properties/{name}",
            Full,
            NotFound,
            None,
        ),
        ("get", "/v1/lists", Full, Own, None),
        (
            "post",
            "/v1/lists",
            Full,
            Own,
            Some(json!({"name": "a-list"})),
        ),
        ("get", "/v1/lists/{id}", Full, NotFound, None),
        (
            "put",
            "/v1/lists/{id}",
            Full,
            NotFound,
            Some(json!({"name": "renamed"})),
        ),
        ("delete", "/v1/lists/{id}", Full, NotFound, None),
        ("get", "/v1/addresses/validate", Full, Own, None),
        ("post", "/v1/imports", Full, Own, None),
        ("get", "/v1/imports", Full, Own, None),
        ("get", "/v1/imports/{id}", Full, NotFound, None),
        ("delete", "/v1/imports/{id}", Full, NotFound, None),
        (
            "post",
            "/v1/imports/{id}/confirm",
            Full,
            NotFound,
            Some(json!({})),
        ),
        ("get", "/v1/imports/{id}/errors", Full, NotFound, None),
        ("get", "/v1/segments", Full, Own, None),
        (
            "post",
            "/v1/segments",
            Full,
            Own,
            Some(json!({"name": "a-segment", "filter": {"status": "active"}})),
        ),
        ("get", "/v1/segments/{id}", Full, NotFound, None),
        ("delete", "/v1/segments/{id}", Full, NotFound, None),
        ("get", "/v1/segments/{id}/contacts", Full, NotFound, None),
        ("get", "/v1/templates", Full, Own, None),
        (
            "post",
            "/v1/templates",
            Full,
            Own,
            Some(
                json!({"name": "a-template", "version": {"engine": "html", "content": "<p>{{x}}</p>"}}),
            ),
        ),
        ("get", "/v1/templates/{name}", Full, NotFound, None),
        (
            "patch",
            "/v1/templates/{name}",
            Full,
            NotFound,
            Some(json!({"description": "A's words"})),
        ),
        ("delete", "/v1/templates/{name}", Full, NotFound, None),
        (
            "post",
            "/v1/templates/{name}/versions",
            Full,
            NotFound,
            Some(json!({"engine": "html", "content": "<p>A's</p>", "active": true})),
        ),
        (
            "get",
            "/v1/templates/{name}/versions/{tag}",
            Full,
            NotFound,
            None,
        ),
        (
            "patch",
            "/v1/templates/{name}/versions/{tag}",
            Full,
            NotFound,
            Some(json!({"active": true})),
        ),
        (
            "delete",
            "/v1/templates/{name}/versions/{tag}",
            Full,
            NotFound,
            None,
        ),
        (
            "post",
            "/v1/templates/{name}/preview",
            Full,
            NotFound,
            Some(json!({"variables": {"x": 1}})),
        ),
        (
            "post",
            "/v1/templates/{name}/test",
            Full,
            NotFound,
            Some(
                json!({"from": "demo@sandbox.kuvert.test", "to": ["x@example.com"], "variables": {"x": 1}}),
            ),
        ),
        ("get", "/v1/campaigns", Full, Own, None),
        (
            "post",
            "/v1/campaigns",
            Full,
            Own,
            Some(
                json!({"name": "a-campaign", "from": "demo@sandbox.kuvert.test", "template": "a-template",
                "audience": {"lists": ["lst_none"]}}),
            ),
        ),
        ("get", "/v1/campaigns/{id}", Full, NotFound, None),
        (
            "put",
            "/v1/campaigns/{id}",
            Full,
            NotFound,
            Some(
                json!({"name": "A's words", "from": "demo@sandbox.kuvert.test", "template": "a-template",
                "audience": {"lists": ["lst_none"]}}),
            ),
        ),
        ("delete", "/v1/campaigns/{id}", Full, NotFound, None),
        ("get", "/v1/campaigns/{id}/stats", Full, NotFound, None),
        (
            "post",
            "/v1/campaigns/{id}/test",
            Full,
            NotFound,
            Some(json!({"to": ["x@example.com"]})),
        ),
        (
            "post",
            "/v1/campaigns/{id}/{action}",
            Full,
            NotFound,
            Some(json!({})),
        ),
        ("get", "/o/{token}", Public, Unscoped, None),
        ("get", "/c/{token}", Public, Unscoped, None),
        ("get", "/u/{token}", Public, Unscoped, None),
        ("post", "/u/{token}", Public, Unscoped, None),
        ("post", "/u/{token}/all", Public, Unscoped, None),
        // B's list has no public form: nobody finds one there.
        ("post", "/f/{list}", Public, NotFound, None),
        ("get", "/s/{token}", Public, Unscoped, None),
        ("post", "/s/{token}", Public, Unscoped, None),
        ("get", "/healthz", Public, Unscoped, None),
        ("get", "/metrics", Public, Unscoped, None),
        // Mailgun's API (forms, not JSON: `call` sends a form on these paths).
        (
            "post",
            "/v3/{domain}/messages",
            Send,
            NotFound,
            Some(
                json!({"from": "news@b-tenant.example", "to": "x@example.com", "subject": "s", "text": "t"}),
            ),
        ),
        (
            "post",
            "/v3/{domain}/messages.mime",
            Send,
            NotFound,
            Some(
                json!({"to": "x@example.com", "message": "From: news@b-tenant.example\r\nSubject: s\r\n\r\nt\r\n"}),
            ),
        ),
        ("get", "/v3/{domain}/events", Full, NotFound, None),
        ("get", "/v3/{domain}/events/{token}", Full, NotFound, None),
        ("get", "/v3/{domain}/stats/total", Full, NotFound, None),
        ("get", "/v3/domains", Full, Own, None),
        ("get", "/v4/domains", Full, Own, None),
        (
            "post",
            "/v3/domains",
            Full,
            Own,
            Some(json!({"name": "a-mg3.example"})),
        ),
        (
            "post",
            "/v4/domains",
            Full,
            Own,
            Some(json!({"name": "a-mg4.example"})),
        ),
        ("get", "/v3/domains/{name}", Full, NotFound, None),
        ("get", "/v4/domains/{name}", Full, NotFound, None),
        ("put", "/v3/domains/{name}/verify", Full, NotFound, None),
        ("put", "/v4/domains/{name}/verify", Full, NotFound, None),
        ("delete", "/v3/domains/{name}", Full, NotFound, None),
        ("delete", "/v4/domains/{name}", Full, NotFound, None),
        ("get", "/v3/domains/{name}/webhooks", Full, NotFound, None),
        (
            "post",
            "/v3/domains/{name}/webhooks",
            Full,
            NotFound,
            Some(json!({"id": "delivered", "url": "http://127.0.0.1:9/a-hook"})),
        ),
        (
            "get",
            "/v3/domains/{name}/webhooks/{id}",
            Full,
            NotFound,
            None,
        ),
        (
            "put",
            "/v3/domains/{name}/webhooks/{id}",
            Full,
            NotFound,
            Some(json!({"url": "http://127.0.0.1:9/a-hook"})),
        ),
        (
            "delete",
            "/v3/domains/{name}/webhooks/{id}",
            Full,
            NotFound,
            None,
        ),
        ("get", "/v5/accounts/http_signing_key", Full, Own, None),
        (
            "post",
            "/v3/lists",
            Full,
            Own,
            Some(json!({"address": "a-list@example.com"})),
        ),
        ("get", "/v3/lists/pages", Full, Own, None),
        ("get", "/v3/lists/{address}", Full, NotFound, None),
        (
            "put",
            "/v3/lists/{address}",
            Full,
            NotFound,
            Some(json!({"address": "a-renamed@example.com"})),
        ),
        ("delete", "/v3/lists/{address}", Full, NotFound, None),
        (
            "post",
            "/v3/lists/{address}/members",
            Full,
            NotFound,
            Some(json!({"address": "a-member@example.com"})),
        ),
        (
            "get",
            "/v3/lists/{address}/members/pages",
            Full,
            NotFound,
            None,
        ),
        (
            "get",
            "/v3/lists/{address}/members/{member}",
            Full,
            NotFound,
            None,
        ),
        (
            "put",
            "/v3/lists/{address}/members/{member}",
            Full,
            NotFound,
            Some(json!({"name": "x"})),
        ),
        (
            "delete",
            "/v3/lists/{address}/members/{member}",
            Full,
            NotFound,
            None,
        ),
        ("get", "/v4/address/validate", Full, Own, None),
        (
            "post",
            "/v4/address/validate",
            Full,
            Own,
            Some(json!({"address": "a@example.com"})),
        ),
        ("get", "/v3/{domain}/tags", Full, NotFound, None),
        ("get", "/v3/{domain}/tags/{tag}", Full, NotFound, None),
        (
            "put",
            "/v3/{domain}/tags/{tag}",
            Full,
            NotFound,
            Some(json!({"description": "x"})),
        ),
        ("delete", "/v3/{domain}/tags/{tag}", Full, NotFound, None),
        ("get", "/v3/{domain}/tags/{tag}/stats", Full, NotFound, None),
        ("get", "/v3/{domain}/templates", Full, NotFound, None),
        (
            "post",
            "/v3/{domain}/templates",
            Full,
            NotFound,
            Some(json!({"name": "a-mg-template", "template": "<p>x</p>"})),
        ),
        ("get", "/v3/{domain}/templates/{name}", Full, NotFound, None),
        (
            "put",
            "/v3/{domain}/templates/{name}",
            Full,
            NotFound,
            Some(json!({"description": "x"})),
        ),
        (
            "delete",
            "/v3/{domain}/templates/{name}",
            Full,
            NotFound,
            None,
        ),
        (
            "get",
            "/v3/{domain}/templates/{name}/versions",
            Full,
            NotFound,
            None,
        ),
        (
            "post",
            "/v3/{domain}/templates/{name}/versions",
            Full,
            NotFound,
            Some(json!({"tag": "a-v", "template": "<p>x</p>"})),
        ),
        (
            "get",
            "/v3/{domain}/templates/{name}/versions/{tag}",
            Full,
            NotFound,
            None,
        ),
        (
            "put",
            "/v3/{domain}/templates/{name}/versions/{tag}",
            Full,
            NotFound,
            Some(json!({"comment": "x"})),
        ),
        (
            "delete",
            "/v3/{domain}/templates/{name}/versions/{tag}",
            Full,
            NotFound,
            None,
        ),
        ("get", "/v3/{domain}/{kind}", Full, NotFound, None),
        (
            "post",
            "/v3/{domain}/{kind}",
            Full,
            NotFound,
            Some(json!({"address": "a-bounce@example.com"})),
        ),
        ("delete", "/v3/{domain}/{kind}", Full, NotFound, None),
        (
            "post",
            "/v3/{domain}/{kind}/import",
            Full,
            NotFound,
            Some(json!({"file": "address\na-imported@example.com\n"})),
        ),
        ("get", "/v3/{domain}/{kind}/{address}", Full, NotFound, None),
        (
            "delete",
            "/v3/{domain}/{kind}/{address}",
            Full,
            NotFound,
            None,
        ),
        // Mailjet's API (JSON bodies).
        (
            "post",
            "/v3.1/send",
            Send,
            Own,
            Some(
                json!({"Messages": [{"From": {"Email": "demo@sandbox.kuvert.test"}, "To": [{"Email": "x@example.com"}], "Subject": "s", "TextPart": "t"}]}),
            ),
        ),
        ("get", "/v3/REST/contactslist", Full, Own, None),
        (
            "post",
            "/v3/REST/contactslist",
            Full,
            Own,
            Some(json!({"Name": "a-mj-list"})),
        ),
        (
            "get",
            "/v3/REST/contactslist/{list_id}",
            Full,
            NotFound,
            None,
        ),
        (
            "post",
            "/v3/REST/contactslist/{list_id}/managemanycontacts",
            Full,
            NotFound,
            Some(json!({"Action": "addnoforce", "Contacts": [{"Email": "a-many@example.com"}]})),
        ),
        (
            "get",
            "/v3/REST/contactslist/{list_id}/managemanycontacts/{job_id}",
            Full,
            NotFound,
            None,
        ),
        (
            "put",
            "/v3/REST/contactslist/{list_id}",
            Full,
            NotFound,
            Some(json!({"Name": "renamed"})),
        ),
        (
            "delete",
            "/v3/REST/contactslist/{list_id}",
            Full,
            NotFound,
            None,
        ),
        (
            "post",
            "/v3/REST/contactslist/{list_id}/managecontact",
            Full,
            NotFound,
            Some(json!({"Email": "a-mj@example.com", "Action": "addforce"})),
        ),
        ("get", "/v3/REST/contact", Full, Own, None),
        (
            "post",
            "/v3/REST/contact",
            Full,
            Own,
            Some(json!({"Email": "a-mj-contact@example.com"})),
        ),
        ("get", "/v3/REST/contact/{contact_id}", Full, NotFound, None),
        (
            "get",
            "/v3/REST/contact/{contact_id}/getcontactslists",
            Full,
            NotFound,
            None,
        ),
        (
            "post",
            "/v3/REST/contact/{contact_id}/managecontactslists",
            Full,
            NotFound,
            Some(json!({"ContactsLists": []})),
        ),
        ("delete", "/v4/contacts/{contact_id}", Full, NotFound, None),
        (
            "delete",
            "/v4/REST/contacts/{contact_id}",
            Full,
            NotFound,
            None,
        ),
        ("get", "/v3/REST/eventcallbackurl", Full, Own, None),
        (
            "post",
            "/v3/REST/eventcallbackurl",
            Full,
            Own,
            Some(json!({"EventType": "spam", "Url": "http://127.0.0.1:9/a-mj-hook"})),
        ),
        (
            "get",
            "/v3/REST/eventcallbackurl/{callback_id}",
            Full,
            NotFound,
            None,
        ),
        (
            "put",
            "/v3/REST/eventcallbackurl/{callback_id}",
            Full,
            NotFound,
            Some(json!({"Url": "http://127.0.0.1:9/a-mj-hook"})),
        ),
        (
            "delete",
            "/v3/REST/eventcallbackurl/{callback_id}",
            Full,
            NotFound,
            None,
        ),
        (
            "get",
            "/v3/REST/contactdata/{contact_id}",
            Full,
            NotFound,
            None,
        ),
        (
            "put",
            "/v3/REST/contactdata/{contact_id}",
            Full,
            NotFound,
            Some(json!({"Data": []})),
        ),
        ("get", "/v3/REST/contactmetadata", Full, Own, None),
        (
            "post",
            "/v3/REST/contactmetadata",
            Full,
            Own,
            Some(json!({"Name": "a_mj_prop", "Datatype": "str"})),
        ),
        ("get", "/v3/REST/message", Full, Own, None),
        ("get", "/v3/REST/message/{message_id}", Full, NotFound, None),
        (
            "get",
            "/v3/REST/messagehistory/{message_id}",
            Full,
            NotFound,
            None,
        ),
        ("get", "/v3/REST/statcounters", Full, Own, None),
        ("get", "/v3/REST/template", Full, Own, None),
        (
            "post",
            "/v3/REST/template",
            Full,
            Own,
            Some(json!({"Name": "a-mj-template"})),
        ),
        (
            "get",
            "/v3/REST/template/{template_id}",
            Full,
            NotFound,
            None,
        ),
        (
            "delete",
            "/v3/REST/template/{template_id}",
            Full,
            NotFound,
            None,
        ),
        (
            "get",
            "/v3/REST/template/{template_id}/detailcontent",
            Full,
            NotFound,
            None,
        ),
        (
            "post",
            "/v3/REST/template/{template_id}/detailcontent",
            Full,
            NotFound,
            Some(json!({"Html-part": "<p>x</p>"})),
        ),
    ]
}

/// Whether `path` is of a compatible API, whose bodies are forms.
fn is_compat(path: &str) -> bool {
    (path.starts_with("/v3/") || path.starts_with("/v4/")) && !path.starts_with("/v3/REST/")
}

/// Account B's objects, made with B's own key.
struct Other {
    key: String,
    account: String,
    user: String,
    message: String,
    webhook: String,
    key_id: String,
    domain: String,
    suppression: String,
    contact: String,
    list: String,
    import: String,
    segment: String,
    property: String,
    template: String,
    template_id: String,
    /// The recipient of B's message (Mailjet's message id).
    recipient: String,
    campaign: String,
    /// A version of B's template that is not the active one (so that deleting it would work).
    tag: String,
}

async fn other_account(api: &Api) -> Other {
    let created = api.server.cli(&[
        "account",
        "create",
        "--email",
        "owner@b-tenant.example",
        "--password",
        "B-tenant-pass-1!",
        "--json",
    ]);
    assert!(created.ok(), "{}", created.stderr());
    let account = created.json();
    let key = api.server.cli(&[
        "key",
        "create",
        "--account",
        "owner@b-tenant.example",
        "--json",
    ]);
    assert!(key.ok(), "{}", key.stderr());
    let key = key.json();
    let domain = "b-tenant.example";
    let added = api.server.cli(&[
        "domain",
        "add",
        "--account",
        "owner@b-tenant.example",
        domain,
        "--sandbox",
        "--json",
    ]);
    assert!(added.ok(), "{}", added.stderr());
    let secret = key["secret"].as_str().expect("secret").to_owned();
    let (status, m) = api
        .post_with_key(
            "/v1/messages",
            &secret,
            &json!({"from": format!("B <news@{domain}>"), "to": ["b-reader@example.com"], "subject": "B's", "text": "B's secret text"}),
        )
        .await;
    assert_eq!(status, 202, "{m}");
    let (status, w) = api
        .post_with_key(
            "/v1/webhooks",
            &secret,
            &json!({"url": "http://127.0.0.1:9/b-hook"}),
        )
        .await;
    assert_eq!(status, 201, "{w}");
    let suppression = "b-suppressed@example.com";
    let (status, s) = api
        .post_with_key(
            "/v1/suppressions",
            &secret,
            &json!({"address": suppression}),
        )
        .await;
    assert!(status < 300, "{s}");
    let b_post = async |path: &str, body: Value| api.post_with_key(path, &secret, &body).await;
    let (status, p) = b_post(
        "/v1/contact-properties",
        json!({"name": "b_prop", "kind": "string"}),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    let (status, list) = b_post("/v1/lists", json!({"name": "b-list"})).await;
    assert_eq!(status, 201, "{list}");
    let list = list["id"].as_str().expect("list id").to_owned();
    let (status, c) = b_post(
        "/v1/contacts",
        json!({"address": "b-contact@example.com", "name": "B's secret text", "lists": [list]}),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    let (status, seg) = b_post(
        "/v1/segments",
        json!({"name": "b-segment", "filter": {"list": {"list": list}}}),
    )
    .await;
    assert_eq!(status, 201, "{seg}");
    let (status, t) = b_post(
        "/v1/templates",
        json!({"name": "b-template", "version": {"engine": "html", "content": "<p>B's secret text {{x}}</p>"}}),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let template_id = t["id"].as_str().expect("template id").to_owned();
    let (status, t) = b_post(
        "/v1/templates/b-template/versions",
        json!({"engine": "html", "content": "<p>B's secret text</p>", "tag": "b-v2"}),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let (status, campaign) = b_post(
        "/v1/campaigns",
        json!({"name": "B's campaign", "from": format!("news@{domain}"), "template": "b-template",
            "audience": {"lists": [list]}}),
    )
    .await;
    assert_eq!(status, 201, "{campaign}");
    let import: Value = api
        .http
        .post(api.url("/v1/imports"))
        .bearer_auth(&secret)
        .header("content-type", "text/csv")
        .body("email\nb-contact@example.com\n")
        .send()
        .await
        .expect("import")
        .json()
        .await
        .expect("json");
    Other {
        contact: c["id"].as_str().expect("contact id").to_owned(),
        list,
        import: import["id"].as_str().expect("import id").to_owned(),
        segment: seg["id"].as_str().expect("segment id").to_owned(),
        property: "b_prop".to_owned(),
        template: "b-template".to_owned(),
        template_id,
        recipient: m["recipients"][0]["id"]
            .as_str()
            .expect("recipient id")
            .to_owned(),
        campaign: campaign["id"].as_str().expect("campaign id").to_owned(),
        tag: "b-v2".to_owned(),
        account: account["id"].as_str().expect("id").to_owned(),
        user: account["owner"]["id"].as_str().expect("owner").to_owned(),
        message: m["id"].as_str().expect("message id").to_owned(),
        webhook: w["id"].as_str().expect("webhook id").to_owned(),
        key_id: key["id"].as_str().expect("key id").to_owned(),
        domain: domain.to_owned(),
        suppression: suppression.to_owned(),
        key: secret,
    }
}

impl Other {
    fn path(&self, template: &str) -> String {
        let id = if template.starts_with("/v1/messages/") {
            &self.message
        } else if template.starts_with("/v1/webhooks/") {
            &self.webhook
        } else if template.starts_with("/v1/keys/") {
            &self.key_id
        } else if template.starts_with("/v1/users/") {
            &self.user
        } else if template.starts_with("/v1/lists/") {
            &self.list
        } else if template.starts_with("/v1/imports/") {
            &self.import
        } else if template.starts_with("/v1/segments/") {
            &self.segment
        } else if template.starts_with("/v1/campaigns/") {
            &self.campaign
        } else {
            "none"
        };
        template
            .replace("{id}", id)
            .replace(
                "{name}",
                if template.starts_with("/v1/contact-properties/") {
                    &self.property
                } else if template.starts_with("/v1/templates/")
                    || template.contains("/templates/{name}")
                {
                    &self.template
                } else {
                    &self.domain
                },
            )
            .replace("{domain}", &self.domain)
            .replace("{kind}", "bounces")
            .replace(
                "{address}",
                // A Mailgun list's address is the Kuvert list's name.
                if template.starts_with("/v3/lists/") {
                    "b-list"
                } else {
                    &self.suppression
                },
            )
            .replace("{contact}", &self.contact)
            .replace("{list}", &self.list)
            .replace("{tag}", &self.tag)
            .replace("{action}", "pause")
            .replace("{token}", "not-a-token.0")
            .replace("{list_id}", &self.list)
            .replace("{contact_id}", &self.contact)
            .replace("{template_id}", &self.template_id)
            .replace("{message_id}", &self.recipient)
            .replace("{callback_id}", &self.webhook)
            .replace("{member}", "b-contact@example.com")
            .replace("{job_id}", &self.import)
    }

    /// Strings that only B's data holds. A's audit log (and so its export) records the
    /// paths A asked for, B's ids among them: there only what A never sent counts.
    fn marks(&self, records_requests: bool) -> Vec<&str> {
        let mut marks = vec![
            self.account.as_str(),
            "b-reader@example.com",
            "b-contact@example.com",
            "b-hook",
            "B's secret text",
        ];
        if !records_requests {
            marks.extend([
                self.user.as_str(),
                &self.message,
                &self.webhook,
                &self.key_id,
                &self.domain,
                &self.suppression,
                &self.contact,
                &self.list,
                &self.import,
                &self.segment,
                &self.property,
                &self.template,
                &self.campaign,
            ]);
        }
        marks
    }
}

/// One request; the status, and the body unless the route streams.
async fn call(
    api: &Api,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, String) {
    let method: reqwest::Method = method.to_uppercase().parse().expect("method");
    let mut r = api.http.request(method, api.url(path));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    match body {
        Some(Value::Object(fields)) if is_compat(path) => {
            let pairs: Vec<(&String, &str)> = fields
                .iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
                .collect();
            r = r.form(&pairs);
        }
        Some(b) => r = r.json(b),
        None => {}
    }
    let response = r.send().await.expect("request");
    let status = response.status().as_u16();
    if path.ends_with("/stream") {
        return (status, String::new());
    }
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_keeps_accounts_apart_and_keys_in_their_scope() {
    let api = dev_server("[webhooks]\nallow_private = true\n");
    let b = other_account(&api).await;
    let table = routes();

    // The table and the document list the same routes.
    let doc: Value = reqwest::get(api.url("/v1/openapi.json"))
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .chain(
            kuvert_http::mailgun::ROUTES
                .iter()
                .chain(kuvert_http::mailjet::ROUTES)
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    let listed: BTreeSet<(String, String)> = table
        .iter()
        .map(|(m, p, ..)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented.difference(&listed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes of the document without an entry in the access matrix"
    );
    assert_eq!(
        listed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "entries of the access matrix the document does not have"
    );

    let send_key = api
        .server
        .cli(&[
            "key",
            "create",
            "--account",
            "demo@sandbox.kuvert.test",
            "--scope",
            "send",
            "--json",
        ])
        .json()["secret"]
        .as_str()
        .expect("send key")
        .to_owned();
    let mut problems = Vec::new();
    for (method, template, access, cross, body) in &table {
        let path = b.path(template);
        let at = format!("{} {template}", method.to_uppercase());
        // No key.
        let (status, _) = call(&api, method, &path, None, body.as_ref()).await;
        let public = *access == Access::Public;
        if public && (status == 401 || status >= 500) {
            problems.push(format!("{at} without a key: {status}"));
        } else if !public && status != 401 {
            problems.push(format!("{at} without a key: {status}, not 401"));
        }
        // A send-only key of A's.
        if *access == Access::Full {
            let (status, _) = call(&api, method, &path, Some(&send_key), body.as_ref()).await;
            if status != 403 {
                problems.push(format!("{at} with a send-only key: {status}, not 403"));
            }
        }
        // A's full key, B's ids.
        let (status, text) = call(&api, method, &path, Some(&api.key), body.as_ref()).await;
        if status >= 500 {
            problems.push(format!("{at} with A's key: {status}"));
        }
        match cross {
            Cross::NotFound if status != 404 => problems.push(format!(
                "{at} with A's key on B's object: {status}, not 404: {text}"
            )),
            Cross::Own | Cross::NotFound => {
                let records_requests = ["/v1/audit", "/v1/account/export"].contains(template);
                if let Some(m) = b
                    .marks(records_requests)
                    .into_iter()
                    .find(|m| text.contains(m))
                {
                    problems.push(format!("{at} with A's key shows B's {m:?}"));
                }
            }
            Cross::Unscoped => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // B's objects are all there, unchanged, for B.
    for path in [
        format!("/v1/messages/{}", b.message),
        format!("/v1/webhooks/{}", b.webhook),
        format!("/v1/domains/{}", b.domain),
        format!("/v1/contacts/{}", b.contact),
        format!("/v1/lists/{}", b.list),
        format!("/v1/segments/{}", b.segment),
        format!("/v1/imports/{}", b.import),
    ] {
        let (status, text) = call(&api, "get", &path, Some(&b.key), None).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    let (_, hook) = call(
        &api,
        "get",
        &format!("/v1/webhooks/{}", b.webhook),
        Some(&b.key),
        None,
    )
    .await;
    assert!(
        !hook.contains("\"delivered\""),
        "B's webhook kept its events: {hook}"
    );
    let (_, list) = call(&api, "get", "/v1/suppressions", Some(&b.key), None).await;
    assert!(list.contains(&b.suppression), "{list}");
    let (_, keys) = call(&api, "get", "/v1/keys", Some(&b.key), None).await;
    assert!(keys.contains(&b.key_id), "B's key is not revoked: {keys}");
    let (_, props) = call(&api, "get", "/v1/contact-properties", Some(&b.key), None).await;
    assert!(
        props.contains(&b.property),
        "B's property is there: {props}"
    );
    let path = format!("/v1/templates/{}/versions/{}", b.template, b.tag);
    let (status, text) = call(&api, "get", &path, Some(&b.key), None).await;
    assert_eq!(status, 200, "B's version is there: {text}");
    let (_, t) = call(
        &api,
        "get",
        &format!("/v1/templates/{}", b.template),
        Some(&b.key),
        None,
    )
    .await;
    assert!(
        t.contains("\"active_version\":\"v1\""),
        "B's active version is unchanged: {t}"
    );
    assert!(!t.contains("A's words"), "{t}");
    let (status, c) = call(
        &api,
        "get",
        &format!("/v1/campaigns/{}", b.campaign),
        Some(&b.key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert!(
        c.contains("\"state\":\"draft\"") && !c.contains("A's words"),
        "B's campaign is unchanged: {c}"
    );
}
