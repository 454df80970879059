//! When an account's sending pauses. A sender whose mail bounces or is reported as spam too
//! often spoils the reputation of the instance's IPs for every other account: mailbox
//! providers (Gmail and Yahoo since February 2024) block senders above 0.3 % complaints. So
//! each account's outcomes over the last [`WINDOW_HOURS`] hours are judged against its plan's
//! limits, once it has sent to enough recipients in them for a rate to mean something.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account::string_enum;

/// The window judged: the hours before the current one and the current one so far.
pub const WINDOW_HOURS: u32 = 24;

/// Mailbox providers' own complaint limit; an account's must stay below it.
pub const PROVIDER_COMPLAINT_BP: u32 = 30;

/// A plan's limits. Rates are in basis points (0.01 %), so that limits compare exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationLimits {
    /// Hard bounces, as a share of the recipients sent to (accepted for delivery).
    pub max_hard_bounce_bp: u32,
    /// Complaints, as a share of the recipients delivered to.
    pub max_complaint_bp: u32,
    /// Fewer recipients than this in the window are not judged: two bounces out of ten
    /// say little.
    pub min_recipients: u64,
}

impl Default for ReputationLimits {
    fn default() -> Self {
        Self {
            max_hard_bounce_bp: 500,
            max_complaint_bp: 10,
            min_recipients: 100,
        }
    }
}

/// What an account's mail met in the window. Bounces are a share of the recipients sent to,
/// as mailbox providers count them: a bounce that comes back after delivery (a DSN) would
/// otherwise count its recipient twice, once delivered and once bounced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Recipients accepted for delivery (not those dropped at once).
    pub accepted: u64,
    pub delivered: u64,
    pub bounced_hard: u64,
    pub complained: u64,
}

string_enum! {
    /// What paused an account's sending.
    PauseCause { Bounces = "bounces", Complaints = "complaints" }
}

/// Why an account's sending paused, with the figures: the body of its `suspended` event,
/// the notice to its owner and the error its submissions get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pause {
    pub cause: PauseCause,
    /// Hard bounces or complaints in the window.
    pub count: u64,
    /// What they are a share of: recipients sent to (bounces) or delivered to (complaints).
    pub of: u64,
    /// `count` of `of`, in basis points (0.01 %).
    pub rate_bp: u32,
    /// The plan's limit, in basis points.
    pub limit_bp: u32,
    pub window_hours: u32,
}

impl Outcomes {
    /// Whether these outcomes pause sending, and why. Bounces are judged first: an address
    /// list that bounces is the usual cause of complaints too.
    pub fn judge(&self, limits: &ReputationLimits) -> Option<Pause> {
        let over = |cause, count: u64, of: u64, limit_bp: u32| {
            // Exactly: above the limit means count / of > limit / 10 000.
            (of >= limits.min_recipients.max(1)
                && u128::from(count) * 10_000 > u128::from(limit_bp) * u128::from(of))
            .then(|| Pause {
                cause,
                count,
                of,
                rate_bp: (u128::from(count) * 10_000 / u128::from(of)).min(u32::MAX.into()) as u32,
                limit_bp,
                window_hours: WINDOW_HOURS,
            })
        };
        over(
            PauseCause::Bounces,
            self.bounced_hard,
            self.accepted,
            limits.max_hard_bounce_bp,
        )
        .or_else(|| {
            over(
                PauseCause::Complaints,
                self.complained,
                self.delivered,
                limits.max_complaint_bp,
            )
        })
    }
}

/// `550` as `5.50 %`.
pub fn percent(bp: u32) -> String {
    format!("{}.{:02} %", bp / 100, bp % 100)
}

/// A rate as configuration writes it, `5%` or `0.1 %` (to 0.01 %), kept in basis points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(pub u32);

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a rate such as 5% or 0.1%");
        let number = s.trim().strip_suffix('%').ok_or_else(bad)?.trim();
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty()
            || fraction.len() > 2
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let fraction: u32 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
        if whole > 100 {
            return Err(bad());
        }
        Ok(Self(whole * 100 + fraction).min(Self(10_000)))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, fraction) = (self.0 / 100, self.0 % 100);
        match fraction {
            0 => write!(f, "{whole}%"),
            n if n % 10 == 0 => write!(f, "{whole}.{}%", n / 10),
            n => write!(f, "{whole}.{n:02}%"),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, of) = match self.cause {
            PauseCause::Bounces => ("hard bounces", "recipients sent to"),
            PauseCause::Complaints => ("complaints", "recipients delivered to"),
        };
        write!(
            f,
            "{what} were {} ({} of {} {of}) in the last {} hours, above the limit of {}",
            percent(self.rate_bp),
            self.count,
            self.of,
            self.window_hours,
            percent(self.limit_bp)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(accepted: u64, hard: u64, complained: u64) -> Outcomes {
        Outcomes {
            accepted,
            delivered: accepted - hard,
            bounced_hard: hard,
            complained,
        }
    }

    #[test]
    fn pauses_above_the_limits_only() {
        let l = ReputationLimits::default();
        // 5 % exactly is not above 5 %.
        assert_eq!(outcomes(1000, 50, 0).judge(&l), None);
        let p = outcomes(1000, 51, 0).judge(&l).expect("paused");
        assert_eq!(
            (p.cause, p.count, p.of, p.rate_bp, p.limit_bp),
            (PauseCause::Bounces, 51, 1000, 510, 500)
        );
        assert_eq!(
            p.to_string(),
            "hard bounces were 5.10 % (51 of 1000 recipients sent to) in the last 24 hours, above the limit of 5.00 %"
        );
        // One complaint in a thousand delivered is the limit; two are above it.
        assert_eq!(outcomes(1000, 0, 1).judge(&l), None);
        let p = outcomes(1000, 0, 2).judge(&l).expect("paused");
        assert_eq!((p.cause, p.rate_bp), (PauseCause::Complaints, 20));
        // Too few to judge, however bad.
        assert_eq!(outcomes(50, 49, 10).judge(&l), None);
        // Complaints are judged against deliveries, which must be enough on their own.
        let few_delivered = Outcomes {
            accepted: 1000,
            delivered: 50,
            bounced_hard: 0,
            complained: 5,
        };
        assert_eq!(few_delivered.judge(&l), None);
    }

    #[test]
    fn rates_read_as_configuration_writes_them() {
        for (text, bp) in [("5%", 500), ("0.1%", 10), ("0.25 %", 25), ("100%", 10_000)] {
            let r: Rate = text.parse().expect(text);
            assert_eq!(r, Rate(bp), "{text}");
            assert_eq!(r.to_string().parse::<Rate>(), Ok(r));
        }
        assert_eq!(Rate(10).to_string(), "0.1%");
        for bad in ["5", "0.125%", "-1%", "%", "101%", "a%"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_complaint_limit_is_below_the_providers() {
        assert!(ReputationLimits::default().max_complaint_bp < PROVIDER_COMPLAINT_BP);
        assert_eq!(percent(5), "0.05 %");
    }
}
