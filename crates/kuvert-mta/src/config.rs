//! `[delivery]` configuration, with the defaults the product promises.

use std::collections::BTreeMap;

use kuvert_core::duration::HumanDuration;
use serde::{Deserialize, Serialize};

pub use crate::smtp::Timeouts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// To each recipient domain's MX hosts.
    #[default]
    Mx,
    /// Everything through one smarthost.
    Relay,
    /// Kept, signed, instead of sent (`GET /v1/capture`); for development and tests.
    Capture,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    pub mode: Mode,
    /// Port of the MX hosts (25; tests point it at a sink).
    pub mx_port: u16,
    /// EHLO name; empty: `[domains] hostname`.
    pub ehlo_name: String,
    /// Waits between attempts; the last one repeats until `max_age`.
    pub retry_schedule: Vec<HumanDuration>,
    /// A recipient not delivered this long after acceptance fails as expired.
    pub max_age: HumanDuration,
    /// How long a worker holds recipients it took; a crashed worker's are taken again after.
    pub lease: HumanDuration,
    /// Recipients taken from the queue at once, and the most in flight in this process.
    pub batch: u32,
    pub max_in_flight: u32,
    /// How often the queue is looked at when nothing wakes the scheduler.
    pub poll_interval: HumanDuration,
    /// Threads that may sign DKIM at once, off the threads that serve requests, so signing
    /// never holds up accepting. 0: one less than the cores, at least one.
    pub signing_threads: u32,
    pub timeouts: Timeouts,
    pub relay: Relay,
    /// Destination domain (or `*`) to `host:port`, instead of its MX hosts.
    pub routes: BTreeMap<String, String>,
    /// Limits by destination domain pattern (`*`, `example.com`, `*.example.com`).
    pub destinations: BTreeMap<String, DestinationLimits>,
    /// IP pools by name: the local addresses mail of an account or domain leaves from.
    pub pools: BTreeMap<String, Pool>,
    pub mta_sts: MtaSts,
    /// Where tracking links point (`[tracking] base_url`); set by the server, not read from
    /// this section.
    #[serde(skip)]
    pub tracking_base_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub addresses: Vec<PoolAddress>,
}

/// A local address and the name the client gives in EHLO when it sends from it (which should
/// be the name its PTR record gives).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolAddress {
    pub ip: std::net::IpAddr,
    pub ehlo: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    /// `host:port` of the smarthost, for `mode = "relay"`.
    pub host: String,
    /// AUTH PLAIN, when set (sent only over TLS).
    pub username: String,
    pub password: String,
    /// PEM file of the certificates that may sign the smarthost's; empty: the public web
    /// roots built into Kuvert. The smarthost's certificate is always checked against its
    /// name, so that the password goes to it and no one else.
    pub ca_file: String,
    /// Accepts any certificate from the smarthost: for tests only.
    pub insecure: bool,
}

/// MTA-STS (RFC 8461) on delivery to MX hosts: a recipient domain that publishes an
/// `enforce` policy gets mail only from MX hosts its policy names, over TLS with a certificate
/// that checks; else the mail waits, with the reason. Routes and the smarthost are the
/// operator's own and not subject to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MtaSts {
    /// Looks policies up and applies them; off: opportunistic STARTTLS to every MX.
    pub enabled: bool,
    /// PEM file of further authorities trusted for MX and policy-host certificates, beside
    /// the public web roots built into Kuvert (a private CA; the tests' own).
    pub ca_file: String,
    /// Port of the policy host (443; tests point it at their HTTPS server).
    pub policy_port: u16,
    /// How long fetching a policy may take.
    pub fetch_timeout: HumanDuration,
    /// Fetches policies from hosts on private, loopback or link-local addresses (tests): a
    /// recipient domain names the policy host, so by default they are refused.
    pub allow_private: bool,
}

impl Default for MtaSts {
    fn default() -> Self {
        Self {
            enabled: true,
            ca_file: String::new(),
            policy_port: 443,
            fetch_timeout: HumanDuration::secs(30),
            allow_private: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationLimits {
    pub connections: u32,
    pub messages_per_connection: u32,
    /// 0: no limit.
    pub messages_per_minute: u32,
}

impl Default for DestinationLimits {
    fn default() -> Self {
        Self {
            connections: 10,
            messages_per_connection: 100,
            messages_per_minute: 0,
        }
    }
}

impl DeliveryConfig {
    /// `signing_threads`, with 0 resolved for this machine.
    pub fn signing_threads(&self) -> usize {
        match self.signing_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
            n => n as usize,
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let m = |min: u64| HumanDuration::secs(min * 60);
        Self {
            mode: Mode::Mx,
            mx_port: 25,
            ehlo_name: String::new(),
            retry_schedule: vec![m(1), m(5), m(15), m(30), m(60), m(120), m(240)],
            max_age: HumanDuration::secs(3 * 86_400),
            lease: m(15),
            batch: 200,
            max_in_flight: 2000,
            poll_interval: HumanDuration::secs(1),
            signing_threads: 0,
            timeouts: Timeouts::default(),
            relay: Relay::default(),
            routes: BTreeMap::new(),
            destinations: BTreeMap::from([("*".to_owned(), DestinationLimits::default())]),
            pools: BTreeMap::new(),
            mta_sts: MtaSts::default(),
            tracking_base_url: String::new(),
        }
    }
}

impl DeliveryConfig {
    /// The limits of the most specific pattern matching `domain`.
    pub fn limits_for(&self, domain: &str) -> DestinationLimits {
        best_match(&self.destinations, domain)
            .cloned()
            .unwrap_or_default()
    }

    /// The configured route of `domain`, if any.
    pub fn route_for(&self, domain: &str) -> Option<&str> {
        best_match(&self.routes, domain).map(String::as_str)
    }

    /// Problems a start should refuse, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.retry_schedule.is_empty() {
            out.push("[delivery] retry_schedule needs at least one wait".into());
        }
        if self.mode == Mode::Relay && self.relay.host.is_empty() {
            out.push("[delivery] mode = \"relay\" needs [delivery.relay] host".into());
        }
        if let Err(e) = crate::smtp::tls::verified(&self.relay.ca_file) {
            out.push(format!("[delivery.relay] ca_file: {e}"));
        }
        if let Err(e) = crate::smtp::tls::roots(&self.mta_sts.ca_file) {
            out.push(format!("[delivery.mta_sts] ca_file: {e}"));
        }
        for (pattern, target) in &self.routes {
            if split_host_port(target).is_none() {
                out.push(format!(
                    "[delivery.routes] {pattern:?} = {target:?} is not host:port"
                ));
            }
        }
        if self.batch == 0 || self.max_in_flight < self.batch {
            out.push("[delivery] batch must be at least 1 and at most max_in_flight".into());
        }
        for (pattern, l) in &self.destinations {
            if l.connections == 0 || l.messages_per_connection == 0 {
                out.push(format!("[delivery.destinations.{pattern:?}] connections and messages_per_connection must be at least 1"));
            }
        }
        for (name, pool) in &self.pools {
            if pool.addresses.is_empty() {
                out.push(format!(
                    "[delivery.pools.{name}] needs at least one address"
                ));
            }
            for a in &pool.addresses {
                if !kuvert_core::address::is_host_name(&a.ehlo) {
                    out.push(format!(
                        "[delivery.pools.{name}] ehlo = {:?} is not a host name",
                        a.ehlo
                    ));
                }
            }
        }
        out
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn retry_after(&self, attempts: u32) -> HumanDuration {
        let i = (attempts.max(1) as usize - 1).min(self.retry_schedule.len().saturating_sub(1));
        self.retry_schedule
            .get(i)
            .copied()
            .unwrap_or(HumanDuration::secs(60))
    }
}

/// Exact domain first, then the longest `*.suffix`, then `*`.
pub(crate) fn best_match<'a, T>(map: &'a BTreeMap<String, T>, domain: &str) -> Option<&'a T> {
    let domain = domain.to_ascii_lowercase();
    if let Some(v) = map.get(&domain) {
        return Some(v);
    }
    let mut rest = domain.as_str();
    while let Some((_, parent)) = rest.split_once('.') {
        if let Some(v) = map.get(&format!("*.{parent}")) {
            return Some(v);
        }
        rest = parent;
    }
    map.get("*")
}

/// `host:port`, also `[v6]:port`.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host.to_owned(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_pattern_wins() {
        let mut c = DeliveryConfig::default();
        c.destinations.insert(
            "*.example.com".into(),
            DestinationLimits {
                connections: 2,
                ..Default::default()
            },
        );
        c.destinations.insert(
            "mail.example.com".into(),
            DestinationLimits {
                connections: 1,
                ..Default::default()
            },
        );
        assert_eq!(c.limits_for("mail.example.com").connections, 1);
        assert_eq!(c.limits_for("eu.mail.example.com").connections, 2);
        assert_eq!(
            c.limits_for("example.com").connections,
            10,
            "*.example.com is for subdomains"
        );
        assert_eq!(c.limits_for("other.org").connections, 10);
    }

    #[test]
    fn retries_follow_the_schedule_then_repeat_its_last_wait() {
        let c = DeliveryConfig::default();
        let mins: Vec<u64> = (1..=9).map(|a| c.retry_after(a).0.as_secs() / 60).collect();
        assert_eq!(mins, [1, 5, 15, 30, 60, 120, 240, 240, 240]);
    }

    #[test]
    fn bad_routes_are_named() {
        let mut c = DeliveryConfig::default();
        c.routes.insert("*".into(), "nowhere".into());
        assert!(c.problems().iter().any(|p| p.contains("nowhere")));
        assert_eq!(split_host_port("[::1]:25"), Some(("::1".into(), 25)));
    }
}
