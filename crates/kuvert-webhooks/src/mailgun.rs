//! Kuvert's events in Mailgun's shape (`event-data`): what Mailgun's events API answers and
//! what an endpoint registered through Mailgun's API receives, so that receivers written for
//! Mailgun (their signature checks and event parsing) work unchanged.

use kuvert_core::event::{EventDetails, EventType};
use kuvert_store::{EventRecord, MessageView};
use serde_json::{Map, Value, json};

/// The name, severity and log level Mailgun gives an event of this type.
fn mailgun_event(t: EventType) -> (&'static str, Option<&'static str>, &'static str) {
    match t {
        EventType::Accepted => ("accepted", None, "info"),
        EventType::Delivered => ("delivered", None, "info"),
        EventType::Deferred => ("failed", Some("temporary"), "warn"),
        EventType::Bounced | EventType::Failed | EventType::Dropped => {
            ("failed", Some("permanent"), "error")
        }
        EventType::Opened => ("opened", None, "info"),
        EventType::Clicked => ("clicked", None, "info"),
        EventType::Unsubscribed => ("unsubscribed", None, "info"),
        EventType::Complained => ("complained", None, "warn"),
        // Mailgun has no such event; no Mailgun webhook name subscribes to it, and it
        // belongs to no domain's events.
        EventType::Suspended => ("suspended", None, "error"),
    }
}

/// `550 5.1.1 No such user` as its code, enhanced code and text.
fn reply_parts(reply: &str) -> (Option<u16>, Option<&str>, &str) {
    let (code, rest) = match reply.split_once(' ') {
        Some((c, rest)) if c.len() == 3 && c.parse::<u16>().is_ok() => (c.parse().ok(), rest),
        _ => return (None, None, reply),
    };
    match rest.split_once(' ') {
        Some((e, text))
            if e.split('.').count() == 3 && e.split('.').all(|p| p.parse::<u16>().is_ok()) =>
        {
            (code, Some(e), text)
        }
        _ => (code, None, rest),
    }
}

fn delivery_status(
    attempt: Option<u32>,
    reply: Option<&str>,
    mx: Option<&str>,
    tls: Option<bool>,
    description: &str,
) -> Value {
    let (code, enhanced, text) = reply.map_or((None, None, ""), reply_parts);
    let mut s = json!({
        "code": code,
        "message": text,
        "description": description,
        "attempt-no": attempt.unwrap_or(1),
    });
    if let Some(e) = enhanced {
        s["enhanced-code"] = e.into();
    }
    if let Some(mx) = mx {
        s["mx-host"] = mx.into();
    }
    if let Some(tls) = tls {
        s["tls"] = tls.into();
        // Delivery does not verify certificates (opportunistic TLS).
        s["certificate-verified"] = false.into();
    }
    s
}

/// One of Kuvert's events in Mailgun's shape; `message` is its message, when it still exists.
pub fn event_data(e: &EventRecord, message: Option<&MessageView>) -> Value {
    let (name, severity, level) = mailgun_event(e.event_type);
    let recipient = e.recipient.clone().unwrap_or_default();
    let mut out = json!({
        "id": e.seq.to_string(),
        "event": name,
        "timestamp": e.created_at.millis() as f64 / 1000.0,
        "log-level": level,
        "recipient": recipient,
        "recipient-domain": recipient.rsplit_once('@').map_or("", |(_, d)| d),
        "tags": e.tags,
        "user-variables": message.map_or_else(Map::new, |m| m.metadata.clone()),
        "flags": {"is-test-mode": false, "is-routed": false, "is-authenticated": true},
    });
    if let Some(m) = message {
        let sender = kuvert_core::Mailbox::parse(&m.from).ok();
        let domain = sender
            .as_ref()
            .map_or(String::new(), |s| s.address.domain().to_owned());
        out["envelope"] = json!({
            "sender": sender.as_ref().map_or(m.from.clone(), |s| s.address.to_string()),
            "targets": recipient,
            "transport": "smtp",
        });
        out["message"] = json!({
            "headers": {
                "to": recipient,
                "message-id": kuvert_mail::mime::message_id_header(&m.id, &domain),
                "from": m.from,
                "subject": m.subject,
            },
            "attachments": [],
            "size": m.size,
        });
    }
    if let Some(s) = severity {
        out["severity"] = s.into();
    }
    match &e.details {
        EventDetails::Delivered(d) => {
            out["delivery-status"] = delivery_status(
                d.attempt,
                d.reply.as_deref(),
                d.mx.as_deref(),
                Some(d.tls.is_some()),
                "",
            );
        }
        EventDetails::Deferred(d) => {
            out["reason"] = "generic".into();
            out["delivery-status"] = delivery_status(
                d.attempt,
                d.reply.as_deref(),
                d.mx.as_deref(),
                None,
                d.reason.as_deref().unwrap_or_default(),
            );
        }
        EventDetails::Bounced(b) => {
            out["reason"] = "bounce".into();
            out["delivery-status"] =
                delivery_status(b.attempt, Some(&b.reply), b.mx.as_deref(), None, "");
            if b.source.is_some() {
                out["flags"]["is-delayed-bounce"] = true.into();
            }
        }
        EventDetails::Failed(f) => {
            out["reason"] = "generic".into();
            out["delivery-status"] = delivery_status(
                f.attempt,
                f.reply.as_deref(),
                f.mx.as_deref(),
                None,
                &f.detail,
            );
        }
        EventDetails::Dropped(d) => {
            let why = d.reason.as_deref().unwrap_or_default();
            out["reason"] = if why.contains("unsubscribe") {
                "suppress-unsubscribe"
            } else if why.contains("complain") {
                "suppress-complaint"
            } else {
                "suppress-bounce"
            }
            .into();
            out["delivery-status"] = json!({
                "code": 605,
                "message": "",
                "description": format!("Not delivering to a suppressed address ({why})"),
                "attempt-no": 0,
            });
        }
        EventDetails::Opened(i) | EventDetails::Clicked(i) | EventDetails::Unsubscribed(i) => {
            if let Some(ip) = &i.ip {
                out["ip"] = ip.clone().into();
            }
            if let Some(url) = &i.url {
                out["url"] = url.clone().into();
            }
            if let Some(c) = &i.client {
                out["client-info"] = json!({"client-type": c});
            }
        }
        EventDetails::Complained(_) | EventDetails::Accepted(_) | EventDetails::Suspended(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_splits_into_its_codes() {
        assert_eq!(
            reply_parts("550 5.1.1 No such user"),
            (Some(550), Some("5.1.1"), "No such user")
        );
        assert_eq!(reply_parts("250 OK"), (Some(250), None, "OK"));
        assert_eq!(reply_parts("weird"), (None, None, "weird"));
    }
}
