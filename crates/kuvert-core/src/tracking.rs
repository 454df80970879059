//! Open, click and unsubscribe tracking: what an account and a domain let it record, and the
//! signed tokens that name a recipient (and, for a click, the link). The links themselves
//! are written into each recipient's copy by `kuvert_mail::tracking`.

/// The body placeholder replaced by the recipient's unsubscribe link (a template's
/// `{{unsubscribe_url}}` variable is left as this for the delivery step).
pub const UNSUBSCRIBE_PLACEHOLDER: &str = "{{unsubscribe_url}}";

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};

use crate::id::{AccountId, RecipientId};
use crate::lookup::{LookupKey, same_mac};
use std::net::IpAddr;

use crate::account::string_enum;
use crate::submission::TrackingOptions;

/// What an account lets tracking record (its privacy mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackingMode {
    /// Each open and click is an event of its recipient.
    #[default]
    Full,
    /// Opens and clicks are only counted: no event names the recipient who opened or
    /// clicked, nor their address or client.
    Aggregate,
    /// No pixel and no rewritten links, whatever a message asks.
    Off,
}

/// An account's tracking settings: the privacy mode and the defaults of its messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountTracking {
    pub mode: TrackingMode,
    /// Messages track opens unless their domain or they themselves say otherwise.
    pub opens: bool,
    pub clicks: bool,
    /// Opens and clicks keep the client's address cut to /24 (IPv4) or /48 (IPv6).
    pub truncate_ip: bool,
    /// Messages with one of these tags get an unsubscribe link (marketing mail).
    pub unsubscribe_tags: Vec<String>,
}

impl Default for AccountTracking {
    fn default() -> Self {
        Self {
            mode: TrackingMode::Full,
            opens: false,
            clicks: false,
            truncate_ip: true,
            unsubscribe_tags: Vec::new(),
        }
    }
}

/// A domain's tracking defaults; `None` leaves it to the account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainTracking {
    pub opens: Option<bool>,
    pub clicks: Option<bool>,
}

/// What each recipient's copy of a message carries, decided once at acceptance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracking {
    /// A pixel at the end of the HTML.
    pub opens: bool,
    /// HTML links through the click redirect.
    pub clicks: bool,
    /// `List-Unsubscribe` (one click, RFC 8058) and the `{{unsubscribe_url}}` placeholder.
    pub unsubscribe: bool,
}

impl Tracking {
    /// Whether each recipient needs a copy of its own.
    pub fn any(self) -> bool {
        self.opens || self.clicks || self.unsubscribe
    }
}

impl TrackingOptions {
    /// What a message gets: its own choice, else its domain's, else its account's; nothing
    /// when the account turned tracking off. Unsubscribe links are not tracking and stay.
    pub fn resolve(
        &self,
        tags: &[String],
        domain: &DomainTracking,
        account: &AccountTracking,
    ) -> Tracking {
        let on = account.mode != TrackingMode::Off;
        let unsubscribe =
            self.unsubscribe || tags.iter().any(|t| account.unsubscribe_tags.contains(t));
        Tracking {
            opens: on && self.opens.or(domain.opens).unwrap_or(account.opens),
            clicks: on && self.clicks.or(domain.clicks).unwrap_or(account.clicks),
            unsubscribe,
        }
    }
}

/// What a tracking link does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Open,
    Click(String),
    Unsubscribe,
}

/// What a genuine token names: the account whose message carried it, the recipient, the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub account: AccountId,
    pub recipient: RecipientId,
    pub link: Link,
}

/// Hex digits of MAC in a token: 96 bits.
const MAC_LEN: usize = 24;

/// The MAC covers the exact bytes of the encoded payload: base64 is case-sensitive, so a
/// case variant of a token is another payload and must not keep a valid MAC.
fn mac(key: &LookupKey, encoded: &str) -> String {
    let mut input = Vec::with_capacity(encoded.len() + 9);
    input.extend_from_slice(b"track/v2:");
    input.extend_from_slice(encoded.as_bytes());
    key.mac(&input)[..MAC_LEN].to_owned()
}

/// `PAYLOAD.MAC`, URL-safe. The payload is `o|acc_..|rcp_..`, `u|acc_..|rcp_..` or
/// `c|acc_..|rcp_..|URL`: the account is in it so that a link only works for the account
/// whose message carried it.
pub fn token(key: &LookupKey, account: &AccountId, recipient: &RecipientId, link: &Link) -> String {
    let payload = match link {
        Link::Open => format!("o|{account}|{recipient}"),
        Link::Unsubscribe => format!("u|{account}|{recipient}"),
        Link::Click(url) => format!("c|{account}|{recipient}|{url}"),
    };
    let encoded = B64URL.encode(payload.as_bytes());
    format!("{encoded}.{}", mac(key, &encoded))
}

/// What a token names, if its MAC checks.
pub fn parse_token(key: &LookupKey, token: &str) -> Option<Token> {
    let (encoded, given) = token.split_once('.')?;
    if !same_mac(given, &mac(key, encoded)) {
        return None;
    }
    let payload = String::from_utf8(B64URL.decode(encoded).ok()?).ok()?;
    let mut parts = payload.splitn(4, '|');
    let (kind, account, rcpt) = (parts.next()?, parts.next()?, parts.next()?);
    if !AccountId::looks_like(account) || !RecipientId::looks_like(rcpt) {
        return None;
    }
    let link = match (kind, parts.next()) {
        ("o", None) => Link::Open,
        ("u", None) => Link::Unsubscribe,
        ("c", Some(url)) => Link::Click(url.to_owned()),
        _ => return None,
    };
    Some(Token {
        account: AccountId::from_string(account.to_owned()),
        recipient: RecipientId::from_string(rcpt.to_owned()),
        link,
    })
}

/// The client's address with its host part cut off, /24 for IPv4 and /48 for IPv6: what an
/// open or click keeps when the account truncates addresses.
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => truncate_ip(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

string_enum! {
    /// A coarse class of a client by its user agent: what an open or click keeps instead of
    /// the agent string, which can single a person out.
    ClientClass { Unknown = "unknown", Proxy = "proxy", Bot = "bot", Mobile = "mobile", Desktop = "desktop" }
}

/// The class of the client whose user agent this is.
pub fn client_class(user_agent: &str) -> ClientClass {
    let ua = user_agent.to_ascii_lowercase();
    if ua.is_empty() {
        ClientClass::Unknown
    } else if ua.contains("googleimageproxy")
        || ua.contains("yahoomailproxy")
        || ua.contains("proxy")
    {
        ClientClass::Proxy
    } else if ua.contains("bot")
        || ua.contains("crawler")
        || ua.contains("spider")
        || ua.contains("python")
        || ua.contains("curl")
    {
        ClientClass::Bot
    } else if ua.contains("mobile") || ua.contains("android") || ua.contains("iphone") {
        ClientClass::Mobile
    } else {
        ClientClass::Desktop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

    #[test]
    fn message_then_domain_then_account_decide_and_off_wins() {
        let mut account = AccountTracking {
            opens: true,
            unsubscribe_tags: vec!["news".into()],
            ..AccountTracking::default()
        };
        let domain = DomainTracking {
            opens: None,
            clicks: Some(true),
        };
        let asked = TrackingOptions {
            opens: Some(false),
            clicks: None,
            unsubscribe: false,
        };
        let r = asked.resolve(&["news".into()], &domain, &account);
        assert_eq!((r.opens, r.clicks, r.unsubscribe), (false, true, true));
        let r = TrackingOptions::default().resolve(&[], &DomainTracking::default(), &account);
        assert_eq!((r.opens, r.clicks, r.unsubscribe), (true, false, false));
        account.mode = TrackingMode::Off;
        let all = TrackingOptions {
            opens: Some(true),
            clicks: Some(true),
            unsubscribe: true,
        };
        let r = all.resolve(&[], &domain, &account);
        assert_eq!((r.opens, r.clicks, r.unsubscribe), (false, false, true));
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = LookupKey::new([3; 32]);
        let r = RecipientId::generate(Timestamp(1_800_000_000_000));
        let a = AccountId::generate(Timestamp(1_800_000_000_000));
        for link in [
            Link::Open,
            Link::Unsubscribe,
            Link::Click("https://shop.example/a?b=1&c=|2".into()),
        ] {
            let t = token(&key, &a, &r, &link);
            let want = Token {
                account: a.clone(),
                recipient: r.clone(),
                link: link.clone(),
            };
            assert_eq!(parse_token(&key, &t), Some(want));
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "URL-safe: {t}"
            );
        }
        let t = token(&key, &a, &r, &Link::Click("https://shop.example/".into()));
        let (payload, mac) = t.split_once('.').expect("dot");
        let other = B64URL.encode(format!("c|{a}|{r}|https://evil.example/").as_bytes());
        assert_eq!(
            parse_token(&key, &format!("{other}.{mac}")),
            None,
            "another URL under the same MAC"
        );
        assert_eq!(
            parse_token(&LookupKey::new([4; 32]), &t),
            None,
            "another instance's key"
        );
        assert_eq!(parse_token(&key, payload), None);
        assert_eq!(parse_token(&key, "garbage"), None);
    }

    #[test]
    fn a_case_variant_of_a_genuine_token_is_refused() {
        let key = LookupKey::new([3; 32]);
        let r = RecipientId::generate(Timestamp(1_800_000_000_000));
        let a = AccountId::generate(Timestamp(1_800_000_000_000));
        let t = token(
            &key,
            &a,
            &r,
            &Link::Click("https://shop.example/path".into()),
        );
        let (encoded, mac) = t.split_once('.').expect("dot");
        let mut variants = 0;
        for (i, c) in encoded.char_indices() {
            let flipped = if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                continue;
            };
            let mut v = encoded.to_owned();
            v.replace_range(i..i + 1, &flipped.to_string());
            variants += 1;
            assert_eq!(
                parse_token(&key, &format!("{v}.{mac}")),
                None,
                "variant {v}"
            );
        }
        assert!(variants > 20, "the token has letters to flip");
    }

    #[test]
    fn addresses_lose_their_host_part() {
        assert_eq!(
            truncate_ip("192.0.2.77".parse().expect("ip")),
            "192.0.2.0/24"
        );
        assert_eq!(
            truncate_ip("2001:db8:1:2::5".parse().expect("ip")),
            "2001:db8:1::/48"
        );
        assert_eq!(
            truncate_ip("::ffff:10.1.2.3".parse().expect("ip")),
            "10.1.2.0/24"
        );
    }

    #[test]
    fn clients_are_classed_not_kept() {
        assert_eq!(client_class("").as_str(), "unknown");
        assert_eq!(
            client_class("Mozilla/5.0 (via ggpht.com GoogleImageProxy)").as_str(),
            "proxy"
        );
        assert_eq!(client_class("curl/8.0").as_str(), "bot");
        assert_eq!(
            client_class("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)").as_str(),
            "mobile"
        );
        assert_eq!(
            client_class("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0").as_str(),
            "desktop"
        );
    }
}
