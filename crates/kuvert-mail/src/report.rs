//! What mail arriving at a return path says: a delivery status notification (RFC 3464), a
//! feedback report (RFC 5965, ARF), an automatic reply, or nothing Kuvert reads.

use mail_parser::{MessageParser, MimeHeaders};
use serde::Serialize;

use crate::header::{self, Header};

/// Recipient blocks read from one DSN. A real one names the recipients of one message; the
/// rest of a longer one is not read.
pub const MAX_DSN_RECIPIENTS: usize = 1_000;

/// One recipient block of a DSN.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DsnRecipient {
    /// The address, without its `rfc822;` type.
    pub final_recipient: Option<String>,
    pub original_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
    /// The enhanced status code, such as `5.1.1`.
    pub status: Option<String>,
    /// The remote server's words, without the `smtp;` type.
    pub diagnostic: Option<String>,
}

/// What the copy of the original message in a report tells.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Original {
    pub return_path: Option<String>,
    pub message_id: Option<String>,
    pub to: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    Dsn {
        reporting_mta: Option<String>,
        recipients: Vec<DsnRecipient>,
        original: Original,
    },
    Feedback {
        feedback_type: String,
        user_agent: Option<String>,
        original_mail_from: Option<String>,
        original_rcpt_to: Vec<String>,
        original: Original,
    },
    /// Out of office and the like (RFC 3834): nothing to record.
    AutoReply,
    /// Neither a report nor an automatic reply.
    Other,
}

/// The fields of one block (name in lower case, unfolded value), in order.
fn fields(h: &Header<'_>) -> Vec<(String, String)> {
    h.fields
        .iter()
        .map(|f| (f.name.to_ascii_lowercase(), f.unfolded()))
        .collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `rfc822; a@b` or `<a@b>` to `a@b`.
fn address(v: &str) -> String {
    let v = v.split_once(';').map_or(v, |(_, a)| a).trim();
    v.trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

fn original(message: &[u8]) -> Original {
    let f = fields(&header::parse(message));
    Original {
        return_path: field(&f, "return-path")
            .map(address)
            .filter(|a| !a.is_empty()),
        message_id: field(&f, "message-id").map(|m| {
            m.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        }),
        to: field(&f, "to")
            .map(|t| {
                t.split(',')
                    .map(|a| address(a.rsplit('<').next().unwrap_or(a)))
                    .filter(|a| a.contains('@'))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub fn parse(data: &[u8]) -> Report {
    let Some(message) = MessageParser::default().parse(data) else {
        return Report::Other;
    };
    let is_report = message.content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart")
            && c.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if is_report {
        let mut status = None;
        let mut feedback = None;
        let mut orig = Original::default();
        for part in message.parts.iter().skip(1) {
            let Some(ct) = part.content_type() else {
                continue;
            };
            let kind =
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase();
            let text = part.contents();
            match kind.as_str() {
                "message/delivery-status" | "message/global-delivery-status" => status = Some(text),
                "message/feedback-report" => feedback = Some(text),
                "message/rfc822"
                | "text/rfc822-headers"
                | "message/rfc822-headers"
                | "message/global"
                | "message/global-headers" => orig = original(text),
                _ => {}
            }
        }
        if let Some(text) = feedback {
            let f = fields(&header::parse(text));
            return Report::Feedback {
                feedback_type: field(&f, "feedback-type")
                    .unwrap_or("abuse")
                    .to_ascii_lowercase(),
                user_agent: field(&f, "user-agent").map(str::to_owned),
                original_mail_from: field(&f, "original-mail-from").map(address),
                original_rcpt_to: f
                    .iter()
                    .filter(|(n, _)| n == "original-rcpt-to" || n == "removal-recipient")
                    .map(|(_, v)| address(v))
                    .collect(),
                original: orig,
            };
        }
        if let Some(text) = status {
            let mut blocks = header::blocks(text);
            let per_message = blocks.next().map(|b| fields(&b)).unwrap_or_default();
            let recipients = blocks
                .map(|b| {
                    let f = fields(&b);
                    DsnRecipient {
                        final_recipient: field(&f, "final-recipient").map(address),
                        original_recipient: field(&f, "original-recipient").map(address),
                        action: field(&f, "action").unwrap_or_default().to_ascii_lowercase(),
                        status: field(&f, "status")
                            .map(|s| s.split_whitespace().next().unwrap_or_default().to_owned()),
                        diagnostic: field(&f, "diagnostic-code")
                            .map(|d| d.split_once(';').map_or(d, |(_, t)| t).trim().to_owned()),
                    }
                })
                .filter(|r| r.final_recipient.is_some() || r.original_recipient.is_some())
                .take(MAX_DSN_RECIPIENTS)
                .collect();
            return Report::Dsn {
                reporting_mta: field(&per_message, "reporting-mta").map(address),
                recipients,
                original: orig,
            };
        }
    }
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let auto_submitted = header("Auto-Submitted").is_some_and(|v| !v.starts_with("no"));
    let subject = message.subject().unwrap_or_default().to_ascii_lowercase();
    let auto_subject = [
        "out of office",
        "automatic reply",
        "auto:",
        "autoreply",
        "auto-reply",
        "abwesenheit",
        "vacation",
    ]
    .iter()
    .any(|p| subject.starts_with(p));
    if auto_submitted
        || header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("Precedence").is_some_and(|p| p == "auto_reply")
        || auto_subject
    {
        return Report::AutoReply;
    }
    Report::Other
}
