//! The links of one recipient's copy of a tracked message: the HTML rewritten so that clicks
//! pass through Kuvert, the open pixel, the unsubscribe link, written into the message's
//! MIME at delivery.

use kuvert_core::id::{AccountId, RecipientId};
use kuvert_core::lookup::LookupKey;
use kuvert_core::tracking::{Link, Tracking, token};
use mail_parser::{MessageParser, PartType};

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

pub use kuvert_core::tracking::UNSUBSCRIBE_PLACEHOLDER;

/// One recipient's copy of a tracked message: the MIME built at acceptance, with the
/// recipient's links written in. Only the text and HTML body parts that change are written
/// again, each with the transfer encoding its new text needs; every other byte (the header,
/// the attachments, the boundaries) stays as built, and the `List-Unsubscribe` fields go first.
/// So content flows one way: built once, stored once, personalised at delivery.
pub fn personalise(mime: &[u8], tracking: Tracking, links: &RecipientLinks<'_>) -> Vec<u8> {
    let unsubscribe = tracking.unsubscribe.then(|| links.url(&Link::Unsubscribe));
    let mut out = Vec::with_capacity(mime.len() + mime.len() / 4 + 512);
    if let Some(u) = &unsubscribe {
        // RFC 8058: one click, by POST, with no further step. Inside the DKIM signature,
        // which is made after this.
        out.extend_from_slice(
            format!(
                "List-Unsubscribe: <{u}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            )
            .as_bytes(),
        );
    }
    let Some(message) = MessageParser::new().parse(mime) else {
        out.extend_from_slice(mime);
        return out;
    };
    let mut bodies: Vec<u32> = message
        .text_body
        .iter()
        .chain(&message.html_body)
        .copied()
        .collect();
    bodies.sort_unstable();
    bodies.dedup();
    let mut copied = 0;
    for id in bodies {
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        let (old, new) = match (&part.body, &unsubscribe) {
            (PartType::Html(html), _) => (
                html,
                html_copy(html, tracking, unsubscribe.as_deref(), links),
            ),
            (PartType::Text(text), Some(u)) => (text, text.replace(UNSUBSCRIBE_PLACEHOLDER, u)),
            _ => continue,
        };
        // A part with nothing to write in stays as it was built, byte for byte.
        if *old == new {
            continue;
        }
        let (start, body, end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        // Parts come in the order of the message; one that does not fits no splice.
        if start < copied || start > body || body > end || end > mime.len() {
            continue;
        }
        out.extend_from_slice(&mime[copied..start]);
        for field in crate::header::parse(&mime[start..body]).fields {
            if !field.is("Content-Transfer-Encoding") {
                out.extend_from_slice(field.raw);
            }
        }
        encode_body(new.as_bytes(), &mut out);
        copied = end;
    }
    out.extend_from_slice(&mime[copied..]);
    out
}

/// The HTML of a recipient's copy: the unsubscribe link filled in, links through the click
/// redirect, the pixel before `</body>`.
fn html_copy(
    html: &str,
    tracking: Tracking,
    unsubscribe: Option<&str>,
    links: &RecipientLinks<'_>,
) -> String {
    let html = match unsubscribe {
        Some(u) => html.replace(UNSUBSCRIBE_PLACEHOLDER, &u.replace('&', "&amp;")),
        None => html.to_owned(),
    };
    let mut html = if tracking.clicks {
        rewrite_links(&html, |url| links.url(&Link::Click(url.to_owned())))
    } else {
        html
    };
    if tracking.opens {
        let pixel = format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0;width:1px;height:1px\">",
            links.url(&Link::Open)
        );
        match find_ci(&html, "</body>") {
            Some(i) => html.insert_str(i, &pixel),
            None => html.push_str(&pixel),
        }
    }
    html
}

/// A body part's `Content-Transfer-Encoding` field, the blank line and the body, encoded as
/// mail-builder encodes the parts it builds (7bit while lines are short and ASCII).
fn encode_body(text: &[u8], out: &mut Vec<u8>) {
    use mail_builder::encoders::base64::base64_encode_mime;
    use mail_builder::encoders::encode::{EncodingType, get_encoding_type};
    use mail_builder::encoders::quoted_printable::quoted_printable_encode;
    let written = match get_encoding_type(text, false, true) {
        EncodingType::Base64 => {
            out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
            base64_encode_mime(text, &mut *out, false)
        }
        EncodingType::QuotedPrintable(_) => {
            out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n");
            quoted_printable_encode(text, &mut *out, true)
        }
        EncodingType::None => {
            out.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n\r\n");
            let mut previous = 0;
            for &b in text {
                if b == b'\n' && previous != b'\r' {
                    out.push(b'\r');
                }
                out.push(b);
                previous = b;
            }
            Ok(0)
        }
    };
    written.expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_core::id::MessageId;
    use kuvert_core::submission::{Attachment, Body, Parts, Submission};
    use kuvert_core::{Mailbox, Timestamp};

    fn built(parts: Parts) -> Vec<u8> {
        let mut s = Submission::plain(
            Mailbox::parse("Shop <news@shop.example>").expect("valid"),
            vec![Mailbox::parse("ann@example.com").expect("valid")],
            "Hello",
            "",
        );
        s.body = Body::Parts(parts);
        crate::mime::build(&s, &MessageId::generate(Timestamp(0)), Timestamp(0))
    }

    fn with_links<T>(f: impl FnOnce(&RecipientLinks<'_>) -> T) -> T {
        let key = LookupKey::new([7; 32]);
        let account = AccountId::from_string("acc_01jd0000000000000000000000".into());
        let recipient = RecipientId::from_string("rcp_01jd0000000000000000000000".into());
        f(&RecipientLinks {
            base_url: "https://t.example",
            key: &key,
            account: &account,
            recipient: &recipient,
        })
    }

    fn attachment(content: &[u8]) -> Attachment {
        Attachment {
            filename: "notes.txt".into(),
            content_type: "text/plain".into(),
            content: content.to_vec(),
        }
    }

    /// With nothing to write in, the copy is the stored message byte for byte, whatever
    /// transfer encoding its parts were given: the splice takes parts where they are.
    #[test]
    fn a_copy_without_links_is_the_message_as_built() {
        let long = format!("<p>{}</p>", "x ".repeat(600));
        for parts in [
            Parts {
                text: Some("Hi Ann\nsecond line".into()),
                ..Parts::default()
            },
            Parts {
                html: Some("<p>Hi</p>".into()),
                ..Parts::default()
            },
            Parts {
                text: Some("Grüße aus Köln, naïve café".into()),
                html: Some(format!("<p>Grüße</p>{long}")),
                attachments: vec![attachment(b"attached {{unsubscribe_url}}")],
                ..Parts::default()
            },
            Parts {
                html: Some("日本語のメール".repeat(40)),
                headers: vec![("X-Campaign".into(), "spring".into())],
                ..Parts::default()
            },
        ] {
            let mime = built(parts);
            let copy = with_links(|l| personalise(&mime, Tracking::default(), l));
            assert_eq!(
                String::from_utf8_lossy(&copy),
                String::from_utf8_lossy(&mime)
            );
        }
    }

    #[test]
    fn a_copy_carries_its_recipients_links_and_nothing_else_changes() {
        let note = b"see {{unsubscribe_url}} and <a href=\"https://a.example/\">x</a>";
        let mime = built(Parts {
            text: Some("Leave: {{unsubscribe_url}}".into()),
            html: Some(
                "<html><body><a href=\"https://a.example/x?y=1&amp;z=2\">A</a> <a href=\"{{unsubscribe_url}}\">leave</a></body></html>"
                    .into(),
            ),
            attachments: vec![attachment(note)],
            ..Parts::default()
        });
        let all = Tracking {
            opens: true,
            clicks: true,
            unsubscribe: true,
        };
        let (copy, unsubscribe, open) = with_links(|l| {
            (
                personalise(&mime, all, l),
                l.url(&Link::Unsubscribe),
                l.url(&Link::Open),
            )
        });
        let text = String::from_utf8_lossy(&copy).into_owned();
        assert!(
            text.starts_with(&format!(
                "List-Unsubscribe: <{unsubscribe}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            )),
            "{text}"
        );
        let parsed = MessageParser::new().parse(&copy).expect("a message");
        assert_eq!(parsed.subject(), Some("Hello"));
        let html = parsed.body_html(0).expect("html").into_owned();
        assert!(html.contains("https://t.example/c/"), "{html}");
        assert!(!html.contains("https://a.example/x"), "{html}");
        assert!(html.contains(&format!("<img src=\"{open}\"")), "{html}");
        assert!(!html.contains(UNSUBSCRIBE_PLACEHOLDER), "{html}");
        let plain = parsed.body_text(0).expect("text").into_owned();
        assert_eq!(plain.trim_end(), format!("Leave: {unsubscribe}"));
        let attached = parsed.attachment(0).expect("the attachment");
        assert_eq!(attached.contents(), note, "attachments stay as they were");
        assert_eq!(
            text.matches("Content-Transfer-Encoding").count(),
            String::from_utf8_lossy(&mime)
                .matches("Content-Transfer-Encoding")
                .count(),
            "one encoding field per part"
        );
    }

    /// A short-lined HTML part goes as 7bit; once its links carry tokens, its lines are too
    /// long for 7bit (mail-builder's rule: 77 characters), and the part is encoded again.
    #[test]
    fn lines_made_long_by_rewriting_are_encoded_again() {
        let mime = built(Parts {
            html: Some("<a href=\"https://a.example/\">a</a>\n".repeat(30)),
            ..Parts::default()
        });
        assert!(String::from_utf8_lossy(&mime).contains("Content-Transfer-Encoding: 7bit"));
        let clicks = Tracking {
            clicks: true,
            ..Tracking::default()
        };
        let copy = with_links(|l| personalise(&mime, clicks, l));
        let text = String::from_utf8_lossy(&copy);
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable") && !text.contains("7bit"),
            "{text}"
        );
        assert!(copy.split(|&b| b == b'\n').all(|l| l.len() <= 78), "{text}");
        let parsed = MessageParser::new().parse(&copy).expect("a message");
        let html = parsed.body_html(0).expect("html");
        assert_eq!(html.matches("https://t.example/c/").count(), 30, "{html}");
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
