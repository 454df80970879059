//! From a message received whole (over SMTP, or Mailgun's `messages.mime`) to the
//! `Submission` that `accept()` takes: the headers say who it is from and how each envelope
//! recipient is addressed; `X-Kuvert-*` headers carry the options the HTTP API has as fields,
//! and are removed, as is any `Bcc`.

use crate::header;
use kuvert_core::submission::{Body, Submission, TrackingOptions};
use std::collections::HashSet;

use kuvert_core::{Mailbox, Timestamp};
use mail_parser::MessageParser;
use serde_json::{Map, Value};

/// A refusal of the message's content: the header at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header}: {message}")]
pub struct ContentError {
    pub header: String,
    pub message: String,
}

fn refuse(header: &str, message: impl Into<String>) -> ContentError {
    ContentError {
        header: header.to_owned(),
        message: message.into(),
    }
}

/// Header fields removed before the message is stored and sent.
fn removed(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("x-kuvert-") || n == "bcc"
}

fn flag(header: &str, v: &str) -> Result<bool, ContentError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(refuse(header, format!("{v:?} is not yes or no"))),
    }
}

/// `raw` with every line ending (CRLF, a lone LF, a lone CR) written CRLF, as SMTP carries
/// it: a message given whole over HTTP often comes with LF alone.
pub fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The submission for `data` (a complete message, CRLF line ends, dot-unstuffed) sent to
/// `rcpt_to`.
pub fn to_submission(data: &[u8], rcpt_to: &[String]) -> Result<Submission, ContentError> {
    let head = header::parse(data);
    // RFC 5322 allows one From. With two, the account's domain would be checked against one
    // while a reader might be shown the other.
    if head.count("from") > 1 {
        return Err(refuse(
            "From",
            "a message has one From header field, not several",
        ));
    }
    // The message as it will be sent: without the option fields and Bcc, nor lines of the
    // header that are no field. Sender, recipients and subject are read from it, not from
    // `data`: what is checked is what recipients get (a field removed can change how the
    // fields around it read).
    let mut kept = Vec::with_capacity(data.len());
    for f in head.fields.iter().filter(|f| !removed(f.name)) {
        kept.extend_from_slice(f.raw);
    }
    kept.extend_from_slice(b"\r\n");
    kept.extend_from_slice(data.get(head.body_start..).unwrap_or_default());
    let parsed = MessageParser::default()
        .parse_headers(&kept)
        .ok_or_else(|| refuse("From", "the message has no header"))?;
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address.as_deref())
        .ok_or_else(|| refuse("From", "the message has no From address"))?;
    let name = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name.as_deref());
    let from = Mailbox::parse(&match name {
        Some(n) if !n.contains(['<', '>', '"', '\r', '\n']) => format!("\"{n}\" <{from}>"),
        _ => from.to_owned(),
    })
    .map_err(|e| refuse("From", e.to_string()))?;
    // Sets: a recipient is looked up in each, so that sorting them is linear however many
    // the envelope and the header name.
    let listed = |list: Option<&mail_parser::Address<'_>>| -> HashSet<String> {
        list.map(|l| {
            l.iter()
                .filter_map(|a| a.address.as_deref())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
    };
    let (to_header, cc_header) = (listed(parsed.to()), listed(parsed.cc()));
    let (mut to, mut cc, mut bcc) = (vec![], vec![], vec![]);
    for r in rcpt_to {
        let m = Mailbox::parse(r).map_err(|e| refuse("RCPT TO", e.to_string()))?;
        let key = r.to_ascii_lowercase();
        if to_header.contains(&key) {
            to.push(m);
        } else if cc_header.contains(&key) {
            cc.push(m);
        } else {
            bcc.push(m);
        }
    }

    let mut sub = Submission {
        from,
        to,
        cc,
        bcc,
        reply_to: None,
        subject: parsed.subject().unwrap_or_default().to_owned(),
        tags: vec![],
        metadata: Map::new(),
        send_at: None,
        tracking: TrackingOptions::default(),
        require_tls: false,
        body: Body::Raw(kept),
    };
    for f in &head.fields {
        let name = f.name.to_ascii_lowercase();
        if !name.starts_with("x-kuvert-") {
            continue;
        }
        let value = f.unfolded();
        match name.as_str() {
            "x-kuvert-tag" => sub.tags.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            ),
            "x-kuvert-track-opens" => sub.tracking.opens = Some(flag(f.name, &value)?),
            "x-kuvert-track-clicks" => sub.tracking.clicks = Some(flag(f.name, &value)?),
            "x-kuvert-require-tls" => sub.require_tls = flag(f.name, &value)?,
            "x-kuvert-send-at" => {
                sub.send_at = Some(Timestamp::parse_rfc3339(&value).ok_or_else(|| {
                    refuse(f.name, "not an RFC 3339 time such as 2026-11-23T10:00:00Z")
                })?);
            }
            "x-kuvert-metadata" => match serde_json::from_str::<Value>(&value) {
                Ok(Value::Object(m)) => sub.metadata = m,
                _ => return Err(refuse(f.name, "not a JSON object")),
            },
            _ => return Err(refuse(f.name, "not an option Kuvert knows")),
        }
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &Submission) -> Vec<u8> {
        match &s.body {
            Body::Raw(raw) => raw.clone(),
            Body::Parts(_) => panic!("a received message is kept whole"),
        }
    }

    #[test]
    fn every_line_ending_becomes_crlf() {
        assert_eq!(crlf(b"a\nb\r\nc\rd\r"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(crlf(b""), b"");
    }

    const MSG: &[u8] = b"From: \"Shop\" <news@shop.example>\r\nTo: Ann <ann@example.com>\r\nCc: bob@example.com\r\nBcc: secret@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-Kuvert-Tag: spring, sale\r\nX-Kuvert-Track-Opens: yes\r\nX-Kuvert-Metadata: {\"order\":\r\n 7}\r\n\r\nHello\r\n";

    #[test]
    fn envelope_recipients_sorted_by_header_and_options_read_then_removed() {
        let rcpts: Vec<String> = ["ann@example.com", "BOB@example.com", "secret@example.com"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = to_submission(MSG, &rcpts).expect("valid");
        assert_eq!(s.from.address.as_str(), "news@shop.example");
        assert_eq!(s.subject, "Grüße");
        let addrs = |l: &[Mailbox]| l.iter().map(|m| m.address.to_string()).collect::<Vec<_>>();
        assert_eq!(
            (addrs(&s.to), addrs(&s.cc), addrs(&s.bcc)),
            (
                vec!["ann@example.com".to_owned()],
                vec!["BOB@example.com".to_owned()],
                vec!["secret@example.com".to_owned()]
            )
        );
        assert_eq!(s.tags, ["spring", "sale"]);
        assert_eq!(s.tracking.opens, Some(true));
        assert_eq!(s.metadata["order"], 7);
        let raw = String::from_utf8(raw(&s)).expect("utf-8");
        assert!(
            !raw.contains("X-Kuvert") && !raw.contains("Bcc:") && !raw.contains("secret@"),
            "{raw}"
        );
        assert!(
            raw.starts_with("From: \"Shop\" <news@shop.example>\r\nTo: Ann")
                && raw.ends_with("\r\n\r\nHello\r\n"),
            "{raw}"
        );
    }

    /// Found by the `message_headers` fuzz target. mail-parser 0.11 reads a `Date` ending in
    /// `+` and a non-digit as running into the next line, so that the field after it is not
    /// seen. Here a line that is no field stood between, and mail-parser found the From; that
    /// line is not sent, and in the message sent the From was hidden. The From is now read
    /// from the message as it is sent.
    #[test]
    fn the_sender_is_read_from_the_message_as_sent() {
        let rcpts = vec!["ann@example.com".to_owned()];
        let msg = b"Date: +c\r\nno field\r\nFrom: a@shop.example\r\n\r\nx\r\n";
        assert_eq!(
            to_submission(msg, &rcpts).expect_err("refused").header,
            "From"
        );
        let msg = b"Subject: s\r\nno field\r\nX-Kuvert-Tag: t\r\nFrom: a@shop.example\r\n\r\nx\r\n";
        let s = to_submission(msg, &rcpts).expect("valid");
        let raw = raw(&s);
        assert_eq!(raw, b"Subject: s\r\nFrom: a@shop.example\r\n\r\nx\r\n");
        let again = to_submission(&raw, &rcpts).expect("valid again");
        assert_eq!((again.from, again.subject), (s.from, s.subject));
    }

    #[test]
    fn bad_options_name_their_header() {
        let rcpts = vec!["ann@example.com".to_owned()];
        let with = |h: &str| {
            to_submission(
                format!("From: a@shop.example\r\n{h}\r\n\r\nx").as_bytes(),
                &rcpts,
            )
        };
        assert_eq!(
            with("X-Kuvert-Track-Opens: maybe")
                .expect_err("refused")
                .header,
            "X-Kuvert-Track-Opens"
        );
        assert_eq!(
            with("X-Kuvert-Send-At: tomorrow")
                .expect_err("refused")
                .header,
            "X-Kuvert-Send-At"
        );
        assert_eq!(
            with("X-Kuvert-Metadata: [1]").expect_err("refused").header,
            "X-Kuvert-Metadata"
        );
        assert_eq!(
            with("X-Kuvert-Frobnicate: 1").expect_err("refused").header,
            "X-Kuvert-Frobnicate"
        );
        assert_eq!(
            with("From: victim@bank.example")
                .expect_err("refused")
                .header,
            "From",
            "a second From"
        );
        assert_eq!(
            to_submission(b"Subject: x\r\n\r\nno from", &rcpts)
                .expect_err("refused")
                .header,
            "From"
        );
    }
}
