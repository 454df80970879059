//! Rate limits per client for what anyone can reach without a key (the inbound MX, the
//! tracking links): a token bucket per client network, in a map that cannot grow past its
//! bound however many addresses a client has.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The network a client address stands for: the address itself for IPv4, its /64 for IPv6
/// (a single client commonly holds a whole /64).
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Clients tracked at once; past this, those whose buckets are full again are forgotten
/// first (they are as good as new), then the longest quiet.
pub const MAX_CLIENTS: usize = 65_536;

/// A token bucket per key: per client network ([`RateLimiter::allow`]), or per anything
/// else that must not be tried too often, such as an account's password
/// ([`RateLimiter::allow_key`]).
pub struct RateLimiter<K = IpAddr> {
    /// Tokens a key gains per second.
    rate: f64,
    /// Most tokens a key can hold: the burst it may use at once.
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
    max_clients: usize,
}

impl RateLimiter<IpAddr> {
    /// `per_minute` on average, with bursts of up to `burst`.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::with_capacity(f64::from(per_minute) / 60.0, burst, MAX_CLIENTS)
    }

    /// Takes one token of `ip`'s network; `false` when it has none left.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        self.allow_key(client_network(ip), now)
    }
}

impl<K: std::hash::Hash + Eq + Clone> RateLimiter<K> {
    /// `count` every `every` on average, with bursts of up to `burst`.
    pub fn every(count: u32, every: Duration, burst: u32) -> Self {
        Self::with_capacity(
            f64::from(count) / every.as_secs_f64().max(0.001),
            burst,
            MAX_CLIENTS,
        )
    }

    fn with_capacity(rate: f64, burst: u32, max_clients: usize) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
            max_clients,
        }
    }

    /// Takes one token of `key`; `false` when it has none left.
    pub fn allow_key(&self, net: K, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().expect("rate limiter");
        if !buckets.contains_key(&net) && buckets.len() >= self.max_clients {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| refill(*tokens, *at, now, rate, burst) < burst);
            if buckets.len() >= self.max_clients
                && let Some(quiet) = buckets
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                buckets.remove(&quiet);
            }
        }
        let (tokens, at) = buckets.entry(net).or_insert((self.burst, now));
        let available = refill(*tokens, *at, now, self.rate, self.burst);
        *at = now;
        if available >= 1.0 {
            *tokens = available - 1.0;
            true
        } else {
            *tokens = available;
            false
        }
    }

    pub fn clients(&self) -> usize {
        self.buckets.lock().expect("rate limiter").len()
    }
}

fn refill(tokens: f64, at: Instant, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(at).as_secs_f64();
    (tokens + elapsed * rate).min(burst)
}

/// How long a client that was refused should wait, roughly: one token's time.
pub fn retry_after(per_minute: u32) -> Duration {
    Duration::from_secs(60 / u64::from(per_minute.max(1))).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_client() {
        let l = RateLimiter::per_minute(60, 3);
        let t = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert_eq!(
            (0..5).map(|_| l.allow(a, t)).collect::<Vec<_>>(),
            [true, true, true, false, false]
        );
        assert!(l.allow(b, t), "another client has its own bucket");
        assert!(!l.allow(a, t + Duration::from_millis(500)));
        assert!(l.allow(a, t + Duration::from_millis(1600)), "one a second");
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_a_bucket() {
        let l = RateLimiter::per_minute(1, 1);
        let t = Instant::now();
        assert!(l.allow("2001:db8:1:2::1".parse().expect("ip"), t));
        assert!(!l.allow("2001:db8:1:2:aaaa::7".parse().expect("ip"), t));
        assert!(l.allow("2001:db8:1:3::1".parse().expect("ip"), t));
    }

    #[test]
    fn the_map_stays_within_its_bound() {
        let l = RateLimiter::<IpAddr>::with_capacity(1.0, 1, 100);
        let t = Instant::now();
        for i in 0..10_000u32 {
            l.allow(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)), t);
        }
        assert_eq!(l.clients(), 100);
        // Clients whose buckets have filled again are forgotten first.
        let later = t + Duration::from_secs(5);
        assert!(l.allow("198.51.100.7".parse().expect("ip"), later));
        assert!(l.clients() <= 100);
    }
}
