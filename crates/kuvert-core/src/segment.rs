//! Segments: saved filters over a contact's properties, list memberships and engagement. A
//! filter is read from JSON, checked against the account's properties here, and turned into
//! SQL by the store; its size is bounded so that no filter costs more than a few index scans
//! per condition.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::contact::{ContactStatus, PropertyKind, PropertyValue, SubscriptionStatus};

/// At most this many conditions in one filter, and this deep.
pub const MAX_CONDITIONS: usize = 20;
pub const MAX_DEPTH: usize = 4;
/// Engagement windows reach back at most ten years.
pub const MAX_DAYS: u32 = 3_660;

/// A filter: conditions joined by `all`, `any` and `not`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Filter {
    /// Every one holds.
    #[schema(no_recursion)]
    All(Vec<Filter>),
    /// At least one holds.
    #[schema(no_recursion)]
    Any(Vec<Filter>),
    /// It does not hold.
    #[schema(no_recursion)]
    Not(Box<Filter>),
    /// A property compared with a value (text properties: `eq` and `ne` only).
    Property(PropertyCondition),
    /// Member of a list (by id), subscribed unless another status is named.
    List(ListCondition),
    /// The contact's status.
    Status(ContactStatus),
    /// Engagement within the last `days` days (or never, with `never`).
    Engagement(EngagementCondition),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyCondition {
    pub name: String,
    pub op: Op,
    /// Absent for `exists` and `missing`.
    #[serde(default)]
    pub value: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListCondition {
    pub list: String,
    #[serde(default)]
    pub status: Option<SubscriptionStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngagementCondition {
    pub kind: Engagement,
    /// Within the last this many days; absent with `never`.
    #[serde(default)]
    pub days: Option<u32>,
    /// True: the contact has never done it.
    #[serde(default)]
    pub never: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    Exists,
    Missing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Engagement {
    /// Was sent a message.
    Sent,
    Opened,
    Clicked,
    /// A temporary failure (a soft bounce).
    BouncedSoft,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("a filter has at most {MAX_CONDITIONS} conditions")]
    TooMany,
    #[error("a filter is at most {MAX_DEPTH} levels deep")]
    TooDeep,
    #[error("`all` and `any` need at least one condition")]
    Empty,
    #[error("no property {0:?} is defined")]
    UnknownProperty(String),
    #[error("property {name:?}: {reason}")]
    Value { name: String, reason: String },
    #[error("engagement: {0}")]
    Engagement(&'static str),
}

/// A property condition checked against its kind, as the store compares it.
#[derive(Clone, Debug, PartialEq)]
pub enum Compare {
    Exists,
    Missing,
    /// A text property equal (or not) to this text: compared by keyed hash.
    Text {
        eq: bool,
        value: String,
    },
    Number {
        op: Op,
        value: f64,
    },
}

impl Filter {
    /// Checks the filter's size and every property against the account's definitions.
    pub fn check(&self, properties: &HashMap<String, PropertyKind>) -> Result<(), FilterError> {
        let mut count = 0;
        self.walk(1, &mut count, properties)
    }

    fn walk(
        &self,
        depth: usize,
        count: &mut usize,
        props: &HashMap<String, PropertyKind>,
    ) -> Result<(), FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::TooDeep);
        }
        *count += 1;
        if *count > MAX_CONDITIONS {
            return Err(FilterError::TooMany);
        }
        match self {
            Self::All(v) | Self::Any(v) => {
                if v.is_empty() {
                    return Err(FilterError::Empty);
                }
                v.iter().try_for_each(|f| f.walk(depth + 1, count, props))
            }
            Self::Not(f) => f.walk(depth + 1, count, props),
            Self::Property(p) => p.compare(props).map(|_| ()),
            Self::Engagement(e) => e.check(),
            Self::List(_) | Self::Status(_) => Ok(()),
        }
    }
}

impl PropertyCondition {
    /// What the store compares, given the property's kind.
    pub fn compare(&self, props: &HashMap<String, PropertyKind>) -> Result<Compare, FilterError> {
        let kind = *props
            .get(&self.name)
            .ok_or_else(|| FilterError::UnknownProperty(self.name.clone()))?;
        let bad = |reason: String| FilterError::Value {
            name: self.name.clone(),
            reason,
        };
        match self.op {
            Op::Exists => return Ok(Compare::Exists),
            Op::Missing => return Ok(Compare::Missing),
            _ => {}
        }
        let value = PropertyValue::from_json(kind, &self.value)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("a value is needed".into()))?;
        match (value, self.op) {
            (PropertyValue::String(s), Op::Eq | Op::Ne) => Ok(Compare::Text {
                eq: self.op == Op::Eq,
                value: s,
            }),
            (PropertyValue::String(_), _) => Err(bad("text is compared with eq or ne".into())),
            (v, op) => Ok(Compare::Number {
                op,
                value: v.number().unwrap_or_default(),
            }),
        }
    }
}

impl EngagementCondition {
    fn check(&self) -> Result<(), FilterError> {
        match (self.days, self.never) {
            (Some(_), true) => Err(FilterError::Engagement("`days` or `never`, not both")),
            (None, false) => Err(FilterError::Engagement("`days` or `never` is needed")),
            (Some(d), false) if d == 0 || d > MAX_DAYS => {
                Err(FilterError::Engagement("`days` is 1 to 3660"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props() -> HashMap<String, PropertyKind> {
        HashMap::from([
            ("age".to_owned(), PropertyKind::Integer),
            ("city".to_owned(), PropertyKind::String),
        ])
    }

    fn parse(v: serde_json::Value) -> Result<(), FilterError> {
        serde_json::from_value::<Filter>(v)
            .expect("parses")
            .check(&props())
    }

    #[test]
    fn reads_and_checks() {
        parse(json!({"all": [
            {"property": {"name": "age", "op": "gte", "value": 30}},
            {"property": {"name": "city", "op": "eq", "value": "Berlin"}},
            {"not": {"engagement": {"kind": "clicked", "never": true}}},
            {"list": {"list": "lst_x"}},
            {"status": "active"}
        ]}))
        .expect("valid");
        assert_eq!(
            parse(json!({"property": {"name": "nope", "op": "exists"}})),
            Err(FilterError::UnknownProperty("nope".into()))
        );
        assert!(matches!(
            parse(json!({"property": {"name": "city", "op": "gt", "value": "a"}})),
            Err(FilterError::Value { .. })
        ));
        assert!(matches!(
            parse(json!({"property": {"name": "age", "op": "eq", "value": "old"}})),
            Err(FilterError::Value { .. })
        ));
        assert_eq!(parse(json!({"all": []})), Err(FilterError::Empty));
        assert!(parse(json!({"engagement": {"kind": "opened"}})).is_err());
        assert!(parse(json!({"engagement": {"kind": "opened", "days": 0}})).is_err());
        assert!(serde_json::from_value::<Filter>(json!({"status": "x"})).is_err());
        assert!(serde_json::from_value::<Filter>(json!({"all": [], "any": []})).is_err());
    }

    #[test]
    fn bounded() {
        let leaf = json!({"status": "active"});
        let wide = json!({"any": vec![leaf.clone(); MAX_CONDITIONS]});
        assert_eq!(parse(wide), Err(FilterError::TooMany));
        let mut deep = leaf;
        for _ in 0..MAX_DEPTH {
            deep = json!({"not": deep});
        }
        assert_eq!(parse(deep), Err(FilterError::TooDeep));
    }
}
