//! The links of one recipient's copy of a tracked message: the HTML rewritten so that clicks
//! pass through Kuvert, the open pixel, the unsubscribe link, and the template a tracked
//! message is kept as until then.

use base64::Engine as _;
use kuvert_core::id::{AccountId, MessageId, RecipientId};
use kuvert_core::lookup::LookupKey;
use kuvert_core::submission::{Attachment, Submission, TrackingOptions};
use kuvert_core::tracking::{Link, token};
use kuvert_core::{EmailAddress, Mailbox, Timestamp};
use serde::{Deserialize, Serialize};

/// Where one recipient's tracking links point.
pub struct RecipientLinks<'a> {
    pub base_url: &'a str,
    pub key: &'a LookupKey,
    pub account: &'a AccountId,
    pub recipient: &'a RecipientId,
}

impl RecipientLinks<'_> {
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
    pub fn render(&self, id: &MessageId, created: Timestamp, p: &RecipientLinks<'_>) -> Vec<u8> {
        let parse = |a: &str| Mailbox::parse(a).ok();
        let mut s = Submission {
            from: parse(&self.from).unwrap_or_else(|| Mailbox {
                name: None,
                address: EmailAddress::parse("invalid@invalid.invalid").expect("valid"),
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
