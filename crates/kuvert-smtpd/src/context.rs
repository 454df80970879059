//! What every session shares: the way into the store and the acceptor, TLS, the bounds on
//! connections, the record of failed AUTH and the rate of reports.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuvert_store::Store;
use kuvert_submit::Acceptor;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::SmtpConfig;

pub struct SmtpContext {
    pub store: Store,
    /// Where every message goes: the same `accept()` as the HTTP API's.
    pub acceptor: Acceptor,
    pub config: SmtpConfig,
    /// The name in the greeting and EHLO reply.
    pub hostname: String,
    /// TLS handshakes (STARTTLS, implicit TLS); not to be confused with `acceptor`, which
    /// takes messages.
    pub tls: Option<TlsAcceptor>,
    /// Return-path hosts are `PREFIX.DOMAIN` ([domains] return_path_prefix).
    pub return_path_prefix: String,
    /// Connections to the submission listeners.
    pub(crate) connections: Arc<Semaphore>,
    /// Connections to the inbound MX, apart from submission's.
    pub(crate) inbound_connections: Arc<Semaphore>,
    pub(crate) per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Recent AUTH failures by client network: each one slows the next answer.
    auth_failures: Mutex<AuthFailures>,
    /// Reports the inbound MX takes per client network.
    pub(crate) reports: kuvert_core::ratelimit::RateLimiter,
    pub(crate) metrics: crate::metrics::SmtpMetrics,
}

/// Failed AUTH attempts by client network (the address for IPv4, its /64 for IPv6, which a
/// single client commonly holds whole), forgotten after [`AUTH_FAILURE_MEMORY`] and never
/// more than [`AUTH_FAILURE_ENTRIES`] networks: a client with many addresses cannot grow it.
#[derive(Default)]
struct AuthFailures(HashMap<IpAddr, (u32, std::time::Instant)>);

const AUTH_FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
const AUTH_FAILURE_ENTRIES: usize = 10_000;

impl AuthFailures {
    fn failed(&mut self, ip: IpAddr, now: std::time::Instant) -> u32 {
        let net = kuvert_core::ratelimit::client_network(ip);
        if !self.0.contains_key(&net) && self.0.len() >= AUTH_FAILURE_ENTRIES {
            self.0
                .retain(|_, (_, at)| now.duration_since(*at) < AUTH_FAILURE_MEMORY);
            if self.0.len() >= AUTH_FAILURE_ENTRIES
                && let Some(oldest) = self
                    .0
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| *k)
            {
                self.0.remove(&oldest);
            }
        }
        let e = self.0.entry(net).or_insert((0, now));
        if now.duration_since(e.1) >= AUTH_FAILURE_MEMORY {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        e.0
    }

    fn succeeded(&mut self, ip: IpAddr) {
        self.0.remove(&kuvert_core::ratelimit::client_network(ip));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl SmtpContext {
    pub fn new(
        store: Store,
        acceptor: Acceptor,
        config: SmtpConfig,
        domains: &kuvert_core::domain::DomainSettings,
        tls: Option<TlsAcceptor>,
    ) -> Arc<Self> {
        let per_minute = config.inbound_reports_per_minute;
        let reports = kuvert_core::ratelimit::RateLimiter::per_minute(per_minute, per_minute);
        Arc::new(Self {
            hostname: domains.hostname.clone(),
            return_path_prefix: domains.return_path_prefix.clone(),
            connections: Arc::new(Semaphore::new(config.max_connections as usize)),
            inbound_connections: Arc::new(Semaphore::new(config.inbound_max_connections as usize)),
            store,
            acceptor,
            config,
            tls,
            per_ip: Mutex::default(),
            auth_failures: Mutex::default(),
            reports,
            metrics: Default::default(),
        })
    }

    /// Registers SMTP's series (sessions, refused connections, answers to messages).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry);
    }

    /// Counts a failed AUTH from `ip`; returns how long to wait before answering.
    pub(crate) fn auth_failed(&self, ip: IpAddr) -> Duration {
        let n = self
            .auth_failures
            .lock()
            .expect("auth failures")
            .failed(ip, std::time::Instant::now());
        Duration::from_millis(250 * u64::from(n.min(20)))
    }

    pub(crate) fn auth_succeeded(&self, ip: IpAddr) {
        self.auth_failures
            .lock()
            .expect("auth failures")
            .succeeded(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_failure_record_is_bounded_and_forgets() {
        let mut f = AuthFailures::default();
        let start = std::time::Instant::now();
        for i in 0..(AUTH_FAILURE_ENTRIES as u32 + 500) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            f.failed(ip, start);
        }
        assert_eq!(
            f.len(),
            AUTH_FAILURE_ENTRIES,
            "never more networks than the bound"
        );
        // Addresses of one IPv6 /64 count as one client.
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(f.failed(a, start), 1);
        assert_eq!(f.failed(b, start), 2);
        // Forgotten after a while: the count starts again.
        assert_eq!(f.failed(a, start + AUTH_FAILURE_MEMORY), 1);
        f.succeeded(b);
        assert_eq!(f.failed(a, start + AUTH_FAILURE_MEMORY), 1);
    }
}
