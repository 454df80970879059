//! Contacts, lists and consent: the states a contact and a subscription can be in, how
//! consent was given, the typed properties an account defines, and what an import does.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Timestamp;
use crate::account::string_enum;

string_enum! {
    /// A contact's standing with the account. `erased` is never stored on a contact: an
    /// erased contact is gone, and only a keyed hash of its address stays, on the
    /// suppression list, so that it is not mailed or imported again.
    ContactStatus { Active = "active", Unsubscribed = "unsubscribed", Bounced = "bounced", Complained = "complained", Erased = "erased" }
}

impl ContactStatus {
    /// Whether mail may go to a contact in this state.
    pub fn mailable(self) -> bool {
        self == Self::Active
    }
}

string_enum! {
    /// A contact's membership of one list. `pending` waits for the click of a double opt-in.
    SubscriptionStatus { Subscribed = "subscribed", Unsubscribed = "unsubscribed", Pending = "pending" }
}

string_enum! {
    /// How consent was given or withdrawn.
    ConsentMethod { Api = "api", Import = "import", Form = "form", DoubleOptIn = "double_opt_in", Unsubscribe = "unsubscribe" }
}

string_enum! {
    /// Whether a consent record gives consent or withdraws it.
    ConsentAction { Given = "given", Withdrawn = "withdrawn" }
}

string_enum! {
    /// The type of a property an account defines for its contacts.
    PropertyKind { String = "string", Integer = "integer", Decimal = "decimal", Boolean = "boolean", DateTime = "datetime" }
}

string_enum! {
    /// What an import does with each row. `add`: new contacts are created and subscribed,
    /// existing ones subscribed but left as they are; `update`: the same, and existing
    /// contacts take the row's name and properties; `unsubscribe`: the row's contacts leave
    /// the list (consent withdrawn), unknown addresses are skipped.
    ImportMode { Add = "add", Update = "update", Unsubscribe = "unsubscribe" }
}

string_enum! {
    /// Where an import is. `uploading`: its file is still arriving. `review`: sensitive-looking columns were found; it waits for the
    /// account to confirm, drop them, or cancel.
    ImportState { Uploading = "uploading", Scanning = "scanning", Review = "review", Running = "running", Done = "done", Failed = "failed", Cancelled = "cancelled" }
}

impl ImportState {
    pub fn finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// At most this many properties an account defines: each is a column of imports and
/// exports and a row per contact in the segment index.
pub const MAX_PROPERTIES: usize = 100;
/// A property's text value at most this long (bytes), a contact's name too.
pub const MAX_VALUE_LEN: usize = 1_000;

/// Whether `name` may name a property: 1–64 of `a-z`, `0-9` and `_`, starting with a letter,
/// and none of the names a contact has itself.
pub fn property_name_ok(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "email",
        "address",
        "name",
        "status",
        "id",
        "created_at",
        "updated_at",
    ];
    let b = name.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !RESERVED.contains(&name)
}

/// A property's value, checked against its kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PropertyValue {
    String(String),
    Integer(i64),
    Decimal(f64),
    Boolean(bool),
    /// Written as RFC 3339.
    DateTime(#[serde(serialize_with = "rfc3339")] Timestamp),
}

fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

/// Why a value does not fit its property.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}")]
pub struct ValueError {
    pub expected: &'static str,
}

impl PropertyValue {
    /// Reads a value as a CSV cell holds it. An empty cell is no value.
    pub fn parse_text(kind: PropertyKind, text: &str) -> Result<Option<Self>, ValueError> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let err = |expected| ValueError { expected };
        Ok(Some(match kind {
            PropertyKind::String => {
                if t.len() > MAX_VALUE_LEN {
                    return Err(err("text of at most 1,000 bytes"));
                }
                Self::String(t.to_owned())
            }
            PropertyKind::Integer => Self::Integer(t.parse().map_err(|_| err("an integer"))?),
            PropertyKind::Decimal => {
                let v: f64 = t.parse().map_err(|_| err("a decimal number"))?;
                if !v.is_finite() {
                    return Err(err("a finite decimal number"));
                }
                Self::Decimal(v)
            }
            PropertyKind::Boolean => Self::Boolean(match t.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" => false,
                _ => return Err(err("true or false")),
            }),
            PropertyKind::DateTime => Self::DateTime(
                Timestamp::parse_rfc3339(t)
                    .or_else(|| {
                        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                            .ok()
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|d| Timestamp(d.and_utc().timestamp_millis()))
                    })
                    .ok_or_else(|| err("an RFC 3339 date-time or a YYYY-MM-DD date"))?,
            ),
        }))
    }

    /// Reads a value as the API's JSON carries it (a string is read as a CSV cell would be
    /// for the kinds that are not text, so `"42"` is an integer too). `null` is no value.
    pub fn from_json(
        kind: PropertyKind,
        v: &serde_json::Value,
    ) -> Result<Option<Self>, ValueError> {
        use serde_json::Value as J;
        let err = |expected| ValueError { expected };
        match (kind, v) {
            (_, J::Null) => Ok(None),
            (_, J::String(s)) => Self::parse_text(kind, s),
            (PropertyKind::Integer, J::Number(n)) => n
                .as_i64()
                .map(|i| Some(Self::Integer(i)))
                .ok_or(err("an integer")),
            (PropertyKind::Decimal, J::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Some(Self::Decimal(f)))
                .ok_or(err("a decimal number")),
            (PropertyKind::Boolean, J::Bool(b)) => Ok(Some(Self::Boolean(*b))),
            (PropertyKind::String, _) => Err(err("a string")),
            (PropertyKind::Integer, _) => Err(err("an integer")),
            (PropertyKind::Decimal, _) => Err(err("a decimal number")),
            (PropertyKind::Boolean, _) => Err(err("true or false")),
            (PropertyKind::DateTime, _) => Err(err("an RFC 3339 date-time")),
        }
    }

    /// The number a segment compares, for every kind but text (booleans as 0 and 1,
    /// date-times as milliseconds).
    pub fn number(&self) -> Option<f64> {
        match self {
            Self::String(_) => None,
            Self::Integer(i) => Some(*i as f64),
            Self::Decimal(f) => Some(*f),
            Self::Boolean(b) => Some(f64::from(u8::from(*b))),
            Self::DateTime(t) => Some(t.millis() as f64),
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// As a CSV cell writes it.
    pub fn to_text(&self) -> String {
        match self {
            Self::String(s) => s.clone(),
            Self::Integer(i) => i.to_string(),
            Self::Decimal(f) => f.to_string(),
            Self::Boolean(b) => b.to_string(),
            Self::DateTime(t) => t.to_rfc3339(),
        }
    }
}

/// A contact's properties by name, in name order (exports list them so).
pub type Properties = BTreeMap<String, PropertyValue>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names() {
        assert!(property_name_ok("city"));
        assert!(property_name_ok("plan_2"));
        for bad in [
            "",
            "City",
            "2nd",
            "a-b",
            "email",
            "name",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!property_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn values_by_kind() {
        use PropertyKind as K;
        assert_eq!(
            PropertyValue::parse_text(K::Integer, " 42 "),
            Ok(Some(PropertyValue::Integer(42)))
        );
        assert_eq!(PropertyValue::parse_text(K::Integer, ""), Ok(None));
        assert!(PropertyValue::parse_text(K::Integer, "4.2").is_err());
        assert!(PropertyValue::parse_text(K::Decimal, "NaN").is_err());
        assert!(PropertyValue::parse_text(K::Decimal, "inf").is_err());
        assert_eq!(
            PropertyValue::parse_text(K::Boolean, "Yes"),
            Ok(Some(PropertyValue::Boolean(true)))
        );
        assert!(PropertyValue::parse_text(K::Boolean, "maybe").is_err());
        let day = PropertyValue::parse_text(K::DateTime, "2026-01-02").expect("test value");
        assert_eq!(
            day,
            PropertyValue::parse_text(K::DateTime, "2026-01-02T00:00:00Z").expect("test value")
        );
        assert!(PropertyValue::parse_text(K::DateTime, "02/01/2026").is_err());
        assert!(PropertyValue::parse_text(K::String, &"x".repeat(1_001)).is_err());
        assert_eq!(
            PropertyValue::from_json(K::Integer, &serde_json::json!("7")),
            Ok(Some(PropertyValue::Integer(7)))
        );
        assert!(PropertyValue::from_json(K::String, &serde_json::json!(7)).is_err());
        assert!(PropertyValue::from_json(K::Integer, &serde_json::json!(1.5)).is_err());
        assert_eq!(PropertyValue::Boolean(true).number(), Some(1.0));
    }
}
