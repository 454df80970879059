//! Where the mail of a recipient domain goes: its MX hosts, a configured route, the relay, or
//! the capture store.

use kuvert_dns::{Dns, MailExchangers};
use kuvert_mail::smtp::Reply;

use crate::config::{DeliveryConfig, Mode, best_match, split_host_port};

/// The servers a domain's mail goes to. Domains whose mail goes to the same servers have the
/// same `key`, and so share connections and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Capture,
    Smtp {
        key: String,
        /// `(host, port)` in the order to try.
        hosts: Vec<(String, u16)>,
        /// Through the configured smarthost (AUTH when configured).
        relay: bool,
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
}

impl Router {
    pub fn new(config: &DeliveryConfig, dns: Dns) -> Self {
        Self {
            mode: config.mode,
            mx_port: config.mx_port,
            routes: config.routes.clone(),
            relay_host: config.relay.host.clone(),
            dns,
        }
    }

    pub async fn resolve(&self, domain: &str) -> Result<Destination, RouteFailure> {
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
        let hosts: Vec<(String, u16)> = hosts.into_iter().map(|h| (h, self.mx_port)).collect();
        let key = hosts
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Destination::Smtp {
            key,
            hosts,
            relay: false,
        })
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
    }
}
