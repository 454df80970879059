//! Open, click and unsubscribe tracking: signed tokens that name a recipient (and, for a
//! click, the link), the rewriting of HTML, and the template a tracked message is kept as,
//! so that each recipient's copy can carry links of its own.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};

use crate::id::{AccountId, RecipientId};
use crate::lookup::LookupKey;
use crate::submission::{Attachment, Submission, TrackingOptions};
use crate::{Mailbox, Timestamp};

/// What an account lets tracking record (issue 5, privacy mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

impl TrackingOptions {
    /// What a message gets: its own choice, else its domain's, else its account's; nothing
    /// when the account turned tracking off. Unsubscribe links are not tracking and stay.
    pub fn resolve(
        &self,
        tags: &[String],
        domain: &DomainTracking,
        account: &AccountTracking,
    ) -> TrackingOptions {
        let on = account.mode != TrackingMode::Off;
        let unsubscribe =
            self.unsubscribe || tags.iter().any(|t| account.unsubscribe_tags.contains(t));
        TrackingOptions {
            opens: Some(on && self.opens.or(domain.opens).unwrap_or(account.opens)),
            clicks: Some(on && self.clicks.or(domain.clicks).unwrap_or(account.clicks)),
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
    let want = mac(key, encoded);
    let same = given.len() == want.len()
        && given
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !same {
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

/// Where one recipient's tracking links point.
pub struct Personal<'a> {
    pub base_url: &'a str,
    pub key: &'a LookupKey,
    pub account: &'a AccountId,
    pub recipient: &'a RecipientId,
}

impl Personal<'_> {
    pub fn url(&self, link: &Link) -> String {
        let path = match link {
            Link::Open => "o",
            Link::Click(_) => "c",
            Link::Unsubscribe => "u",
        };
        format!(
            "{}/{path}/{}",
            self.base_url.trim_end_matches('/'),
            token(self.key, self.account, self.recipient, link)
        )
    }
}

/// At most this many links of one message are rewritten; later ones are left as they are.
/// Each rewritten link grows by a token, so this bounds what one render can add to a copy.
pub const MAX_TRACKED_LINKS: usize = 2_000;

/// Rewrites the `href` of every `<a>` whose target is http(s), unless the tag carries
/// `data-kuvert-notrack`, up to [`MAX_TRACKED_LINKS`]. One pass: the HTML is lower-cased once
/// (ASCII only, so offsets stay the same) and every search moves forward, so the work is
/// linear in the size of the HTML whatever it holds.
pub fn rewrite_links(html: &str, mut to: impl FnMut(&str) -> String) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() + html.len() / 4);
    let mut copied = 0;
    let mut at = 0;
    let mut rewritten = 0;
    while rewritten < MAX_TRACKED_LINKS {
        let Some(found) = lower[at..].find("<a") else {
            break;
        };
        let tag_start = at + found + 2;
        // "<a" must start a tag of its own ("<abbr>" is not a link).
        if !lower[tag_start..].starts_with(|c: char| c.is_ascii_whitespace()) {
            at = tag_start;
            continue;
        }
        let Some(len) = lower[tag_start..].find('>') else {
            break;
        };
        let tag_end = tag_start + len;
        if let Some(new) = rewrite_tag(
            &html[tag_start..tag_end],
            &lower[tag_start..tag_end],
            &mut to,
        ) {
            out.push_str(&html[copied..tag_start]);
            out.push_str(&new);
            copied = tag_end;
            rewritten += 1;
        }
        at = tag_end;
    }
    out.push_str(&html[copied..]);
    out
}

/// The tag with its link rewritten, or `None` when it stays as it is. `lower` is `tag`
/// lower-cased.
fn rewrite_tag(tag: &str, lower: &str, to: &mut impl FnMut(&str) -> String) -> Option<String> {
    if lower.contains("data-kuvert-notrack") {
        return None;
    }
    let h = lower.find("href")?;
    let after = tag[h + 4..].trim_start();
    let value = after.strip_prefix('=')?.trim_start();
    let (quote, body) = match value.chars().next() {
        Some(q @ ('"' | '\'')) => (Some(q), &value[1..]),
        _ => (None, value),
    };
    let len = match quote {
        Some(q) => body.find(q)?,
        None => body
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(body.len()),
    };
    let url = html_unescape(&body[..len]);
    // A link with control characters cannot be a redirect's Location: it stays as written.
    if url.chars().any(char::is_control) {
        return None;
    }
    let lower_url = url.get(..8).unwrap_or(&url).to_ascii_lowercase();
    if !(lower_url.starts_with("http://") || lower_url.starts_with("https://")) {
        return None;
    }
    let start = tag.len() - body.len();
    Some(format!(
        "{}{}{}",
        &tag[..start],
        to(&url).replace('&', "&amp;"),
        &tag[start + len..]
    ))
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
}

/// The body placeholder replaced by the recipient's unsubscribe link.
pub const UNSUBSCRIBE_PLACEHOLDER: &str = "{{unsubscribe_url}}";

/// A tracked message's content, kept (sealed) instead of finished MIME: each recipient's
/// copy is built from it at delivery, with its own links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub headers: Vec<(String, String)>,
    /// (file name, content type, base64 content)
    pub attachments: Vec<(String, String, String)>,
    pub opens: bool,
    pub clicks: bool,
    pub unsubscribe: bool,
}

impl Template {
    /// The template of a submission that wants tracking, or `None`.
    pub fn of(s: &Submission) -> Option<Self> {
        let t = &s.tracking;
        let (opens, clicks, unsubscribe) =
            (t.opens == Some(true), t.clicks == Some(true), t.unsubscribe);
        if s.raw.is_some() || !(opens || clicks || unsubscribe) {
            return None;
        }
        let list = |l: &[Mailbox]| l.iter().map(ToString::to_string).collect();
        Some(Self {
            from: s.from.to_string(),
            to: list(&s.to),
            cc: list(&s.cc),
            reply_to: s.reply_to.as_ref().map(ToString::to_string),
            subject: s.subject.clone(),
            text: s.text.clone(),
            html: s.html.clone(),
            headers: s.headers.clone(),
            attachments: s
                .attachments
                .iter()
                .map(|a| {
                    (
                        a.filename.clone(),
                        a.content_type.clone(),
                        base64::engine::general_purpose::STANDARD.encode(&a.content),
                    )
                })
                .collect(),
            opens,
            clicks,
            unsubscribe,
        })
    }

    /// The recipient's copy, as it will be signed and sent.
    pub fn render(
        &self,
        id: &crate::id::MessageId,
        created: Timestamp,
        p: &Personal<'_>,
    ) -> Vec<u8> {
        let parse = |a: &str| Mailbox::parse(a).ok();
        let mut s = Submission {
            from: parse(&self.from).unwrap_or_else(|| Mailbox {
                name: None,
                address: crate::EmailAddress::parse("invalid@invalid.invalid").expect("valid"),
            }),
            to: self.to.iter().filter_map(|a| parse(a)).collect(),
            cc: self.cc.iter().filter_map(|a| parse(a)).collect(),
            bcc: vec![],
            reply_to: self.reply_to.as_deref().and_then(parse),
            subject: self.subject.clone(),
            text: self.text.clone(),
            html: self.html.clone(),
            headers: self.headers.clone(),
            attachments: self
                .attachments
                .iter()
                .map(|(f, t, c)| Attachment {
                    filename: f.clone(),
                    content_type: t.clone(),
                    content: base64::engine::general_purpose::STANDARD
                        .decode(c)
                        .unwrap_or_default(),
                })
                .collect(),
            tags: vec![],
            metadata: Default::default(),
            send_at: None,
            tracking: TrackingOptions::default(),
            require_tls: false,
            raw: None,
        };
        let unsubscribe = self.unsubscribe.then(|| p.url(&Link::Unsubscribe));
        if let Some(u) = &unsubscribe {
            s.text = s.text.map(|t| t.replace(UNSUBSCRIBE_PLACEHOLDER, u));
            s.html = s
                .html
                .map(|h| h.replace(UNSUBSCRIBE_PLACEHOLDER, &u.replace('&', "&amp;")));
            // RFC 8058: one click, by POST, with no further step.
            s.headers
                .push(("List-Unsubscribe".into(), format!("<{u}>")));
            s.headers.push((
                "List-Unsubscribe-Post".into(),
                "List-Unsubscribe=One-Click".into(),
            ));
        }
        if let Some(html) = s.html.take() {
            let mut html = if self.clicks {
                rewrite_links(&html, |url| p.url(&Link::Click(url.to_owned())))
            } else {
                html
            };
            if self.opens {
                let pixel = format!(
                    "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0;width:1px;height:1px\">",
                    p.url(&Link::Open)
                );
                match find_ci(&html, "</body>") {
                    Some(i) => html.insert_str(i, &pixel),
                    None => html.push_str(&pixel),
                }
            }
            s.html = Some(html);
        }
        crate::mime::build(&s, id, created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            (r.opens, r.clicks, r.unsubscribe),
            (Some(false), Some(true), true)
        );
        let r = TrackingOptions::default().resolve(&[], &DomainTracking::default(), &account);
        assert_eq!(
            (r.opens, r.clicks, r.unsubscribe),
            (Some(true), Some(false), false)
        );
        account.mode = TrackingMode::Off;
        let all = TrackingOptions {
            opens: Some(true),
            clicks: Some(true),
            unsubscribe: true,
        };
        let r = all.resolve(&[], &domain, &account);
        assert_eq!(
            (r.opens, r.clicks, r.unsubscribe),
            (Some(false), Some(false), true)
        );
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
    fn rewriting_stops_at_the_bound_and_leaves_the_rest() {
        let one = r#"<a href="https://a.example/">x</a>"#;
        let html = one.repeat(MAX_TRACKED_LINKS + 5);
        let out = rewrite_links(&html, |u| format!("T({u})"));
        assert_eq!(
            out.matches("T(https://a.example/)").count(),
            MAX_TRACKED_LINKS
        );
        assert_eq!(out.matches(one).count(), 5);
        // Unclosed and look-alike tags pass through unchanged.
        let odd = "<a".repeat(100_000) + &"<abbr ".repeat(1000);
        assert_eq!(rewrite_links(&odd, |u| format!("T({u})")), odd);
    }

    #[test]
    fn links_are_rewritten_unless_asked_not_to() {
        let html = r#"<p><a href="https://a.example/x?y=1&amp;z=2">A</a> <A class=b HREF='http://b.example'>B</A> <a href="mailto:x@y.z">M</a> <a data-kuvert-notrack href="https://c.example">C</a> <abbr>x</abbr></p>"#;
        let out = rewrite_links(html, |u| format!("T({u})"));
        assert!(
            out.contains(r#"<a href="T(https://a.example/x?y=1&amp;z=2)">"#),
            "{out}"
        );
        assert!(out.contains("HREF='T(http://b.example)'"), "{out}");
        assert!(
            out.contains(r#"href="mailto:x@y.z""#)
                && out.contains(r#"href="https://c.example""#)
                && out.contains("<abbr>"),
            "{out}"
        );
    }
}
