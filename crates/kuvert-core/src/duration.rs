//! Durations as people write them in configuration: `90s`, `5m`, `4h`, `3d`, or a sum such as
//! `1h30m`. Serialised the same way, so the example config shows what it means.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `Duration` read from and written as `1h30m`-style text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub fn millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a duration such as 30s, 5m, 4h or 3d");
        let (mut total, mut number) = (0u64, None::<u64>);
        for c in s.trim().chars() {
            if let Some(d) = c.to_digit(10) {
                number = Some(
                    number
                        .unwrap_or(0)
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d)))
                        .ok_or_else(bad)?,
                );
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(bad()),
            };
            total = number
                .take()
                .ok_or_else(bad)?
                .checked_mul(unit)
                .and_then(|n| total.checked_add(n))
                .ok_or_else(bad)?;
        }
        if number.is_some() || s.trim().is_empty() {
            return Err(bad());
        }
        Ok(Self(Duration::from_secs(total)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.0.as_secs();
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= size {
                write!(f, "{}{unit}", s / size)?;
                s %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_the_same_text() {
        for (text, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("1h30m", 5400),
            ("3d", 259_200),
            ("0s", 0),
        ] {
            let d: HumanDuration = text.parse().expect("valid");
            assert_eq!(d.0.as_secs(), secs);
            assert_eq!(d.to_string(), text);
        }
        for bad in ["", "5", "m", "5x", "1.5h", "-1m"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad}");
        }
    }
}
