//! How many recipients an account may send to: per calendar month (the plan's quota), per UTC
//! day and per hour, and in a warm-up while it is new. Providers judge a new sender by its
//! first volume: a sudden flood from an unknown sender looks like spam, so a new account's
//! daily limit starts low and doubles each UTC day after (a pause, when lifted, starts it
//! again: the rise is earned by days without one, not by volume sent).

use crate::Timestamp;
use crate::account::{PlanLimits, string_enum};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

string_enum! {
    /// A quota's period: calendar periods in UTC, so that each resets at a moment anyone can
    /// name.
    QuotaPeriod { Hour = "hour", Day = "day", Month = "month" }
}

impl QuotaPeriod {
    /// The start of the period holding `at`.
    pub fn start(self, at: Timestamp) -> Timestamp {
        match self {
            Self::Hour => Timestamp(at.0.div_euclid(HOUR_MS) * HOUR_MS),
            Self::Day => Timestamp(at.0.div_euclid(DAY_MS) * DAY_MS),
            Self::Month => at.month_start(),
        }
    }

    /// When the period holding `at` ends and its count starts again.
    pub fn resets_at(self, at: Timestamp) -> Timestamp {
        match self {
            Self::Hour => Timestamp(self.start(at).0 + HOUR_MS),
            Self::Day => Timestamp(self.start(at).0 + DAY_MS),
            Self::Month => at.month_start().months_after(1),
        }
    }
}

/// Recipients an account has sent to in the periods holding one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub month: u64,
    pub day: u64,
    pub hour: u64,
}

impl Usage {
    pub fn of(&self, period: QuotaPeriod) -> u64 {
        match period {
            QuotaPeriod::Month => self.month,
            QuotaPeriod::Day => self.day,
            QuotaPeriod::Hour => self.hour,
        }
    }

    /// The first of `quotas` that `queued` more recipients would pass, as its refusal at
    /// `at`.
    pub fn refusal(&self, quotas: &[Quota], queued: u64, at: Timestamp) -> Option<QuotaExceeded> {
        quotas
            .iter()
            .find(|q| self.of(q.period) + queued > q.limit)
            .map(|q| QuotaExceeded {
                // Too many for any one of the limits: refused for good, whichever refuses.
                never: quotas.iter().any(|q| queued > q.cap),
                ..q.refuse(self.of(q.period), at)
            })
    }
}

/// A limit in force on a message: at most `limit` recipients in its period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub period: QuotaPeriod,
    pub limit: u64,
    /// The most the limit will ever be (the plan's, where a warm-up lowers it for now): a
    /// message with more recipients can never pass.
    pub cap: u64,
}

/// The daily limit `days` whole days into a warm-up that started at `first_day`: doubled each
/// day, up to `cap`.
pub fn warm_daily(first_day: u64, days: i64, cap: u64) -> u64 {
    let doublings = days.clamp(0, 40) as u32;
    first_day.saturating_mul(1u64 << doublings).min(cap)
}

/// The limits on an account's message sent at `now`: the month's quota, the day's (lower in a
/// warm-up that started at `warmup_from`) and the hour's.
pub fn quotas(limits: &PlanLimits, warmup_from: Option<Timestamp>, now: Timestamp) -> [Quota; 3] {
    let daily = match warmup_from {
        // Whole UTC days since the warm-up's first, so that a day's limit holds all that day.
        Some(from) if limits.warmup_first_day > 0 => warm_daily(
            limits.warmup_first_day,
            (QuotaPeriod::Day.start(now).0 - QuotaPeriod::Day.start(from).0).div_euclid(DAY_MS),
            limits.daily_limit,
        ),
        _ => limits.daily_limit,
    };
    [
        Quota {
            period: QuotaPeriod::Month,
            limit: limits.monthly_quota,
            cap: limits.monthly_quota,
        },
        Quota {
            period: QuotaPeriod::Day,
            limit: daily,
            cap: limits.daily_limit,
        },
        Quota {
            period: QuotaPeriod::Hour,
            limit: limits.hourly_limit,
            cap: limits.hourly_limit,
        },
    ]
}

/// A quota that refuses a message: which, how much of it is used, and when it resets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub period: QuotaPeriod,
    pub limit: u64,
    pub used: u64,
    pub resets_at: Timestamp,
    /// Seconds from the refusal to the reset (HTTP's `Retry-After`).
    pub retry_after_s: u64,
    /// The message alone has more recipients than the limit: no reset lets it pass, so the
    /// refusal is permanent.
    pub never: bool,
}

impl Quota {
    /// This quota's refusal of a message sent at `at`, with `used` of it gone.
    pub fn refuse(&self, used: u64, at: Timestamp) -> QuotaExceeded {
        let resets_at = self.period.resets_at(at);
        QuotaExceeded {
            period: self.period,
            limit: self.limit,
            used,
            resets_at,
            retry_after_s: ((resets_at.0 - at.0).max(0) as u64).div_ceil(1000),
            never: false,
        }
    }
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, done, when) = match self.period {
            QuotaPeriod::Month => ("monthly quota", "used up", "this month"),
            QuotaPeriod::Day => ("daily limit", "reached", "today"),
            QuotaPeriod::Hour => ("hourly limit", "reached", "this hour"),
        };
        if self.never {
            return write!(
                f,
                "the message has more recipients than the {what} of {} allows at all; \
                 send it in parts",
                self.limit
            );
        }
        write!(
            f,
            "the {what} of {} recipients is {done} ({} sent {when}); it resets at {}",
            self.limit, self.used, self.resets_at
        )
    }
}

impl std::error::Error for QuotaExceeded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_and_reset_in_utc() {
        let at = Timestamp(1_796_468_096_000); // 2026-12-05T10:54:56Z
        assert_eq!(
            QuotaPeriod::Hour.resets_at(at).to_rfc3339(),
            "2026-12-05T11:00:00.000Z"
        );
        assert_eq!(
            QuotaPeriod::Day.resets_at(at).to_rfc3339(),
            "2026-12-06T00:00:00.000Z"
        );
        assert_eq!(
            QuotaPeriod::Month.resets_at(at).to_rfc3339(),
            "2027-01-01T00:00:00.000Z"
        );
        assert_eq!(
            QuotaPeriod::Day.start(at).to_rfc3339(),
            "2026-12-05T00:00:00.000Z"
        );
    }

    #[test]
    fn a_warm_up_doubles_daily_up_to_the_plan() {
        let limits = PlanLimits {
            daily_limit: 6_000,
            warmup_first_day: 1_000,
            ..crate::account::Plan::Premium.default_limits()
        };
        // Started a minute before midnight: that day is the first, the next UTC day (a minute
        // later) the second.
        let from = Timestamp(DAY_MS - 60_000);
        let at = |ms: i64| quotas(&limits, Some(from), Timestamp(ms))[1].limit;
        assert_eq!(at(DAY_MS - 1_000), 1_000);
        let day = |d: i64| at(d * DAY_MS + 5);
        assert_eq!(
            [day(1), day(2), day(3), day(30)],
            [2_000, 4_000, 6_000, 6_000]
        );
        // No warm-up: the plan's limit from the start.
        assert_eq!(quotas(&limits, None, Timestamp(5))[1].limit, 6_000);
        assert_eq!(warm_daily(u64::MAX / 2, 100, u64::MAX), u64::MAX);
    }

    #[test]
    fn a_refusal_names_its_limit_and_reset() {
        let q = Quota {
            period: QuotaPeriod::Day,
            limit: 1000,
            cap: 1000,
        };
        let e = q.refuse(998, Timestamp(86_400_000 - 1_500));
        assert_eq!(e.retry_after_s, 2);
        assert_eq!(
            e.to_string(),
            "the daily limit of 1000 recipients is reached (998 sent today); it resets at 1970-01-02T00:00:00.000Z"
        );
        assert!(!e.never);
        let usage = Usage::default();
        let big = usage
            .refusal(&[q], 1001, Timestamp(5))
            .expect("more than the limit");
        assert!(big.never, "no reset lets it pass");
        assert!(big.to_string().contains("send it in parts"), "{big}");
        assert!(
            !usage
                .refusal(&[q], 1000, Timestamp(5))
                .is_some_and(|r| r.never)
        );
        // In a warm-up the day's limit rises: a message over today's may pass another day.
        let warming = Quota { limit: 500, ..q };
        let later = usage
            .refusal(&[warming], 800, Timestamp(5))
            .expect("over today's limit");
        assert!(!later.never, "it passes once the warm-up reaches 800");
        // Refused by the day first, but too many for the hour ever: for good.
        let hour = Quota {
            period: QuotaPeriod::Hour,
            limit: 10,
            cap: 10,
        };
        let full = Usage {
            day: 1000,
            ..Usage::default()
        };
        let both = full.refusal(&[q, hour], 20, Timestamp(5)).expect("refused");
        assert_eq!(both.period, QuotaPeriod::Day);
        assert!(both.never);
    }
}
