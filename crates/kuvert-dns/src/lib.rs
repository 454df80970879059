//! DNS for Kuvert, through hickory-resolver: the records of sending domains (verification),
//! MX hosts and their addresses (delivery), the addresses of webhook hosts (checked before
//! they are reached). `[dns] nameservers` points it at a private server (tests).

pub mod http;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType as HickoryType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use kuvert_core::domain::{DnsRecord, RecordType};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("DNS look-up of {name} failed: {source}")]
    Lookup { name: String, source: ResolveError },
    #[error("cannot read the system's DNS configuration: {0}")]
    SystemConfig(ResolveError),
}

#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

/// One required or advised record, and what DNS holds for it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordCheck {
    #[serde(flatten)]
    pub record: DnsRecord,
    pub found: Vec<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether a resolver keeps answers for their TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Delivery and webhooks: the same names over and over.
    On,
    /// Domain verification: a record the user just published must be seen at once.
    Off,
}

impl Dns {
    /// A resolver asking `nameservers` (UDP, then TCP for truncated answers), or the system's
    /// resolvers when the list is empty.
    pub fn new(nameservers: &[SocketAddr], caching: Caching) -> Result<Self, DnsError> {
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(DnsError::SystemConfig)?
        } else {
            let mut config = ResolverConfig::from_parts(None, vec![], vec![]);
            for ns in nameservers {
                config.add_name_server(NameServerConfig::new(*ns, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(*ns, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        if caching == Caching::Off {
            opts.cache_size = 0;
        }
        Ok(Self {
            resolver: builder.build(),
        })
    }

    /// The answers for `name`: TXT strings of one record joined, MX exchanges and CNAME
    /// targets as names. A name or type that does not exist is an empty answer, not an error.
    pub async fn lookup(
        &self,
        name: &str,
        record_type: RecordType,
    ) -> Result<Vec<String>, DnsError> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let rtype = match record_type {
            RecordType::Txt => HickoryType::TXT,
            RecordType::Mx => HickoryType::MX,
            RecordType::Cname => HickoryType::CNAME,
        };
        match self.resolver.lookup(fqdn.as_str(), rtype).await {
            Ok(answer) => Ok(answer
                .iter()
                .filter_map(|rdata| match rdata {
                    RData::TXT(txt) => Some(
                        txt.txt_data()
                            .iter()
                            .map(|s| String::from_utf8_lossy(s))
                            .collect::<String>(),
                    ),
                    RData::MX(mx) => Some(mx.exchange().to_string()),
                    RData::CNAME(c) => Some(c.0.to_string()),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(vec![]),
            Err(source) => Err(DnsError::Lookup {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// Looks every record up, concurrently, and says which are in place.
    pub async fn check(&self, records: &[DnsRecord]) -> Vec<RecordCheck> {
        let tasks: Vec<_> = records
            .iter()
            .cloned()
            .map(|r| {
                let dns = self.clone();
                tokio::spawn(async move {
                    match dns.lookup(&r.name, r.record_type).await {
                        Ok(found) => RecordCheck {
                            ok: r.is_satisfied_by(&found),
                            record: r,
                            found,
                            error: None,
                        },
                        Err(e) => RecordCheck {
                            record: r,
                            found: vec![],
                            ok: false,
                            error: Some(e.to_string()),
                        },
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for (task, record) in tasks.into_iter().zip(records) {
            out.push(task.await.unwrap_or_else(|e| RecordCheck {
                record: record.clone(),
                found: vec![],
                ok: false,
                error: Some(format!("look-up task failed: {e}")),
            }));
        }
        out
    }
}

/// Where a domain receives mail (RFC 5321 §5.1, RFC 7505).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailExchangers {
    /// Host names, most preferred first (equal preferences in the order DNS gave them).
    Hosts(Vec<String>),
    /// No MX, but the domain has addresses: it is its own mail server (implicit MX).
    Implicit,
    /// `MX 0 .`: the domain accepts no mail.
    Null,
    /// The domain does not exist (NXDOMAIN).
    NoDomain,
    /// The domain exists but has neither MX nor addresses.
    NoMailServer,
}

impl Dns {
    /// The mail exchangers of `domain`. Errors are temporary (timeouts, SERVFAIL): retry later.
    pub async fn mail_exchangers(&self, domain: &str) -> Result<MailExchangers, DnsError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let err = |source| DnsError::Lookup {
            name: domain.to_owned(),
            source,
        };
        match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(answer) => {
                let mut mx: Vec<(u16, String)> = answer
                    .iter()
                    .map(|m| {
                        (
                            m.preference(),
                            m.exchange().to_utf8().trim_end_matches('.').to_owned(),
                        )
                    })
                    .collect();
                if mx.len() == 1 && mx[0].1.is_empty() {
                    return Ok(MailExchangers::Null);
                }
                mx.retain(|(_, h)| !h.is_empty());
                mx.sort_by_key(|(p, _)| *p);
                Ok(MailExchangers::Hosts(
                    mx.into_iter().map(|(_, h)| h).collect(),
                ))
            }
            Err(e) if e.is_nx_domain() => Ok(MailExchangers::NoDomain),
            Err(e) if e.is_no_records_found() => match self.addresses(domain).await {
                Ok(a) if a.is_empty() => Ok(MailExchangers::NoMailServer),
                Ok(_) => Ok(MailExchangers::Implicit),
                Err(e) => Err(e),
            },
            Err(e) => Err(err(e)),
        }
    }

    /// The IPv4 and IPv6 addresses of `host`; empty when it has none.
    pub async fn addresses(&self, host: &str) -> Result<Vec<std::net::IpAddr>, DnsError> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(vec![ip]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(ips) => Ok(ips.iter().collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(vec![]),
            Err(source) => Err(DnsError::Lookup {
                name: host.to_owned(),
                source,
            }),
        }
    }
}

/// Whether every required record passed.
pub fn all_required_pass(checks: &[RecordCheck]) -> bool {
    checks.iter().all(|c| c.ok || !c.record.required)
}
