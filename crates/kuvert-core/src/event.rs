//! What happens to a message is an appended event; everything else reads events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::account::string_enum;
use crate::tracking::ClientClass;

string_enum! {
    EventType {
        Accepted = "accepted",
        Delivered = "delivered",
        Deferred = "deferred",
        Bounced = "bounced",
        Failed = "failed",
        Dropped = "dropped",
        Opened = "opened",
        Clicked = "clicked",
        Unsubscribed = "unsubscribed",
        Complained = "complained",
        /// The account's sending paused on its bounce or complaint rate (no message).
        Suspended = "suspended",
    }
}

string_enum! {
    /// Where one recipient of a message stands.
    RecipientStatus {
        Queued = "queued",
        Deferred = "deferred",
        Delivered = "delivered",
        Bounced = "bounced",
        Failed = "failed",
        Dropped = "dropped",
        /// Waiting, without a next attempt, while its account is restricted.
        Held = "held",
    }
}

string_enum! {
    RecipientKind { To = "to", Cc = "cc", Bcc = "bcc" }
}

string_enum! {
    /// Why an address is on an account's suppression list.
    SuppressionReason { Bounce = "bounce", Unsubscribe = "unsubscribe", Complaint = "complaint", Manual = "manual", Erased = "erased" }
}

string_enum! {
    /// What a permanent refusal means for the address: `hard`, it does not exist (it is
    /// suppressed); `policy`, the receiving side refused this sender or content (the sender
    /// must act, the address stays); `other`, anything else (mailbox full, too large, ...).
    BounceClass { Hard = "hard", Policy = "policy", Other = "other" }
}

impl BounceClass {
    /// Only addresses that do not exist go on the suppression list.
    pub fn suppresses(self) -> bool {
        self == Self::Hard
    }
}

string_enum! {
    /// How a report reached Kuvert as mail: a delivery status notification or a feedback
    /// report (ARF).
    ReportSource { Dsn = "dsn", Arf = "arf" }
}

/// What an event says beyond its type, recipient and time: the `data` of an event in the
/// events API, in webhooks and in the live log. Each variant belongs to one event type and
/// is built where the event happens; it is serialised here, once, as a JSON object with the
/// fields that are set.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventDetails {
    Accepted(Accepted),
    Dropped(Dropped),
    Delivered(Delivery),
    Deferred(Deferral),
    Bounced(Bounce),
    Failed(Failure),
    Opened(Interaction),
    Clicked(Interaction),
    Unsubscribed(Interaction),
    Complained(Complaint),
    Suspended(crate::reputation::Pause),
}

/// `accepted`: nothing more than the event itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {}

/// `dropped`: the recipient was not queued.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Dropped {
    /// Why, such as `suppressed: bounce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `delivered`: the receiving server took the message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Delivery {
    /// Which attempt this was, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The host delivered to (`capture` when capture mode kept the message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mx: Option<String>,
    /// That server's reply to the message, as `250 2.0.0 text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The TLS version of the connection, when it had TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// The address of that server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// `deferred`: this attempt failed for now; another follows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Deferral {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// When the next attempt is due (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The receiving server's reply, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// What failed before any reply: DNS, the connection, TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The host tried, when one was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mx: Option<String>,
}

/// `bounced`: the address refused the message for good, at delivery or later by a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Bounce {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub class: BounceClass,
    /// The enhanced status code, such as `5.1.1`.
    pub code: String,
    /// The refusal, as `550 5.1.1 text`.
    pub reply: String,
    /// The host that refused, at delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx: Option<String>,
    /// Set when a report that came as mail said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ReportSource>,
    /// The server that wrote the report, when it named itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_mta: Option<String>,
}

string_enum! {
    /// Why Kuvert gave up on a recipient without a refusal from its server.
    FailureReason {
        /// Not delivered within the maximum age of a message.
        Expired = "expired",
        /// The sending domain's DKIM key could not be read: nothing leaves unsigned.
        DkimKey = "dkim_key",
        /// Signing did not finish.
        Dkim = "dkim",
        /// The message requires TLS and the receiving server does not offer it.
        TlsRequired = "tls_required",
        /// A tracked copy could not be built (older versions only: events recorded then
        /// still read back).
        Template = "template",
    }
}

/// `failed`: Kuvert gave up on the recipient without a refusal from its server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Failure {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub reason: FailureReason,
    /// The same in words.
    pub detail: String,
    /// For `expired`: what the last attempt failed on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    /// For `expired`: the last reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mx: Option<String>,
}

/// `opened`, `clicked`, `unsubscribed`: what the recipient's client showed of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Interaction {
    /// The class of the client, never its user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientClass>,
    /// The client's address, cut to /24 or /48 unless the account keeps it whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// For `clicked`: the link's original URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `complained`: the recipient reported the message (a feedback report).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Complaint {
    /// `abuse`, `fraud`, ... as the report says.
    pub feedback_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ReportSource>,
    /// The software that sent the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl EventDetails {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Accepted(_) => EventType::Accepted,
            Self::Dropped(_) => EventType::Dropped,
            Self::Delivered(_) => EventType::Delivered,
            Self::Deferred(_) => EventType::Deferred,
            Self::Bounced(_) => EventType::Bounced,
            Self::Failed(_) => EventType::Failed,
            Self::Opened(_) => EventType::Opened,
            Self::Clicked(_) => EventType::Clicked,
            Self::Unsubscribed(_) => EventType::Unsubscribed,
            Self::Complained(_) => EventType::Complained,
            Self::Suspended(_) => EventType::Suspended,
        }
    }

    /// The number of the delivery attempt the event ends, for the events of attempts.
    pub fn set_attempt(&mut self, n: u32) {
        match self {
            Self::Delivered(d) => d.attempt = Some(n),
            Self::Deferred(d) => d.attempt = Some(n),
            Self::Bounced(b) => b.attempt = Some(n),
            Self::Failed(f) => f.attempt = Some(n),
            _ => {}
        }
    }

    /// The JSON object stored and shown.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// The JSON as stored (sealed).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("event details serialise")
    }

    /// The details of an event of type `t` as stored. Fields unknown to this version are
    /// ignored; details that do not fit `t` are an error.
    pub fn from_json(t: EventType, data: Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value as of;
        let data = if data.is_null() {
            Value::Object(Map::new())
        } else {
            data
        };
        Ok(match t {
            EventType::Accepted => Self::Accepted(Accepted {}),
            EventType::Dropped => Self::Dropped(of(data)?),
            EventType::Delivered => Self::Delivered(of(data)?),
            EventType::Deferred => Self::Deferred(of(data)?),
            EventType::Bounced => Self::Bounced(of(data)?),
            EventType::Failed => Self::Failed(of(data)?),
            EventType::Opened => Self::Opened(of(data)?),
            EventType::Clicked => Self::Clicked(of(data)?),
            EventType::Unsubscribed => Self::Unsubscribed(of(data)?),
            EventType::Complained => Self::Complained(of(data)?),
            EventType::Suspended => Self::Suspended(of(data)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_serialise_once_and_read_back_by_type() {
        let cases = [
            EventDetails::Accepted(Accepted {}),
            EventDetails::Dropped(Dropped {
                reason: Some("suppressed: bounce".into()),
            }),
            EventDetails::Delivered(Delivery {
                attempt: Some(1),
                mx: Some("mx.example".into()),
                reply: Some("250 2.0.0 ok".into()),
                tls: None,
                ip: Some("192.0.2.1".into()),
            }),
            EventDetails::Bounced(Bounce {
                attempt: None,
                class: BounceClass::Hard,
                code: "5.1.1".into(),
                reply: "550 5.1.1 no such user".into(),
                mx: None,
                source: Some(ReportSource::Dsn),
                reporting_mta: None,
            }),
            EventDetails::Clicked(Interaction {
                client: Some(ClientClass::Desktop),
                ip: None,
                url: Some("https://a.example/".into()),
            }),
        ];
        for d in cases {
            let json = d.to_json();
            let back = EventDetails::from_json(d.event_type(), Value::Object(json.clone()))
                .expect("reads back");
            assert_eq!(back, d, "{json:?}");
        }
        let mut bounce = EventDetails::Bounced(Bounce {
            attempt: None,
            class: BounceClass::Policy,
            code: "5.7.1".into(),
            reply: "550 5.7.1 spam".into(),
            mx: None,
            source: None,
            reporting_mta: None,
        });
        bounce.set_attempt(3);
        assert_eq!(
            Value::Object(bounce.to_json()),
            serde_json::json!({"attempt": 3, "class": "policy", "code": "5.7.1", "reply": "550 5.7.1 spam"})
        );
        assert_eq!(EventDetails::Accepted(Accepted {}).to_json(), Map::new());
        assert!(
            EventDetails::from_json(EventType::Bounced, serde_json::json!({"code": 1})).is_err()
        );
        // Events recorded by earlier versions read back as they were written.
        for (t, old) in [
            (
                EventType::Failed,
                serde_json::json!({"attempt": 1, "reason": "template", "detail": "bad template"}),
            ),
            (
                EventType::Opened,
                serde_json::json!({"client": "mobile", "ip": "192.0.2.0"}),
            ),
        ] {
            let read = EventDetails::from_json(t, old.clone()).expect("an old event reads");
            assert_eq!(Value::Object(read.to_json()), old);
        }
    }
}
