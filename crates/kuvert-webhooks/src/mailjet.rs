//! Kuvert's events in Mailjet's shape: what an endpoint registered through Mailjet's
//! `eventcallbackurl` receives, so that receivers written for Mailjet's event API work
//! unchanged. A Mailjet message is one recipient's copy: `MessageID` and `Message_GUID` are
//! Kuvert's recipient id; `CustomID` and `Payload` are the message's metadata of those names
//! (as Mailjet's send API sets them).

use kuvert_core::event::{BounceClass, EventDetails, EventType};
use kuvert_store::{EventRecord, MessageView};
use serde_json::{Value, json};

/// Mailjet's name of an event type, for those Mailjet calls back about.
pub fn event_name(t: EventType) -> Option<&'static str> {
    Some(match t {
        EventType::Delivered => "sent",
        EventType::Opened => "open",
        EventType::Clicked => "click",
        EventType::Bounced | EventType::Failed => "bounce",
        EventType::Dropped => "blocked",
        EventType::Complained => "spam",
        EventType::Unsubscribed => "unsub",
        EventType::Accepted | EventType::Deferred | EventType::Suspended => return None,
    })
}

/// The Kuvert event types behind a Mailjet name.
pub fn event_types(name: &str) -> Option<&'static [EventType]> {
    Some(match name {
        "sent" => &[EventType::Delivered],
        "open" => &[EventType::Opened],
        "click" => &[EventType::Clicked],
        "bounce" => &[EventType::Bounced, EventType::Failed],
        "blocked" => &[EventType::Dropped],
        "spam" => &[EventType::Complained],
        "unsub" => &[EventType::Unsubscribed],
        _ => return None,
    })
}

/// One of Kuvert's events as Mailjet posts it; `None` for a type Mailjet does not call back
/// about.
pub fn event(e: &EventRecord, message: Option<&MessageView>) -> Option<Value> {
    let name = event_name(e.event_type)?;
    let copy = e
        .recipient_id
        .as_ref()
        .map_or_else(String::new, ToString::to_string);
    let meta = |k: &str| {
        message
            .and_then(|m| m.metadata.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut out = json!({
        "event": name,
        "time": e.created_at.millis() / 1000,
        "MessageID": copy,
        "Message_GUID": copy,
        "mj_message_id": copy,
        "email": e.recipient.clone().unwrap_or_default(),
        "mj_campaign_id": 0,
        "mj_contact_id": 0,
        "customcampaign": e.tags.first().cloned().unwrap_or_default(),
        "CustomID": meta("CustomID"),
        "Payload": meta("EventPayload"),
    });
    match &e.details {
        EventDetails::Delivered(d) => {
            out["smtp_reply"] = d.reply.clone().unwrap_or_default().into();
        }
        EventDetails::Bounced(b) => {
            out["blocked"] = false.into();
            out["hard_bounce"] = (b.class == BounceClass::Hard).into();
            out["error_related_to"] = "recipient".into();
            out["error"] = if b.class == BounceClass::Hard {
                "user unknown"
            } else {
                "policy issue"
            }
            .into();
            out["comment"] = b.reply.clone().into();
        }
        EventDetails::Failed(f) => {
            out["blocked"] = false.into();
            out["hard_bounce"] = true.into();
            out["error_related_to"] = "system".into();
            out["error"] = "connection issue".into();
            out["comment"] = f.detail.clone().into();
        }
        EventDetails::Dropped(d) => {
            out["error_related_to"] = "recipient".into();
            out["error"] = if d.reason.as_deref().is_some_and(|r| r.contains("complain")) {
                "spam reporter"
            } else {
                "preblocked"
            }
            .into();
        }
        EventDetails::Opened(i) | EventDetails::Clicked(i) | EventDetails::Unsubscribed(i) => {
            // Kuvert keeps no user agent or location of a reader: only the client's class.
            out["ip"] = i.ip.clone().unwrap_or_default().into();
            out["geo"] = "".into();
            out["agent"] = "".into();
            if let Some(url) = &i.url {
                out["url"] = url.clone().into();
            }
            if e.event_type == EventType::Unsubscribed {
                out["mj_list_id"] = 0.into();
            }
        }
        EventDetails::Complained(_) => {
            out["source"] = "FBL".into();
        }
        EventDetails::Accepted(_) | EventDetails::Deferred(_) | EventDetails::Suspended(_) => {}
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_maps_back_to_its_types() {
        for t in [
            EventType::Delivered,
            EventType::Opened,
            EventType::Clicked,
            EventType::Bounced,
            EventType::Failed,
            EventType::Dropped,
            EventType::Complained,
            EventType::Unsubscribed,
        ] {
            let name = event_name(t).expect("a name");
            assert!(event_types(name).expect("types").contains(&t), "{t:?}");
        }
        assert_eq!(event_name(EventType::Accepted), None);
        assert_eq!(event_types("deferred"), None);
    }
}
