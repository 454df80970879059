//! A `Submission` is what every entrance (HTTP, SMTP, compatibility APIs, campaigns) turns its
//! request into. Its rules live here, once.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::{Mailbox, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// Per-message tracking choices; `None` means "the account's or domain's default".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackingOptions {
    pub opens: Option<bool>,
    pub clicks: Option<bool>,
    /// `List-Unsubscribe` (one click, RFC 8058) and the `{{unsubscribe_url}}` placeholder.
    pub unsubscribe: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub subject: String,
    pub body: Body,
    pub tags: Vec<String>,
    pub metadata: Map<String, Value>,
    pub send_at: Option<Timestamp>,
    pub tracking: TrackingOptions,
    pub require_tls: bool,
}

/// What a message says: parts Kuvert builds into MIME, or a message that came whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Parts(Parts),
    /// A complete RFC 5322 message (SMTP submission), sent as it is but for `Message-ID` and
    /// `Date`, added when missing; to, cc and bcc are the envelope's recipients, sorted by
    /// the header they appear in.
    Raw(Vec<u8>),
}

/// The parts of a message Kuvert builds: at least a text or an html body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parts {
    pub text: Option<String>,
    pub html: Option<String>,
    /// The caller's own header fields (`X-Campaign: spring`).
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_recipients: usize,
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_recipients: 1000,
            max_message_bytes: 25 * 1024 * 1024,
        }
    }
}

/// What is wrong with a submission, and which field is at fault.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct SubmissionError {
    pub kind: SubmissionErrorKind,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmissionErrorKind {
    /// A value breaks a rule (bad address, header injection, ...).
    Invalid,
    TooManyRecipients,
    TooLarge,
}

impl SubmissionError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: SubmissionErrorKind::Invalid,
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// Headers Kuvert writes itself; a caller setting them would corrupt the message or its routing.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "sender",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "dkim-signature",
    "return-path",
    "received",
];

/// The longest name of a caller's header. mail-builder (0.4) starts the value of a field
/// whose name and ": " fill 76 columns on a line of its own without folding whitespace, so
/// that the value would be a field of its own (`From: ...`): the name must leave it room.
pub const MAX_HEADER_NAME: usize = 73;
pub const MAX_TAGS: usize = 10;
const MAX_METADATA_BYTES: usize = 10 * 1024;
/// How far ahead a message may be scheduled (Mailgun allows 3 days, Mailjet 7).
pub const MAX_SCHEDULE_DAYS: i64 = 7;

fn no_line_breaks(field: &str, value: &str) -> Result<(), SubmissionError> {
    if value.contains(['\r', '\n']) {
        return Err(SubmissionError::invalid(
            field,
            format!("{field} must not contain a line break (CR or LF)"),
        ));
    }
    Ok(())
}

impl Submission {
    pub fn recipient_count(&self) -> usize {
        self.to.len() + self.cc.len() + self.bcc.len()
    }

    /// Checks every rule that needs no look-up. The size limit is checked on the built MIME.
    pub fn check(&self, limits: &Limits, now: Timestamp) -> Result<(), SubmissionError> {
        let n = self.recipient_count();
        if n == 0 {
            return Err(SubmissionError::invalid(
                "to",
                "at least one recipient is needed in to, cc or bcc",
            ));
        }
        if n > limits.max_recipients {
            return Err(SubmissionError {
                kind: SubmissionErrorKind::TooManyRecipients,
                field: Some("to".into()),
                message: format!(
                    "{n} recipients; at most {} are allowed per message",
                    limits.max_recipients
                ),
            });
        }
        no_line_breaks("subject", &self.subject)?;
        if let Body::Parts(parts) = &self.body {
            parts.check()?;
        }
        self.check_tags_and_schedule(now)
    }
}

impl Parts {
    /// A body, valid header fields of the caller's own, attachments with a name and a type.
    fn check(&self) -> Result<(), SubmissionError> {
        if self.text.is_none() && self.html.is_none() {
            return Err(SubmissionError::invalid(
                "text",
                "a message needs a text or an html body",
            ));
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let field = format!("headers.{name}");
            if name.is_empty()
                || name.len() > MAX_HEADER_NAME
                || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
            {
                return Err(SubmissionError::invalid(
                    format!("headers[{i}]"),
                    format!(
                        "{name:?} is not a valid header name (at most {MAX_HEADER_NAME} printable ASCII characters without ':' or spaces)"
                    ),
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(SubmissionError::invalid(
                    field,
                    format!(
                        "{name} is set by Kuvert and cannot be given as a header; use the field of that name"
                    ),
                ));
            }
            no_line_breaks(&field, value)?;
        }
        for (i, a) in self.attachments.iter().enumerate() {
            no_line_breaks(&format!("attachments[{i}].filename"), &a.filename)?;
            let ct = &a.content_type;
            let valid_ct = ct.split_once('/').is_some_and(|(t, s)| {
                let token = |x: &str| {
                    !x.is_empty()
                        && x.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                };
                token(t) && token(s.split(';').next().unwrap_or_default().trim())
            });
            if !valid_ct || ct.contains(['\r', '\n']) {
                return Err(SubmissionError::invalid(
                    format!("attachments[{i}].content_type"),
                    format!("{ct:?} is not a MIME type like application/pdf"),
                ));
            }
            // A container type would make the file's bytes parts of the message: a boundary
            // of the caller's choosing could reach into the text and HTML around it.
            let top = ct.split('/').next().unwrap_or_default();
            if top.eq_ignore_ascii_case("multipart") || top.eq_ignore_ascii_case("message") {
                return Err(SubmissionError::invalid(
                    format!("attachments[{i}].content_type"),
                    format!(
                        "{ct:?} is a container, not a file; attach it as application/octet-stream"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Submission {
    fn check_tags_and_schedule(&self, now: Timestamp) -> Result<(), SubmissionError> {
        if self.tags.len() > MAX_TAGS {
            return Err(SubmissionError::invalid(
                "tags",
                format!("at most {MAX_TAGS} tags per message"),
            ));
        }
        for (i, t) in self.tags.iter().enumerate() {
            if t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                return Err(SubmissionError::invalid(
                    format!("tags[{i}]"),
                    "a tag is 1 to 128 letters, digits, '-', '_', '.' or ':'",
                ));
            }
        }
        if serde_json::to_vec(&self.metadata).map_or(0, |v| v.len()) > MAX_METADATA_BYTES {
            return Err(SubmissionError::invalid(
                "metadata",
                "metadata may hold at most 10 KB of JSON",
            ));
        }
        if let Some(at) = self.send_at
            && at > now.plus_days(MAX_SCHEDULE_DAYS)
        {
            return Err(SubmissionError::invalid(
                "send_at",
                format!("a message can be scheduled at most {MAX_SCHEDULE_DAYS} days ahead"),
            ));
        }
        Ok(())
    }
}

impl Submission {
    /// A plain-text message with nothing else set: Kuvert's own notices, tests, benchmarks.
    pub fn plain(from: Mailbox, to: Vec<Mailbox>, subject: &str, text: &str) -> Self {
        Self {
            from,
            to,
            cc: vec![],
            bcc: vec![],
            reply_to: None,
            subject: subject.into(),
            body: Body::Parts(Parts {
                text: Some(text.into()),
                ..Parts::default()
            }),
            tags: vec![],
            metadata: Map::new(),
            send_at: None,
            tracking: TrackingOptions::default(),
            require_tls: false,
        }
    }

    /// The parts of a message Kuvert builds; `None` for one that came whole.
    pub fn parts(&self) -> Option<&Parts> {
        match &self.body {
            Body::Parts(p) => Some(p),
            Body::Raw(_) => None,
        }
    }

    pub fn parts_mut(&mut self) -> Option<&mut Parts> {
        match &mut self.body {
            Body::Parts(p) => Some(p),
            Body::Raw(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Submission {
        Submission::plain(
            Mailbox::parse("Shop <news@shop.example>").expect("valid"),
            vec![Mailbox::parse("ann@example.com").expect("valid")],
            "Hello",
            "Hi Ann",
        )
    }

    fn parts(s: &mut Submission) -> &mut Parts {
        s.parts_mut().expect("built from parts")
    }

    fn field_of(s: &Submission) -> Option<String> {
        s.check(&Limits::default(), Timestamp(0))
            .err()
            .and_then(|e| e.field)
    }

    #[test]
    fn a_plain_message_passes() {
        assert_eq!(sample().check(&Limits::default(), Timestamp(0)), Ok(()));
    }

    #[test]
    fn line_breaks_in_headers_are_refused() {
        let mut s = sample();
        s.subject = "Hi\r\nBcc: victim@example.com".into();
        assert_eq!(field_of(&s).as_deref(), Some("subject"));
        let mut s = sample();
        parts(&mut s)
            .headers
            .push(("X-Campaign".into(), "a\nb".into()));
        assert_eq!(field_of(&s).as_deref(), Some("headers.X-Campaign"));
        let mut s = sample();
        parts(&mut s).headers.push(("Bad Name".into(), "v".into()));
        assert_eq!(field_of(&s).as_deref(), Some("headers[0]"));
        let mut s = sample();
        parts(&mut s)
            .headers
            .push(("bcc".into(), "x@y.example".into()));
        assert_eq!(field_of(&s).as_deref(), Some("headers.bcc"));
    }

    /// Found by the `send_json` fuzz target: with a name of 74 to 76 characters, the value
    /// became a header field of its own in the built message.
    #[test]
    fn a_header_name_leaves_room_for_its_value() {
        let mut s = sample();
        parts(&mut s).headers.push((
            "X-".to_owned() + &"n".repeat(MAX_HEADER_NAME - 2),
            "v".into(),
        ));
        assert_eq!(field_of(&s), None);
        parts(&mut s).headers[0].0.push('n');
        assert_eq!(field_of(&s).as_deref(), Some("headers[0]"));
    }

    #[test]
    fn an_attachment_is_a_file_not_a_container() {
        for (ct, refused) in [
            ("application/pdf", false),
            ("text/plain; charset=utf-8", false),
            ("multipart/mixed; boundary=x", true),
            ("Message/rfc822", true),
        ] {
            let mut s = sample();
            parts(&mut s).attachments.push(Attachment {
                filename: "a".into(),
                content_type: ct.into(),
                content: b"--x".to_vec(),
            });
            let field = field_of(&s);
            assert_eq!(
                field.as_deref() == Some("attachments[0].content_type"),
                refused,
                "{ct}"
            );
        }
    }

    #[test]
    fn recipient_limit_is_inclusive() {
        let mut s = sample();
        s.to = vec![s.to[0].clone(); 1000];
        assert!(s.check(&Limits::default(), Timestamp(0)).is_ok());
        s.bcc.push(s.to[0].clone());
        let e = s
            .check(&Limits::default(), Timestamp(0))
            .expect_err("refused");
        assert_eq!(e.kind, SubmissionErrorKind::TooManyRecipients);
    }

    #[test]
    fn other_rules() {
        let mut s = sample();
        s.to.clear();
        assert_eq!(field_of(&s).as_deref(), Some("to"));
        let mut s = sample();
        parts(&mut s).text = None;
        assert_eq!(field_of(&s).as_deref(), Some("text"));
        let mut s = sample();
        s.tags = vec!["spring sale".into()];
        assert_eq!(field_of(&s).as_deref(), Some("tags[0]"));
        let mut s = sample();
        s.send_at = Some(Timestamp(0).plus_days(8));
        assert_eq!(field_of(&s).as_deref(), Some("send_at"));
        let mut s = sample();
        parts(&mut s).attachments.push(Attachment {
            filename: "a.pdf".into(),
            content_type: "pdf".into(),
            content: vec![],
        });
        assert_eq!(field_of(&s).as_deref(), Some("attachments[0].content_type"));
    }
}
