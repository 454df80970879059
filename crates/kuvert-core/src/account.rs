//! Accounts (the sender, a company) and their users.

use serde::{Deserialize, Serialize};

// `$text` is a `tt`, not a `literal`: utoipa does not read a `literal` fragment handed on
// inside `#[serde(rename = ...)]`, and its schema would list the variants' names instead.
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vattr:meta])* $variant:ident = $text:tt),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema)]
        pub enum $name { $($(#[$vattr])* #[serde(rename = $text)] $variant),* }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(format!(
                        concat!("unknown ", stringify!($name), " {:?}: expected one of {}"),
                        s,
                        [$($text),*].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// Who acted, in the audit log: a user, an API key, the operator at the command line,
    /// support (under the account's grant), or Kuvert itself.
    ActorKind { User = "user", Key = "key", Operator = "operator", Support = "support", System = "system" }
}

string_enum! {
    /// What an account pays for: it sets event retention and the monthly quota.
    #[derive(Default)]
    Plan { #[default] Free = "free", Premium = "premium" }
}

string_enum! {
    /// Where an account's data is stored: in the EU unless the holder asks for the US.
    #[derive(Default)]
    Region { #[default] Eu = "eu", Us = "us" }
}

string_enum! {
    /// `restricted`: on hold at its holder's request (right to restriction): data is stored,
    /// nothing is processed (no sending, no tracking) until the restriction is lifted.
    AccountStatus { Active = "active", Restricted = "restricted", Suspended = "suspended", Closed = "closed" }
}

string_enum! {
    /// A data subject's right that a privacy request invokes.
    PrivacyRight {
        Access = "access",
        Rectification = "rectification",
        Erasure = "erasure",
        Restriction = "restriction",
        Objection = "objection",
    }
}

string_enum! {
    /// Where a privacy request stands.
    RequestState { Open = "open", Done = "done", Refused = "refused" }
}

/// Days within which a privacy request must be answered: every request within one month.
pub const PRIVACY_REQUEST_DAYS: i64 = 30;

string_enum! {
    /// A user's role within an account.
    Role { Owner = "owner", Admin = "admin", Developer = "developer", Viewer = "viewer" }
}

/// What a plan allows. The defaults are what the product promises; an instance may change them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLimits {
    /// How long event data is kept (3 months, 13 on premium plans).
    pub event_retention_months: u32,
    /// Recipients an account may send to per calendar month (UTC).
    pub monthly_quota: u64,
    /// ... per UTC day.
    pub daily_limit: u64,
    /// ... per hour.
    pub hourly_limit: u64,
    /// A new account's daily limit on its first day, doubled each day after until it reaches
    /// `daily_limit` (the warm-up starts again when a pause is lifted); 0: no warm-up.
    pub warmup_first_day: u64,
    /// Sending domains an account may add (each costs an RSA key generation).
    pub max_domains: u32,
    /// When an account's sending pauses on its bounces and complaints.
    pub reputation: crate::reputation::ReputationLimits,
}

impl Plan {
    pub fn default_limits(self) -> PlanLimits {
        match self {
            Self::Free => PlanLimits {
                event_retention_months: 3,
                monthly_quota: 6_000,
                daily_limit: 2_000,
                hourly_limit: 2_000,
                warmup_first_day: 500,
                max_domains: 10,
                reputation: Default::default(),
            },
            Self::Premium => PlanLimits {
                event_retention_months: 13,
                monthly_quota: 1_000_000,
                daily_limit: 500_000,
                hourly_limit: 100_000,
                warmup_first_day: 20_000,
                max_domains: 1_000,
                reputation: Default::default(),
            },
        }
    }
}

/// The company fields kept for an account. All are personal data (a sole trader's company is a
/// person) and are stored sealed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyProfile {
    pub company: Option<String>,
    pub country: Option<String>,
    pub vat_id: Option<String>,
    pub postal_address: Option<String>,
}

/// The personal fields of a user. Stored sealed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub salutation: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_text() {
        for p in Plan::ALL {
            assert_eq!(p.as_str().parse::<Plan>(), Ok(*p));
        }
        let err = "gold".parse::<Plan>().expect_err("refused");
        assert!(err.contains("free, premium"), "{err}");
        assert_eq!(Region::default(), Region::Eu);
    }
}
