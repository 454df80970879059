//! The resolver of Kuvert's HTTP clients (webhooks, MTA-STS policies, TLS reports): names
//! are resolved by [`Dns`] (the tests' own server, in tests), and, unless the operator allows
//! it, a name that resolves to a private, loopback or link-local address is refused, so that
//! a URL or domain someone else chose cannot reach inside the operator's network. The
//! addresses reqwest connects to are the ones checked.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::Dns;

/// IPv4 addresses no request to a name others chose may reach (webhooks, MTA-STS policies,
/// TLS reports): private, loopback, link-local, CGNAT, reserved, and
/// the cloud metadata services.
fn is_private_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        // 0.0.0.0/8 "this network", 100.64.0.0/10 carrier-grade NAT, 192.0.0.0/24 IETF,
        // 198.18.0.0/15 benchmarking, 240.0.0.0/4 reserved
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240
        // Azure's metadata and DNS service, on a public address
        || o == [168, 63, 129, 16]
}

/// Whether `ip` is one such a request may not reach. IPv6 forms that carry an IPv4 address (mapped,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`) are judged by that address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let s = v6.segments();
            let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            let embedded = match s {
                [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
                [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
                // Teredo: the server's address, and the client's, stored inverted.
                [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => {
                    return is_private_v4(v4(server_hi, server_lo))
                        || is_private_v4(v4(!client_hi, !client_lo));
                }
                _ => None,
            };
            if let Some(v4) = embedded {
                return is_private_v4(v4);
            }
            let first = s[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local (fd00:ec2::254, AWS's metadata, among them),
                // fe80::/10 link-local, 2001:db8::/32 documentation
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && s[1] == 0xdb8)
        }
    }
}

/// Why a name was refused, naming the setting that allows it.
pub fn private_refusal(host: &str, ip: IpAddr, setting: &str) -> String {
    format!(
        "{host} is a private, loopback or link-local address ({ip}); the operator can allow those with {setting}"
    )
}

/// Refuses a URL whose host is a literal private address, unless allowed: reqwest connects
/// to a literal address without asking the resolver, so [`HttpResolver`] never sees it.
pub fn refuse_private_literal(
    url: &reqwest::Url,
    allow_private: bool,
    setting: &str,
) -> Result<(), String> {
    let host = url
        .host_str()
        .ok_or_else(|| "the URL has no host".to_owned())?
        .trim_start_matches('[')
        .trim_end_matches(']');
    if !allow_private
        && let Ok(ip) = host.parse::<IpAddr>()
        && is_private(ip)
    {
        return Err(private_refusal(host, ip, setting));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// reqwest's resolver: it returns no address unless every one is allowed.
pub struct HttpResolver {
    pub dns: Dns,
    pub allow_private: bool,
    /// The setting that allows private addresses, for the refusal (`[webhooks]
    /// allow_private`).
    pub setting: &'static str,
}

impl reqwest::dns::Resolve for HttpResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (dns, allow_private, setting) = (self.dns.clone(), self.allow_private, self.setting);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = dns.addresses(&host).await.map_err(Box::new)?;
            if !allow_private && let Some(ip) = addrs.iter().find(|ip| is_private(**ip)) {
                return Err(Box::new(Refused(private_refusal(&host, *ip, setting)))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(
                addrs
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// An error with its causes, which say what actually went wrong (reqwest's own message is
/// rarely enough).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reqwest connects to a literal address without the resolver: judged here instead.
    #[test]
    fn literal_private_addresses_are_refused_unless_allowed() {
        let url = |u: &str| reqwest::Url::parse(u).expect("a URL");
        for u in [
            "https://10.0.0.5:9200/x",
            "https://[::1]:8443/",
            "https://169.254.169.254/",
        ] {
            assert!(
                refuse_private_literal(&url(u), false, "[x] y").is_err(),
                "{u}"
            );
            assert!(
                refuse_private_literal(&url(u), true, "[x] y").is_ok(),
                "{u}"
            );
        }
        for u in ["https://reports.example.com/", "https://93.184.215.14/"] {
            assert!(
                refuse_private_literal(&url(u), false, "[x] y").is_ok(),
                "{u}"
            );
        }
    }
}
