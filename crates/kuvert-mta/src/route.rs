//! Where the mail of a recipient domain goes: its MX hosts, a configured route, the relay, or
//! the capture store.

use std::sync::Arc;

use kuvert_dns::{Dns, MailExchangers};
use kuvert_mail::smtp::Reply;

use crate::config::{DeliveryConfig, Mode, best_match, split_host_port};
use crate::mta_sts::{Applied, Sts};

/// The servers a domain's mail goes to. Domains whose mail goes to the same servers have the
/// same `key`, and so share connections and limits.
#[derive(Clone, Debug)]
pub enum Destination {
    Capture,
    Smtp {
        key: String,
        /// `(host, port)` in the order to try.
        hosts: Vec<(String, u16)>,
        /// Through the configured smarthost (AUTH when configured).
        relay: bool,
        /// The recipient domain's MTA-STS policy, when it has one.
        sts: Option<Arc<Applied>>,
    },
}

impl Destination {
    pub fn key(&self) -> &str {
        match self {
            Self::Capture => "capture",
            Self::Smtp { key, .. } => key,
        }
    }
}

/// Why no destination was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteFailure {
    /// The domain takes no mail, ever: a hard bounce with this refusal.
    Permanent(Reply),
    /// DNS did not answer: try again later.
    Temporary(String),
}

#[derive(Clone)]
pub struct Router {
    mode: Mode,
    mx_port: u16,
    routes: std::collections::BTreeMap<String, String>,
    relay_host: String,
    dns: Dns,
    sts: Option<Arc<Sts>>,
}

impl Router {
    /// `sts`: MTA-STS for mail to MX hosts (`None`: off).
    pub fn new(config: &DeliveryConfig, dns: Dns, sts: Option<Arc<Sts>>) -> Self {
        Self {
            mode: config.mode,
            mx_port: config.mx_port,
            routes: config.routes.clone(),
            relay_host: config.relay.host.clone(),
            dns,
            sts,
        }
    }

    /// `exempt`: the message is one MTA-STS is not applied to (a TLS report, which must
    /// arrive whatever the domain's policy says, RFC 8460 §5.3).
    pub async fn resolve(&self, domain: &str, exempt: bool) -> Result<Destination, RouteFailure> {
        let domain = domain.to_ascii_lowercase();
        match self.mode {
            Mode::Capture => return Ok(Destination::Capture),
            Mode::Relay => return Ok(fixed(&self.relay_host, true)),
            Mode::Mx => {}
        }
        if let Some(target) = best_match(&self.routes, &domain) {
            return Ok(fixed(target, false));
        }
        let hosts = match self.dns.mail_exchangers(&domain).await {
            Ok(MailExchangers::Hosts(h)) => h,
            Ok(MailExchangers::Implicit) => vec![domain.clone()],
            Ok(MailExchangers::Null) => {
                return Err(RouteFailure::Permanent(Reply::new(
                    550,
                    (5, 1, 10),
                    format!("{domain} accepts no mail (null MX, RFC 7505)"),
                )));
            }
            Ok(MailExchangers::NoDomain | MailExchangers::NoMailServer) => {
                return Err(RouteFailure::Permanent(Reply::new(
                    550,
                    (5, 1, 2),
                    format!("{domain} does not exist or has no mail server"),
                )));
            }
            Err(e) => return Err(RouteFailure::Temporary(e.to_string())),
        };
        let sts = match &self.sts {
            Some(s) if !exempt => s.policy(&domain).await,
            _ => None,
        };
        let mut hosts = hosts;
        if let Some(applied) = sts.as_ref().filter(|a| a.enforced()) {
            // RFC 8461 §4.2: never to an MX host the policy does not name; wait for one.
            // No session was tried, so none is counted.
            let (named, others): (Vec<String>, Vec<String>) =
                hosts.into_iter().partition(|h| applied.policy.matches(h));
            if named.is_empty() {
                return Err(RouteFailure::Temporary(format!(
                    "MTA-STS policy of {domain} (enforce) names none of its MX hosts ({}); \
                     the mail waits until one it names receives",
                    others.join(", ")
                )));
            }
            hosts = named;
        }
        let hosts: Vec<(String, u16)> = hosts.into_iter().map(|h| (h, self.mx_port)).collect();
        let mut key = hosts
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        if sts.as_ref().is_some_and(|a| a.enforced()) {
            // Its connections are checked ones: not shared with unchecked ones.
            key.push_str("|mta-sts");
        }
        Ok(Destination::Smtp {
            key,
            hosts,
            relay: false,
            sts,
        })
    }

    pub fn sts(&self) -> Option<&Arc<Sts>> {
        self.sts.as_ref()
    }

    pub fn dns(&self) -> &Dns {
        &self.dns
    }
}

fn fixed(target: &str, relay: bool) -> Destination {
    // Checked at start (DeliveryConfig::problems), so the split succeeds.
    let (host, port) = split_host_port(target).unwrap_or_else(|| (target.to_owned(), 25));
    Destination::Smtp {
        key: format!("{host}:{port}"),
        hosts: vec![(host, port)],
        relay,
        sts: None,
    }
}
