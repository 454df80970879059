//! The account holder's copy of their data (the rights of access and portability): every
//! personal datum the platform holds about the account and its users, as JSON. Sections are
//! named after the tables and fields after the columns, so that a test can check every personal
//! column of the schema against it.

use kuvert_core::id::AccountId;
use kuvert_store::{EventFilter, Store};
use serde_json::{Value, json};

use crate::AdminError;

/// Rows read per query while exporting.
const PAGE: u32 = 500;

fn time(t: kuvert_core::Timestamp) -> Value {
    json!(t.to_rfc3339())
}

/// Where an export goes, piece by piece: an HTTP response as it is read, or a buffer.
pub trait ExportSink: Send {
    fn write(
        &mut self,
        bytes: &[u8],
    ) -> impl std::future::Future<Output = Result<(), AdminError>> + Send;
}

impl ExportSink for Vec<u8> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), AdminError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Writes one JSON object, a section at a time; lists row by row, so memory holds a page of
/// rows, not the account.
struct Writer<'a, S> {
    out: &'a mut S,
    first_key: bool,
    first_item: bool,
}

impl<S: ExportSink> Writer<'_, S> {
    async fn key(&mut self, name: &str) -> Result<(), AdminError> {
        let comma = if std::mem::take(&mut self.first_key) {
            ""
        } else {
            ","
        };
        self.out
            .write(format!("{comma}{}:", Value::from(name)).as_bytes())
            .await
    }

    async fn field(&mut self, name: &str, value: &Value) -> Result<(), AdminError> {
        self.key(name).await?;
        self.out.write(value.to_string().as_bytes()).await
    }

    async fn list(&mut self, name: &str) -> Result<(), AdminError> {
        self.key(name).await?;
        self.first_item = true;
        self.out.write(b"[").await
    }

    async fn item(&mut self, value: &Value) -> Result<(), AdminError> {
        if !std::mem::take(&mut self.first_item) {
            self.out.write(b",").await?;
        }
        self.out.write(value.to_string().as_bytes()).await
    }

    async fn end_list(&mut self) -> Result<(), AdminError> {
        self.out.write(b"]").await
    }
}

/// The whole export as one value (the CLI, support's look, tests).
pub async fn export_account(store: &Store, account: &AccountId) -> Result<Value, AdminError> {
    let mut buf = Vec::new();
    write_export(store, account, &mut buf).await?;
    serde_json::from_slice(&buf).map_err(|e| AdminError::Export(e.to_string()))
}

/// The export, written to `out` section by section: an account's events within retention,
/// its messages and its captures never sit in memory at once.
pub async fn write_export<S: ExportSink>(
    store: &Store,
    account: &AccountId,
    out: &mut S,
) -> Result<(), AdminError> {
    let a = store.account(account).await?;
    let state = store.account_state(account).await?;
    out.write(b"{").await?;
    let mut w = Writer {
        out,
        first_key: true,
        first_item: true,
    };
    w.field("exported_at", &time(store.clock().now())).await?;
    w.field(
        "accounts",
        &json!({
            "id": a.id, "plan": a.plan, "region": a.region, "status": a.status,
            "company": a.profile.company, "country": a.profile.country,
            "vat_id": a.profile.vat_id, "postal_address": a.profile.postal_address,
            "created_at": time(a.created_at),
            "tracking": serde_json::to_value(&state.tracking).unwrap_or(Value::Null),
        }),
    )
    .await?;
    let users: Vec<Value> = store
        .users(account)
        .await?
        .into_iter()
        .map(|u| {
            json!({"id": u.id, "email": u.email, "role": u.role, "salutation": u.profile.salutation,
                "first_name": u.profile.first_name, "last_name": u.profile.last_name,
                "phone": u.profile.phone, "created_at": time(u.created_at)})
        })
        .collect();
    w.field("users", &Value::Array(users)).await?;
    let keys: Vec<Value> = store
        .list_keys(account)
        .await?
        .into_iter()
        .map(|k| {
            json!({"id": k.id, "name": k.name, "prefix": k.prefix, "scope": k.scope,
                "created_at": time(k.created_at), "last_used_at": k.last_used_at.map(time),
                "revoked_at": k.revoked_at.map(time)})
        })
        .collect();
    w.field("api_keys", &Value::Array(keys)).await?;
    let mut domains: Vec<Value> = Vec::new();
    for d in store.list_domains(account).await? {
        let keys: Vec<Value> = store
            .dkim_keys(&d.id)
            .await?
            .into_iter()
            .map(|k| {
                json!({"selector": k.selector, "algorithm": k.algorithm, "public": k.public_b64,
                    "state": k.state, "created_at": time(k.created_at)})
            })
            .collect();
        domains.push(json!({"name": d.name, "dkim_keys": keys,
            "sandbox": d.sandbox, "verified_at": d.verified_at.map(time),
            "created_at": time(d.created_at)}));
    }
    w.field("domains", &Value::Array(domains)).await?;
    let webhooks: Vec<Value> = store
        .list_webhooks(account)
        .await?
        .into_iter()
        .map(|w| json!({"id": w.id, "url": w.url, "events": w.events, "created_at": time(w.created_at)}))
        .collect();
    w.field("webhooks", &Value::Array(webhooks)).await?;

    w.list("suppressions").await?;
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_suppressions(account, None, after.as_deref(), PAGE)
            .await?;
        for s in page.items {
            w.item(&json!({"address": s.address, "reason": s.reason, "created_at": time(s.created_at)}))
                .await?;
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    w.end_list().await?;

    // Messages, then their recipients: two passes, so that neither list is held.
    for section in ["messages", "recipients"] {
        w.list(section).await?;
        let mut after: Option<String> = None;
        loop {
            let ids = store.message_ids(account, after.as_deref(), PAGE).await?;
            let Some(last) = ids.last() else { break };
            after = Some(last.to_string());
            for id in &ids {
                let m = store.message(account, id.as_str()).await?;
                if section == "recipients" {
                    for r in &m.recipients {
                        w.item(&json!({"message_id": m.id, "id": r.id, "address": r.email, "kind": r.kind,
                            "status": r.status, "attempts": r.attempts, "updated_at": time(r.updated_at)}))
                            .await?;
                    }
                    continue;
                }
                w.item(&json!({
                    "id": m.id, "sender": m.from, "subject": m.subject, "size": m.size, "tags": m.tags,
                    "metadata": m.metadata, "send_at": m.send_at.map(time), "created_at": time(m.created_at),
                    "mime": m.mime.map(|b| String::from_utf8_lossy(&b).into_owned()),
                }))
                .await?;
            }
        }
        w.end_list().await?;
    }

    w.list("events").await?;
    let mut before = None;
    loop {
        let page = store
            .list_events(
                account,
                &EventFilter {
                    limit: PAGE,
                    before,
                    ..Default::default()
                },
            )
            .await?;
        for e in page.items {
            w.item(
                &json!({"seq": e.seq, "type": e.event_type, "message_id": e.message_id,
                "recipient_id": e.recipient_id, "recipient": e.recipient, "tags": e.tags,
                "data": e.details, "created_at": time(e.created_at)}),
            )
            .await?;
        }
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    w.end_list().await?;

    w.list("captures").await?;
    let mut before = None;
    loop {
        let page = store.list_captures(account, before, PAGE).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        for c in page {
            w.item(&json!({"message_id": c.message_id, "mail_from": c.mail_from, "recipients": c.recipients,
                "mime": String::from_utf8_lossy(&c.mime), "created_at": time(c.created_at)}))
                .await?;
        }
    }
    w.end_list().await?;

    let requests: Vec<Value> = store
        .privacy_requests(Some(account))
        .await?
        .into_iter()
        .map(|r| {
            json!({"id": r.id, "right_kind": r.right, "requested_by": r.requested_by, "state": r.state,
                "created_at": time(r.created_at), "due_at": time(r.due_at), "done_at": r.done_at.map(time)})
        })
        .collect();
    w.field("privacy_requests", &Value::Array(requests)).await?;

    // Contacts, then their consent records: two passes, as messages and recipients.
    for section in ["contacts", "consent_records"] {
        w.list(section).await?;
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_contacts(account, None, None, after.as_deref(), PAGE)
                .await?;
            for c in &page.items {
                if section == "contacts" {
                    let mut v = crate::contacts::contact_json(c);
                    if let Some(o) = v.as_object_mut() {
                        o.remove("consent");
                    }
                    w.item(&v).await?;
                    continue;
                }
                for r in &c.consent {
                    w.item(
                        &json!({"contact_id": c.id, "list_id": r.list_id, "action": r.action,
                        "method": r.method, "consent_text": r.consent_text, "source": r.source,
                        "created_at": time(r.created_at)}),
                    )
                    .await?;
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        w.end_list().await?;
    }

    // Templates: every version with its source and the HTML it compiled to.
    w.list("template_versions").await?;
    for v in store.template_versions_for_export(account).await? {
        let c = v.compiled;
        w.item(
            &json!({"template": v.template, "tag": v.info.tag, "active": v.info.active,
            "comment": v.info.comment, "created_at": time(v.info.created_at),
            "body": {"engine": c.source.engine, "content": c.source.content, "text": c.source.text,
                "subject": c.source.subject, "html": c.html}}),
        )
        .await?;
    }
    w.end_list().await?;

    w.list("campaigns").await?;
    for c in store.campaigns(account).await? {
        // Links may name their reader: they are the account's data too.
        let links: Vec<_> = store
            .campaign_links(account, &c.id, u32::MAX)
            .await?
            .into_iter()
            .map(|(url, clicks)| json!({"url": url, "clicks": clicks}))
            .collect();
        let s = c.settings;
        w.item(&json!({"id": c.id, "name": s.name, "state": c.state, "sender": s.from,
            "reply_to": s.reply_to, "subject": s.subject, "template": s.template, "version": s.version,
            "audience": s.audience, "sent": c.sent, "skipped": c.skipped, "errors": c.errors,
            "ab": s.ab, "ab_result": c.ab_result, "links": links,
            "created_at": time(c.created_at), "finished_at": c.finished_at.map(time)}))
            .await?;
    }
    w.end_list().await?;

    w.list("audit_log").await?;
    let mut before = None;
    loop {
        let page = store.audit_log(account, before, PAGE).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        for e in page {
            w.item(&json!({"actor_kind": e.actor_kind, "actor": e.actor, "action": e.action, "detail": e.detail, "ip": e.ip,
                "created_at": time(e.created_at)}))
                .await?;
        }
    }
    w.end_list().await?;
    w.out.write(b"}").await
}
