//! The connections to each destination: at most `connections` open, idle ones kept for the
//! next job and closed after `idle`, transactions paced to `messages_per_minute`, and the
//! source address of an IP pool.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use kuvert_core::mta_sts::ResultType;

use super::signers::MAX_SIGNERS;
use super::{Inner, Target};
use crate::config::DestinationLimits;
use crate::mta_sts::Applied;
use crate::smtp::{ConnectOptions, Connection};

/// How often the scheduler forgets destinations and keys it no longer needs.
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The connections to one set of servers (a destination), their limits and their pace.
pub(super) struct ConnectionPool {
    pub(super) limits: DestinationLimits,
    /// Open connections, in use or idle, never more than `limits.connections`.
    pub(super) permits: Semaphore,
    pub(super) idle: Mutex<Vec<(Connection, Instant)>>,
    /// When the next transaction may start (`messages_per_minute`).
    pub(super) next_slot: tokio::sync::Mutex<Instant>,
}

/// Drops the destinations nothing holds: no job has it, no connection is open, and its pace
/// has no slot ahead to keep.
pub(super) fn prune_destinations(all: &mut HashMap<String, Arc<ConnectionPool>>, now: Instant) {
    all.retain(|_, q| {
        let unused = Arc::strong_count(q) == 1
            && q.permits.available_permits() == q.limits.connections as usize
            && q.idle.lock().expect("idle").is_empty()
            && q.next_slot.try_lock().is_ok_and(|at| *at <= now);
        !unused
    });
}

impl ConnectionPool {
    /// Waits for this destination's next slot under `messages_per_minute`.
    pub(super) async fn pace(&self) {
        let rate = self.limits.messages_per_minute;
        if rate == 0 {
            return;
        }
        let at = {
            let mut next = self.next_slot.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + Duration::from_secs(60) / rate;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

impl Inner {
    /// Puts a connection back for the next job, and closes it if none comes in time.
    pub(super) fn park_idle(&self, q: &Arc<ConnectionPool>, conn: Connection) {
        let since = Instant::now();
        q.idle.lock().expect("idle").push((conn, since));
        let q = q.clone();
        let idle_for = self.config.timeouts.idle.0;
        tokio::spawn(async move {
            tokio::time::sleep(idle_for).await;
            let expired: Vec<Connection> = {
                let mut idle = q.idle.lock().expect("idle");
                let (old, fresh): (Vec<_>, Vec<_>) =
                    idle.drain(..).partition(|(_, t)| t.elapsed() >= idle_for);
                *idle = fresh;
                old.into_iter().map(|(c, _)| c).collect()
            };
            for c in expired {
                c.quit().await;
            }
        });
    }

    /// Forgets destinations that hold nothing (no job, no connection, no pace to keep) and,
    /// past [`MAX_SIGNERS`], the parsed DKIM keys: both maps are keyed by what senders
    /// choose (recipient domains, sending domains), so they must not only grow.
    pub(super) fn prune(&self) {
        prune_destinations(
            &mut self.destinations.lock().expect("destinations"),
            Instant::now(),
        );
        let now_ms = self.store.clock().now().millis();
        let mut signers = self.signers.lock().expect("signers");
        signers.retain(|_, (_, at)| (0..kuvert_store::KEY_RECHECK_MS).contains(&(now_ms - *at)));
        if signers.len() > MAX_SIGNERS {
            signers.clear();
        }
        if let Some(sts) = self.router.sts() {
            sts.prune();
        }
    }

    pub(super) fn destination(&self, key: &str, domain: &str) -> Arc<ConnectionPool> {
        let mut all = self.destinations.lock().expect("destinations");
        all.entry(key.to_owned())
            .or_insert_with(|| {
                let limits = self.config.limits_for(domain);
                Arc::new(ConnectionPool {
                    permits: Semaphore::new(limits.connections as usize),
                    limits,
                    idle: Mutex::default(),
                    next_slot: tokio::sync::Mutex::new(Instant::now()),
                })
            })
            .clone()
    }

    /// Tries each host and each of its addresses until one greets us (and, under an
    /// `enforce` MTA-STS policy, speaks TLS with a certificate that checks).
    pub(super) async fn connect(
        &self,
        to: &Target<'_>,
        pool: Option<&crate::config::Pool>,
    ) -> Result<Connection, String> {
        let relay = to.relay;
        let mut last = String::from("no mail server to try");
        let (source, ehlo_name) = match pool {
            Some(p) if !p.addresses.is_empty() => {
                let a = &p.addresses
                    [self.next_source.fetch_add(1, Ordering::Relaxed) % p.addresses.len()];
                (Some(a.ip), a.ehlo.as_str())
            }
            _ => (None, self.ehlo_name.as_str()),
        };
        for (host, port) in to.hosts {
            let addrs = match self.router.dns().addresses(host).await {
                Ok(a) if a.is_empty() => {
                    last = format!("{host} has no address");
                    continue;
                }
                Ok(a) => a,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            for ip in addrs {
                let options = ConnectOptions {
                    host,
                    addr: std::net::SocketAddr::new(ip, *port),
                    source,
                    ehlo_name,
                    timeouts: &self.config.timeouts,
                    tls: Some(if relay {
                        self.relay_tls.clone()
                    } else {
                        self.tls.clone()
                    }),
                };
                match Connection::open(options).await {
                    Ok(mut c) => {
                        self.stats.connections_opened.inc();
                        if let Some(applied) = to.sts
                            && let Err(why) = self.sts_verdict(applied, &c)
                        {
                            last = why;
                            tokio::spawn(c.quit());
                            continue;
                        }
                        let auth = &self.config.relay;
                        if relay && !auth.username.is_empty() {
                            if c.tls_version.is_none() {
                                last = format!(
                                    "{host} offers no TLS; the relay password is not sent in clear"
                                );
                                continue;
                            }
                            if let Err(e) = c.auth_plain(&auth.username, &auth.password).await {
                                last = format!("{host}: {e}");
                                continue;
                            }
                        }
                        return Ok(c);
                    }
                    Err(e) => last = format!("{host} ({ip}): {e}"),
                }
            }
        }
        Err(last)
    }
}

impl Inner {
    /// Judges a new connection under a domain's MTA-STS policy and counts the session for
    /// the TLS report: `Err` (why) when the policy is enforced and the connection fails it.
    /// Under `testing`, what would have failed is counted and the mail goes on.
    fn sts_verdict(&self, applied: &Applied, c: &Connection) -> Result<(), String> {
        let Some(sts) = self.router.sts() else {
            return Ok(());
        };
        let verdict = if !applied.policy.matches(&c.host) {
            Err((
                ResultType::ValidationFailure,
                format!("{} is not an MX host the policy names", c.host),
            ))
        } else if c.tls_version.is_none() {
            Err((
                ResultType::StarttlsNotSupported,
                format!("{} does not offer STARTTLS", c.host),
            ))
        } else {
            sts.certificates.check(&c.host, &c.peer_certificates)
        };
        match verdict {
            Ok(()) => {
                sts.count(applied, &c.host, None);
                Ok(())
            }
            Err((kind, why)) => {
                sts.count(applied, &c.host, Some(kind));
                if applied.enforced() {
                    Err(format!(
                        "MTA-STS policy of {} (enforce): {why}",
                        applied.domain
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn queue(per_minute: u32) -> ConnectionPool {
        let limits = DestinationLimits {
            messages_per_minute: per_minute,
            ..Default::default()
        };
        ConnectionPool {
            permits: Semaphore::new(limits.connections as usize),
            limits,
            idle: Mutex::default(),
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    #[tokio::test(start_paused = true)]
    pub(super) async fn destinations_nothing_holds_are_forgotten() {
        let mut all: HashMap<String, Arc<ConnectionPool>> = HashMap::new();
        for i in 0..1000 {
            all.insert(format!("mx{i}.example"), Arc::new(queue(0)));
        }
        let held = Arc::new(queue(0));
        all.insert("held".into(), held.clone());
        let paced = Arc::new(queue(6));
        paced.pace().await;
        all.insert("paced".into(), paced.clone());
        drop(paced);
        prune_destinations(&mut all, Instant::now());
        let mut left: Vec<&str> = all.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, ["held", "paced"], "one in use, one with a slot ahead");
        tokio::time::advance(Duration::from_secs(11)).await;
        prune_destinations(&mut all, Instant::now());
        assert_eq!(all.len(), 1);
        drop(held);
    }

    /// Tokio's paused clock stands in for time: the pacing is measured, not slept through.
    #[tokio::test(start_paused = true)]
    pub(super) async fn messages_per_minute_spaces_the_transactions() {
        let q = queue(6);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..4 {
            q.pace().await;
            at.push((Instant::now() - start).as_secs());
        }
        assert_eq!(at, [0, 10, 20, 30], "six a minute: one every ten seconds");

        let unlimited = queue(0);
        let start = Instant::now();
        for _ in 0..100 {
            unlimited.pace().await;
        }
        assert_eq!(Instant::now(), start, "0 means no limit");
    }
}
