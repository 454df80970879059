//! Time is injected: retention, retries and deadlines are tested by moving a [`ManualClock`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC. Stored as a plain integer in both databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
    pub const fn plus_days(self, days: i64) -> Self {
        self.plus_millis(days.saturating_mul(86_400_000))
    }
    /// Parses an RFC 3339 date-time such as `2026-11-23T10:00:00Z`.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| Self(d.with_timezone(&Utc).timestamp_millis()))
    }
    /// Parses a date as mail headers write it (`Fri, 14 Oct 2026 23:10:10 -0000`), also with
    /// the zone written `UTC`, as Mailgun's clients send it.
    pub fn parse_rfc2822(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = match s.strip_suffix(" UTC") {
            Some(rest) => std::borrow::Cow::Owned(format!("{rest} +0000")),
            None => std::borrow::Cow::Borrowed(s),
        };
        DateTime::parse_from_rfc2822(&s)
            .ok()
            .map(|d| Self(d.with_timezone(&Utc).timestamp_millis()))
    }
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
    /// As mail headers write dates (RFC 5322 §3.3).
    pub fn to_rfc2822(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc2822()
    }
    /// The first millisecond of this timestamp's calendar month (UTC): quotas are monthly.
    pub fn month_start(self) -> Self {
        use chrono::Datelike;
        let d = DateTime::<Utc>::from_timestamp_millis(self.0).unwrap_or_default();
        let first = d
            .date_naive()
            .with_day(1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc().timestamp_millis())
            .unwrap_or(self.0);
        Self(first)
    }

    /// The same moment `months` calendar months earlier (UTC), the day clamped to the
    /// shorter month (31 May less 3 months is 28 or 29 February): retention is in months.
    pub fn months_before(self, months: u32) -> Self {
        let d = DateTime::<Utc>::from_timestamp_millis(self.0).unwrap_or_default();
        d.checked_sub_months(chrono::Months::new(months))
            .map_or(Self(i64::MIN), |d| Self(d.timestamp_millis()))
    }

    /// The same moment `months` calendar months later, the day clamped likewise.
    pub fn months_after(self, months: u32) -> Self {
        let d = DateTime::<Utc>::from_timestamp_millis(self.0).unwrap_or_default();
        d.checked_add_months(chrono::Months::new(months))
            .map_or(Self(i64::MAX), |d| Self(d.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }
    pub fn advance_millis(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn advance_days(&self, days: i64) {
        self.advance_millis(days * 86_400_000);
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_dates_parse_in_their_zones() {
        let utc = Timestamp::parse_rfc3339("2026-10-14T23:10:10Z");
        for s in [
            "Wed, 14 Oct 2026 23:10:10 -0000",
            "Wed, 14 Oct 2026 23:10:10 GMT",
            "Wed, 14 Oct 2026 23:10:10 UTC",
            "Thu, 15 Oct 2026 01:10:10 +0200",
        ] {
            assert_eq!(Timestamp::parse_rfc2822(s), utc, "{s}");
        }
        assert_eq!(Timestamp::parse_rfc2822("2026-10-14T23:10:10Z"), None);
    }

    #[test]
    fn months_before_clamps_the_day() {
        let at = |s: &str| {
            Timestamp(
                DateTime::parse_from_rfc3339(s)
                    .expect("date")
                    .timestamp_millis(),
            )
        };
        assert_eq!(
            at("2026-05-31T10:00:00Z").months_before(3),
            at("2026-02-28T10:00:00Z")
        );
        assert_eq!(
            at("2027-01-15T00:00:00Z").months_before(13),
            at("2025-12-15T00:00:00Z")
        );
    }

    #[test]
    fn rfc3339_round_trip_and_month_start() {
        let t = Timestamp::parse_rfc3339("2026-11-23T10:11:12.345+01:00").expect("parses");
        assert_eq!(t.to_rfc3339(), "2026-11-23T09:11:12.345Z");
        assert_eq!(t.month_start().to_rfc3339(), "2026-11-01T00:00:00.000Z");
        assert!(Timestamp::parse_rfc3339("tomorrow").is_none());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(1000));
        let c2 = c.clone();
        c.advance_days(1);
        assert_eq!(c2.now(), Timestamp(1000 + 86_400_000));
    }
}
