//! Versions of the privacy policy and the terms: a new version is published at least 30 days
//! before it takes effect, and every account owner is told.

use crate::Timestamp;
use crate::account::string_enum;

string_enum! {
    /// Which document a version belongs to.
    PolicyDocument { Privacy = "privacy", Terms = "terms" }
}

/// Days between publication and effect, at least.
pub const POLICY_NOTICE_DAYS: i64 = 30;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    pub document: PolicyDocument,
    pub version: String,
    pub effective_at: Timestamp,
    pub published_at: Timestamp,
    pub url: Option<String>,
}

/// Why a version cannot be published.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a new version takes effect {POLICY_NOTICE_DAYS} days after it is published at the earliest ({earliest})"
)]
pub struct TooSoon {
    pub earliest: Timestamp,
}

/// Checks the notice period.
pub fn check_effective(effective_at: Timestamp, now: Timestamp) -> Result<(), TooSoon> {
    let earliest = Timestamp(now.millis() + POLICY_NOTICE_DAYS * 86_400_000);
    if effective_at.millis() < earliest.millis() {
        return Err(TooSoon { earliest });
    }
    Ok(())
}

/// The version of `document` in force at `now` and the next one pending, if any.
pub fn standing(
    versions: &[PolicyVersion],
    document: PolicyDocument,
    now: Timestamp,
) -> (Option<&PolicyVersion>, Option<&PolicyVersion>) {
    let of = || versions.iter().filter(move |v| v.document == document);
    let in_force = of()
        .filter(|v| v.effective_at.millis() <= now.millis())
        .max_by_key(|v| v.effective_at.millis());
    let pending = of()
        .filter(|v| v.effective_at.millis() > now.millis())
        .min_by_key(|v| v.effective_at.millis());
    (in_force, pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn v(version: &str, effective_days: i64) -> PolicyVersion {
        PolicyVersion {
            document: PolicyDocument::Privacy,
            version: version.into(),
            effective_at: Timestamp(effective_days * DAY),
            published_at: Timestamp(0),
            url: None,
        }
    }

    #[test]
    fn the_latest_effective_is_in_force_and_the_next_is_pending() {
        let all = [v("1", 0), v("2", 40), v("3", 80)];
        let (now, next) = standing(&all, PolicyDocument::Privacy, Timestamp(50 * DAY));
        assert_eq!(
            (
                now.map(|v| v.version.as_str()),
                next.map(|v| v.version.as_str())
            ),
            (Some("2"), Some("3"))
        );
        assert_eq!(
            standing(&all, PolicyDocument::Terms, Timestamp(0)),
            (None, None)
        );
    }

    #[test]
    fn thirty_days_notice() {
        assert!(check_effective(Timestamp(29 * DAY), Timestamp(0)).is_err());
        assert!(check_effective(Timestamp(30 * DAY), Timestamp(0)).is_ok());
    }
}
