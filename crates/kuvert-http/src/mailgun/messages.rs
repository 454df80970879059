//! `POST /v3/{domain}/messages` and `/v3/{domain}/messages.mime`: Mailgun's form read into
//! the `Submission` that `accept()` takes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::submission::{Attachment, Body, Parts, Submission, TrackingOptions};
use kuvert_core::{Mailbox, Timestamp};
use kuvert_submit::TemplateUse;
use kuvert_template::Rendered;
use serde::Serialize;
use serde_json::{Map, Value};

use super::form::Form;
use super::{MgAuth, MgError};
use crate::AppState;

/// Mailgun takes at most three tags a message.
pub const MAX_TAGS: usize = 3;

/// What a Mailgun send asks for, read from its form before anything is stored.
#[derive(Debug)]
pub struct MgSend {
    /// The message; with `recipient_variables`, the batch's common part.
    pub submission: Submission,
    pub template: Option<TemplateUse>,
    /// `recipient-variables`: each `to` address gets a message of its own, with
    /// `%recipient.NAME%` filled from its entry.
    pub recipient_variables: Option<Map<String, Value>>,
}

#[derive(Serialize)]
pub struct Queued {
    pub id: String,
    pub message: &'static str,
}

/// The Mailgun form of a message Kuvert builds (`messages`), or of one sent whole
/// (`messages.mime`, the file `message` with its recipients in `to`).
pub fn read_send(form: &Form, mime: bool) -> Result<MgSend, MgError> {
    let mut template = None;
    let mut recipient_variables = None;
    let mut submission = if mime {
        // One message, as a file part or (mailgun.js with a string) a text field.
        let mut given = form
            .files("message")
            .map(|(_, _, bytes)| bytes.to_vec())
            .chain(form.texts("message").map(|t| t.as_bytes().to_vec()));
        let raw = given
            .next()
            .ok_or_else(|| MgError::bad_request("'message' parameter is missing"))?;
        if given.next().is_some() {
            return Err(MgError::bad_request(
                "'message' parameter is given more than once",
            ));
        }
        let to: Vec<String> = addresses(form, "to")?
            .into_iter()
            .map(|m| m.address.to_string())
            .collect();
        if to.is_empty() {
            return Err(MgError::bad_request("'to' parameter is missing"));
        }
        kuvert_mail::received::to_submission(&kuvert_mail::received::crlf(&raw), &to)
            .map_err(|e| MgError::bad_request(format!("message: {e}")))?
    } else {
        let from = form
            .one("from")?
            .ok_or_else(|| MgError::bad_request("'from' parameter is missing"))?;
        let from = Mailbox::parse(from)
            .map_err(|e| MgError::bad_request(format!("from: {from:?} is not valid: {e}")))?;
        let to = addresses(form, "to")?;
        if to.is_empty() {
            return Err(MgError::bad_request("'to' parameter is missing"));
        }
        let subject = form.one("subject")?.map(str::to_owned);
        let text = form.one("text")?.map(str::to_owned);
        let html = form.one("html")?.map(str::to_owned);
        if let Some(name) = form.one("template")? {
            if text.is_some() || html.is_some() {
                return Err(MgError::bad_request(
                    "give a template or text and html, not both",
                ));
            }
            template = Some(TemplateUse {
                name: name.to_ascii_lowercase(),
                version: form.one("t:version")?.map(str::to_owned),
                variables: match form.one("t:variables")? {
                    None => Map::new(),
                    Some(v) => json_object("t:variables", v)?,
                },
            });
        } else if text.is_none() && html.is_none() {
            return Err(MgError::bad_request(
                "Need at least one of 'text', 'html' or 'template' parameters specified",
            ));
        }
        let mut attachments = Vec::new();
        for (filename, content_type, content) in form.files("attachment") {
            attachments.push(Attachment {
                filename: filename.to_owned(),
                content_type: content_type
                    .map_or_else(|| content_type_of(filename).to_owned(), str::to_owned),
                content: content.to_vec(),
            });
        }
        if form.texts("attachment").next().is_some() {
            return Err(MgError::bad_request(
                "'attachment' must be sent as a file of a multipart/form-data request",
            ));
        }
        Submission {
            from,
            to,
            cc: addresses(form, "cc")?,
            bcc: addresses(form, "bcc")?,
            reply_to: None,
            subject: subject.unwrap_or_default(),
            body: Body::Parts(Parts {
                text,
                html,
                headers: vec![],
                attachments,
            }),
            tags: vec![],
            metadata: Map::new(),
            send_at: None,
            tracking: TrackingOptions::default(),
            require_tls: false,
        }
    };
    let mut skip_verification = false;
    for field in &form.fields {
        let name = field.name.as_str();
        let value = match &field.value {
            super::form::FieldValue::Text(t) => t.as_str(),
            super::form::FieldValue::File { .. } => match name {
                "attachment" if !mime => continue,
                "message" if mime => continue,
                "inline" => {
                    return Err(MgError::unsupported(
                        "inline",
                        "inline images are not carried yet; link them or attach them",
                    ));
                }
                _ => {
                    return Err(MgError::bad_request(format!(
                        "'{name}' is not a file field"
                    )));
                }
            },
        };
        if mime
            && (name.starts_with("h:")
                || name.starts_with("t:")
                || name.starts_with("o:tracking")
                || name == "o:require-tls"
                || name == "o:skip-verification")
        {
            // A message given whole is sent as it came: its own header says who it is
            // from and to, and it is not rewritten for tracking.
            return Err(MgError::unsupported(
                name,
                "a message given whole is sent as it came; use X-Kuvert-* header fields in it for Kuvert's options",
            ));
        }
        if let Some(header) = name.strip_prefix("h:") {
            header_field(&mut submission, header, value)?;
        } else if let Some(var) = name.strip_prefix("v:") {
            submission
                .metadata
                .insert(var.to_owned(), Value::String(value.to_owned()));
        } else if let Some(option) = name.strip_prefix("o:") {
            match option {
                "tag" => submission.tags.push(value.to_owned()),
                "deliverytime" => {
                    submission.send_at = Some(Timestamp::parse_rfc2822(value).ok_or_else(|| {
                        MgError::bad_request(format!(
                            "o:deliverytime: {value:?} is not a date such as 'Fri, 14 Oct 2026 23:10:10 -0000'"
                        ))
                    })?);
                }
                "tracking" => {
                    let on = yes_no(name, value, false)?;
                    submission.tracking.opens = Some(on);
                    submission.tracking.clicks = Some(on);
                }
                // Kuvert rewrites the links of the HTML part only: `htmlonly` is what it does.
                "tracking-clicks" => submission.tracking.clicks = Some(yes_no(name, value, true)?),
                "tracking-opens" => submission.tracking.opens = Some(yes_no(name, value, false)?),
                "require-tls" => submission.require_tls = yes_no(name, value, false)?,
                "skip-verification" => skip_verification = yes_no(name, value, false)?,
                "dkim" if !yes_no(name, value, false)? => {
                    return Err(MgError::unsupported(
                        name,
                        "every message is signed with its domain's DKIM key",
                    ));
                }
                "dkim" => {}
                "testmode" if yes_no(name, value, false)? => {
                    return Err(MgError::unsupported(
                        name,
                        "use a separate instance in capture mode ([delivery] capture) to send without delivering",
                    ));
                }
                "testmode" => {}
                _ => {
                    return Err(MgError::unsupported(
                        name,
                        "see the compatibility table for the options Kuvert carries out",
                    ));
                }
            }
        } else if let Some(option) = name.strip_prefix("t:") {
            match option {
                "version" | "variables" => {}
                // The text part is always derived from the HTML when a template gives none.
                "text" if yes_no(name, value, false)? => {}
                _ => {
                    return Err(MgError::unsupported(
                        name,
                        "see the compatibility table for the template options Kuvert carries out",
                    ));
                }
            }
        } else {
            match name {
                "to" => {}
                "from" | "cc" | "bcc" | "subject" | "text" | "html" | "template" if !mime => {}
                "message" if mime => {}
                "recipient-variables" => {
                    recipient_variables = Some(json_object(name, value)?);
                }
                "amp-html" => {
                    return Err(MgError::unsupported(name, "AMP parts are not sent"));
                }
                "inline" => {
                    return Err(MgError::unsupported(
                        "inline",
                        "inline images are not carried yet; link them or attach them",
                    ));
                }
                _ => {
                    return Err(MgError::bad_request(format!(
                        "'{name}' is not a parameter of this route"
                    )));
                }
            }
        }
    }
    if submission.require_tls && !skip_verification {
        // Delivery requires TLS but does not verify the receiving server's certificate:
        // Mailgun's `o:require-tls` alone would promise that it does.
        return Err(MgError::unsupported(
            "o:require-tls",
            "TLS is required but the receiving server's certificate is not verified; send o:skip-verification=yes with it to accept that",
        ));
    }
    if submission.tags.len() > MAX_TAGS {
        return Err(MgError::bad_request(format!(
            "o:tag: at most {MAX_TAGS} tags a message"
        )));
    }
    if recipient_variables.is_some() && !(submission.cc.is_empty() && submission.bcc.is_empty()) {
        return Err(MgError::unsupported(
            "recipient-variables",
            "a batch send goes to its 'to' addresses one by one; cc and bcc are not taken with it",
        ));
    }
    if recipient_variables.is_some() && mime {
        return Err(MgError::unsupported(
            "recipient-variables",
            "a message sent whole is not filled in per recipient",
        ));
    }
    Ok(MgSend {
        submission,
        template,
        recipient_variables,
    })
}

/// The `h:` fields: `Reply-To` is the message's reply-to; `X-Mailgun-Variables` is a JSON
/// object of user variables; the rest are the caller's own header fields.
fn header_field(sub: &mut Submission, name: &str, value: &str) -> Result<(), MgError> {
    if name.eq_ignore_ascii_case("reply-to") {
        sub.reply_to = Some(Mailbox::parse(value).map_err(|e| {
            MgError::bad_request(format!("h:Reply-To: {value:?} is not valid: {e}"))
        })?);
        return Ok(());
    }
    if name.eq_ignore_ascii_case("x-mailgun-variables") {
        sub.metadata
            .extend(json_object(&format!("h:{name}"), value)?);
        return Ok(());
    }
    if name
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("x-mailgun-"))
    {
        // Mailgun reads its other X-Mailgun-* fields as options; passed on as plain header
        // fields they would look honoured and not be.
        return Err(MgError::unsupported(
            &format!("h:{name}"),
            "Mailgun's control header fields are options here: use the o: parameters",
        ));
    }
    match &mut sub.body {
        Body::Parts(parts) => {
            parts.headers.push((name.to_owned(), value.to_owned()));
            Ok(())
        }
        Body::Raw(_) => Err(MgError::unsupported(
            &format!("h:{name}"),
            "a message sent whole carries its own header fields",
        )),
    }
}

fn json_object(name: &str, value: &str) -> Result<Map<String, Value>, MgError> {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(MgError::bad_request(format!(
            "{name} must be a JSON object"
        ))),
    }
}

pub(crate) fn yes_no(name: &str, value: &str, htmlonly: bool) -> Result<bool, MgError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        "htmlonly" if htmlonly => Ok(true),
        _ => Err(MgError::bad_request(format!(
            "{name}: {value:?} is not yes or no"
        ))),
    }
}

/// The addresses of every `name` field, each a mailbox or a comma-separated list of them.
fn addresses(form: &Form, name: &str) -> Result<Vec<Mailbox>, MgError> {
    let mut out = Vec::new();
    for list in form.texts(name) {
        for item in kuvert_core::address::split_address_list(list) {
            out.push(Mailbox::parse(item).map_err(|e| {
                MgError::bad_request(format!("{name}: {item:?} is not a valid address: {e}"))
            })?);
        }
    }
    Ok(out)
}

/// A type for a file sent without one, from its name.
fn content_type_of(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "ics" => "text/calendar",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// The longest variable name `%recipient.NAME%` is read with: a `%` further on ends no name,
/// so that a text of unclosed marks is read in one pass.
const MAX_NAME: usize = 64;

/// Bytes a batch may hold in all its copies: each copy is a message of its own, stored whole.
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// `%recipient.NAME%` filled from `vars`, and `%recipient%` with the address itself; a name
/// the entry lacks is left as written, as Mailgun does. At most `budget` bytes come out.
fn fill(
    text: &str,
    address: &str,
    vars: Option<&Map<String, Value>>,
    budget: usize,
) -> Result<String, MgError> {
    const MARK: &str = "%recipient";
    let mut out = String::with_capacity(text.len().min(budget));
    let mut rest = text;
    let push = |out: &mut String, s: &str| {
        if out.len() + s.len() > budget {
            return Err(MgError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a message filled in from recipient-variables is over {budget} bytes"),
            ));
        }
        out.push_str(s);
        Ok(())
    };
    while let Some(at) = rest.find(MARK) {
        push(&mut out, &rest[..at])?;
        let after = &rest[at + MARK.len()..];
        if let Some(tail) = after.strip_prefix('%') {
            push(&mut out, address)?;
            rest = tail;
            continue;
        }
        let name_end = after.strip_prefix('.').and_then(|n| {
            n.bytes()
                .take(MAX_NAME + 1)
                .position(|b| b == b'%')
                .map(|end| (&n[..end], &n[end + 1..]))
        });
        match name_end {
            Some((name, tail)) if !name.contains(char::is_whitespace) => {
                match vars.and_then(|v| v.get(name)) {
                    Some(Value::String(s)) => push(&mut out, s)?,
                    Some(Value::Null) | None => {
                        push(&mut out, &rest[at..at + MARK.len() + 2 + name.len()])?;
                    }
                    Some(other) => push(&mut out, &other.to_string())?,
                }
                rest = tail;
            }
            _ => {
                push(&mut out, MARK)?;
                rest = after;
            }
        }
    }
    push(&mut out, rest)?;
    Ok(out)
}

/// The batch's message for one `to` address; `vars` are keyed by address in lower case.
fn for_recipient(
    common: &Submission,
    to: &Mailbox,
    vars: &HashMap<String, &Map<String, Value>>,
    budget: usize,
) -> Result<Submission, MgError> {
    let address = to.address.to_string();
    let entry = vars.get(&address.to_lowercase()).copied();
    let mut sub = common.clone();
    sub.to = vec![to.clone()];
    sub.subject = fill(&common.subject, &address, entry, budget)?;
    if let Body::Parts(parts) = &mut sub.body {
        if let Some(t) = &parts.text {
            parts.text = Some(fill(t, &address, entry, budget)?);
        }
        if let Some(h) = &parts.html {
            parts.html = Some(fill(h, &address, entry, budget)?);
        }
    }
    Ok(sub)
}

pub async fn send(
    State(state): State<Arc<AppState>>,
    MgAuth(auth): MgAuth,
    Path(domain): Path<String>,
    form: Form,
) -> Result<Json<Queued>, MgError> {
    accept(&state, auth, &domain, read_send(&form, false)?).await
}

pub async fn send_mime(
    State(state): State<Arc<AppState>>,
    MgAuth(auth): MgAuth,
    Path(domain): Path<String>,
    form: Form,
) -> Result<Json<Queued>, MgError> {
    accept(&state, auth, &domain, read_send(&form, true)?).await
}

async fn accept(
    state: &AppState,
    auth: kuvert_store::KeyAuth,
    domain: &str,
    send: MgSend,
) -> Result<Json<Queued>, MgError> {
    let domain = super::account_domain(state, &auth, domain).await?.name;
    if send.submission.from.address.domain() != domain {
        return Err(MgError::bad_request(format!(
            "from: {} is not an address of {domain}; Kuvert signs each message with its sender's domain",
            send.submission.from.address
        )));
    }
    let rendered: Option<Rendered> =
        crate::routes::messages::render(state, &auth.account_id, send.template).await?;
    let mut common = send.submission;
    if let Some(r) = rendered {
        let unsubscribe = r.asks_for_unsubscribe();
        if common.subject.is_empty() {
            common.subject = r.subject.unwrap_or_default();
        }
        if let Body::Parts(parts) = &mut common.body {
            parts.text = Some(r.text);
            parts.html = Some(r.html);
        }
        common.tracking.unsubscribe |= unsubscribe;
    }
    if common.subject.is_empty() {
        return Err(MgError::bad_request("'subject' parameter is missing"));
    }
    let Some(vars) = &send.recipient_variables else {
        let from_domain = common.from.address.domain().to_owned();
        let accepted = state
            .acceptor
            .accept(&auth.account_id, common)
            .await
            .map_err(crate::ApiError::from)?;
        return Ok(Json(Queued {
            id: format!(
                "<{}>",
                kuvert_mail::mime::message_id_header(&accepted.id, &from_domain)
            ),
            message: "Queued. Thank you.",
        }));
    };
    batch(state, &auth, common, vars).await
}

/// A batch: a message of its own to each `to` address. Every copy is built and checked
/// before the first is queued, one at a time (memory holds one copy), so that a copy the
/// checks refuse sends nothing.
async fn batch(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    common: Submission,
    vars: &Map<String, Value>,
) -> Result<Json<Queued>, MgError> {
    let limits = state.acceptor.limits();
    let n = common.to.len();
    if n > limits.max_recipients {
        return Err(MgError::bad_request(format!(
            "a batch goes to at most {} addresses",
            limits.max_recipients
        )));
    }
    let size = common.subject.len()
        + match &common.body {
            Body::Parts(p) => {
                p.text.as_ref().map_or(0, String::len)
                    + p.html.as_ref().map_or(0, String::len)
                    + p.attachments.iter().map(|a| a.content.len()).sum::<usize>()
            }
            Body::Raw(r) => r.len(),
        };
    if size.saturating_mul(n) > MAX_BATCH_BYTES {
        return Err(MgError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a batch of {n} copies of {size} bytes is over {MAX_BATCH_BYTES} bytes in all; send it in parts"
            ),
        ));
    }
    let vars: HashMap<String, &Map<String, Value>> = vars
        .iter()
        .filter_map(|(k, v)| v.as_object().map(|o| (k.to_lowercase(), o)))
        .collect();
    let budget = limits.max_message_bytes;
    let now = state.store.clock().now();
    for to in &common.to {
        for_recipient(&common, to, &vars, budget)?
            .check(limits, now)
            .map_err(crate::ApiError::from)?;
    }
    let mut first = None;
    for (i, to) in common.to.iter().enumerate() {
        let sub = for_recipient(&common, to, &vars, budget)?;
        let from_domain = sub.from.address.domain().to_owned();
        match state.acceptor.accept(&auth.account_id, sub).await {
            Ok(accepted) => {
                first.get_or_insert(format!(
                    "<{}>",
                    kuvert_mail::mime::message_id_header(&accepted.id, &from_domain)
                ));
            }
            Err(e) => {
                let mut e = MgError::from(crate::ApiError::from(e));
                if i > 0 {
                    // What was queued stays queued: the answer says so, and which.
                    e.message = format!(
                        "{} (the first {i} of {n} messages were queued, the first as {})",
                        e.message,
                        first.as_deref().unwrap_or_default()
                    );
                }
                return Err(e);
            }
        }
    }
    Ok(Json(Queued {
        id: first.unwrap_or_default(),
        message: "Queued. Thank you.",
    }))
}

#[cfg(test)]
mod tests {
    use super::super::form::{Field, FieldValue};
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            fields: fields
                .iter()
                .map(|(n, v)| Field {
                    name: (*n).to_owned(),
                    value: FieldValue::Text((*v).to_owned()),
                })
                .collect(),
        }
    }

    #[test]
    fn a_form_becomes_a_submission() {
        let send = read_send(
            &form(&[
                ("from", "Shop <news@shop.example>"),
                ("to", "Ann <ann@x.example>, \"Doe, Bob\" <bob@x.example>"),
                ("to", "cy@x.example"),
                ("subject", "Hi"),
                ("text", "Hello"),
                ("o:tag", "spring"),
                ("o:tracking-clicks", "htmlonly"),
                ("o:deliverytime", "Wed, 14 Oct 2026 23:10:10 -0000"),
                ("v:order", "7"),
                ("h:X-Campaign", "spring"),
                ("h:Reply-To", "help@shop.example"),
            ]),
            false,
        )
        .expect("a send");
        let s = send.submission;
        assert_eq!(s.to.len(), 3);
        assert_eq!(s.to[1].name.as_deref(), Some("Doe, Bob"));
        assert_eq!(s.tags, ["spring"]);
        assert_eq!(s.tracking.clicks, Some(true));
        assert_eq!(s.tracking.opens, None);
        assert_eq!(s.send_at, Timestamp::parse_rfc3339("2026-10-14T23:10:10Z"));
        assert_eq!(s.metadata.get("order"), Some(&Value::String("7".into())));
        assert_eq!(
            s.reply_to.map(|r| r.address.to_string()),
            Some("help@shop.example".into())
        );
        let Body::Parts(parts) = s.body else {
            panic!("parts")
        };
        assert_eq!(parts.headers, [("X-Campaign".into(), "spring".into())]);
    }

    #[test]
    fn options_kuvert_does_not_carry_out_are_refused_by_name() {
        let base = [
            ("from", "news@shop.example"),
            ("to", "ann@x.example"),
            ("subject", "Hi"),
            ("text", "Hello"),
        ];
        for (name, value) in [
            ("o:testmode", "yes"),
            ("o:dkim", "no"),
            ("o:sending-ip", "10.0.0.1"),
            ("o:require-tls", "yes"),
            ("h:X-Mailgun-Track", "no"),
            ("t:text", "no"),
            ("amp-html", "<html></html>"),
            ("unknown", "x"),
        ] {
            let mut fields = base.to_vec();
            fields.push((name, value));
            let e = read_send(&form(&fields), false).expect_err(name);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{name}");
            assert!(e.message.contains(name), "{name}: {}", e.message);
        }
        // A header name of wide characters is read without a panic (its check comes later).
        let mut fields = base.to_vec();
        fields.push(("h:éééééé", "x"));
        if let Err(e) = read_send(&form(&fields), false) {
            assert!(e.status.is_client_error(), "{e:?}");
        }
        let mut fields = base.to_vec();
        fields.extend([("o:require-tls", "yes"), ("o:skip-verification", "yes")]);
        assert!(
            read_send(&form(&fields), false)
                .expect("taken")
                .submission
                .require_tls
        );
        let mut fields = base.to_vec();
        fields.extend([
            ("o:tag", "a"),
            ("o:tag", "b"),
            ("o:tag", "c"),
            ("o:tag", "d"),
        ]);
        assert!(read_send(&form(&fields), false).is_err(), "four tags");
        // Two messages in one request: which would be sent is not for the server to guess.
        let e = read_send(
            &form(&[
                ("to", "ann@x.example"),
                ("message", "From: a@shop.example\r\n\r\none\r\n"),
                ("message", "From: a@shop.example\r\n\r\ntwo\r\n"),
            ]),
            true,
        )
        .expect_err("two messages");
        assert!(e.message.contains("more than once"), "{}", e.message);
        // A message given whole carries its own header: fields and options that would
        // change it are refused, not dropped.
        for (name, value) in [
            ("cc", "bob@x.example"),
            ("subject", "Hi"),
            ("h:Reply-To", "help@shop.example"),
            ("o:tracking", "yes"),
            ("t:variables", "{}"),
        ] {
            let e = read_send(
                &form(&[
                    ("to", "ann@x.example"),
                    ("message", "From: a@shop.example\r\n\r\nbody\r\n"),
                    (name, value),
                ]),
                true,
            )
            .expect_err(name);
            assert!(e.message.contains(name), "{name}: {}", e.message);
        }
    }

    #[test]
    fn recipient_variables_fill_each_copy() {
        let vars = json_object(
            "recipient-variables",
            r#"{"ann@x.example": {"first": "Ann", "id": 1}}"#,
        )
        .expect("object");
        let text = "Hi %recipient.first% (%recipient.id%), %recipient%: %recipient.last% 100%";
        let ann = vars.get("ann@x.example").and_then(Value::as_object);
        assert_eq!(
            fill(text, "ann@x.example", ann, 1000).expect("filled"),
            "Hi Ann (1), ann@x.example: %recipient.last% 100%"
        );
        let plain = |t: &str| fill(t, "a@x.example", None, 1000).expect("filled");
        assert_eq!(plain("%recipient"), "%recipient");
        assert_eq!(plain("%recipient.%"), "%recipient.%");
        // A name longer than names are is no name: the text stays as written.
        let long = format!("%recipient.{}%", "x".repeat(MAX_NAME + 1));
        assert_eq!(plain(&long), long);
        // What comes out is bounded, whatever the marks and values.
        let many = "%recipient%".repeat(100);
        assert!(fill(&many, "a@x.example", None, 1000).is_err());
        // A key written in another case than the address still fills it.
        let common = read_send(
            &form(&[
                ("from", "news@shop.example"),
                ("to", "Ann@X.example"),
                ("subject", "Hi %recipient.first%"),
                ("text", "x"),
            ]),
            false,
        )
        .expect("a send")
        .submission;
        let vars: HashMap<String, &Map<String, Value>> = vars
            .iter()
            .filter_map(|(k, v)| v.as_object().map(|o| (k.to_lowercase(), o)))
            .collect();
        let copy = for_recipient(&common, &common.to[0], &vars, 1000).expect("a copy");
        assert_eq!(copy.subject, "Hi Ann");
    }
}
