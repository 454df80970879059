//! Builds the RFC 5322 / MIME message of a submission with mail-builder.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;

use kuvert_core::id::MessageId;
use kuvert_core::submission::{Body, Submission};
use kuvert_core::{Mailbox, Timestamp};

fn address(m: &Mailbox) -> Address<'static> {
    match &m.name {
        Some(n) => Address::new_address(Some(n.clone()), m.address.to_string()),
        None => Address::new_address(None::<String>, m.address.to_string()),
    }
}

fn list(ms: &[Mailbox]) -> Address<'static> {
    Address::new_list(ms.iter().map(address).collect())
}

/// The `Message-ID` header value Kuvert gives a message: its id at the sender's domain.
pub fn message_id_header(id: &MessageId, from_domain: &str) -> String {
    format!("{id}@{from_domain}")
}

/// The message as it will be sent, before DKIM signing (and, when tracked, before each
/// recipient's links are written in by `tracking::personalise`). Bcc recipients are not in
/// the headers.
pub fn build(s: &Submission, id: &MessageId, now: Timestamp) -> Vec<u8> {
    let parts = match &s.body {
        Body::Raw(raw) => return complete(raw, id, s.from.address.domain(), now),
        Body::Parts(parts) => parts,
    };
    let mut b = MessageBuilder::new()
        .from(address(&s.from))
        .subject(s.subject.clone())
        .date(now.seconds())
        .message_id(message_id_header(id, s.from.address.domain()));
    if !s.to.is_empty() {
        b = b.to(list(&s.to));
    }
    if !s.cc.is_empty() {
        b = b.cc(list(&s.cc));
    }
    if let Some(r) = &s.reply_to {
        b = b.reply_to(address(r));
    }
    for (name, value) in &parts.headers {
        // URL headers go as they are: encoded words would break the URL (RFC 2369).
        if name.eq_ignore_ascii_case("List-Unsubscribe")
            || name.eq_ignore_ascii_case("List-Unsubscribe-Post")
        {
            b = b.header(Cow::Owned(name.clone()), Raw::new(value.clone()));
        } else {
            b = b.header(Cow::Owned(name.clone()), Text::new(value.clone()));
        }
    }
    if let Some(t) = &parts.text {
        b = b.text_body(t.clone());
    }
    if let Some(h) = &parts.html {
        b = b.html_body(h.clone());
    }
    for a in &parts.attachments {
        b = b.attachment(
            a.content_type.clone(),
            a.filename.clone(),
            a.content.clone(),
        );
    }
    b.write_to_vec().expect("writing to a Vec cannot fail")
}

/// A message submitted whole: `Message-ID` and `Date` are added when it has none.
fn complete(raw: &[u8], id: &MessageId, from_domain: &str, now: Timestamp) -> Vec<u8> {
    let head = crate::header::parse(raw);
    let has = |name: &str| head.get(name).is_some();
    let mut out = Vec::with_capacity(raw.len() + 128);
    if !has("message-id") {
        out.extend_from_slice(
            format!("Message-ID: <{}>\r\n", message_id_header(id, from_domain)).as_bytes(),
        );
    }
    if !has("date") {
        out.extend_from_slice(format!("Date: {}\r\n", now.to_rfc2822()).as_bytes());
    }
    out.extend_from_slice(raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_core::submission::Attachment;

    fn parts(s: &mut Submission) -> &mut kuvert_core::submission::Parts {
        s.parts_mut().expect("built from parts")
    }

    fn sample() -> Submission {
        Submission::plain(
            Mailbox::parse("Shop <news@shop.example>").expect("valid"),
            vec![Mailbox::parse("ann@example.com").expect("valid")],
            "Hello",
            "Hi Ann",
        )
    }

    #[test]
    fn a_whole_message_gets_what_it_lacks() {
        let mut s = sample();
        let id = MessageId::generate(Timestamp(1_800_000_000_000));
        s.body = Body::Raw(b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n".to_vec());
        let out = String::from_utf8(build(&s, &id, Timestamp(1_800_000_000_000))).expect("utf-8");
        assert!(out.starts_with(&format!("Message-ID: <{id}@")), "{out}");
        assert!(
            out.contains("\r\nDate: ")
                && out.ends_with("From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"),
            "{out}"
        );
        let raw =
            b"Message-ID: <mine@example.com>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody"
                .to_vec();
        s.body = Body::Raw(raw.clone());
        let out = build(&s, &id, Timestamp(1_800_000_000_000));
        assert_eq!(out, raw, "kept as it is");
    }

    /// Found by the `send_json` fuzz target: a value after a long header name must stay in
    /// its field, not start a field of its own.
    #[test]
    fn a_value_after_the_longest_header_name_stays_in_its_field() {
        let mut s = sample();
        let name = "X-".to_owned() + &"n".repeat(kuvert_core::submission::MAX_HEADER_NAME - 2);
        parts(&mut s)
            .headers
            .push((name.clone(), "From: ceo@victim.example".into()));
        assert!(s.check(&Default::default(), Timestamp(0)).is_ok());
        let raw = String::from_utf8(build(&s, &MessageId::generate(Timestamp(0)), Timestamp(0)))
            .expect("ascii");
        let head = &raw[..raw.find("\r\n\r\n").expect("a header")];
        let froms = head.split("\r\n").filter(|l| l.starts_with("From:"));
        assert_eq!(froms.count(), 1, "{head}");
        assert!(
            head.contains(&format!("{name}: From:\r\n\t ceo@victim.example")),
            "{head}"
        );
    }

    #[test]
    fn builds_headers_and_parts() {
        let mut s = sample();
        s.bcc
            .push(Mailbox::parse("hidden@example.org").expect("valid"));
        parts(&mut s).html = Some("<p>Hi</p>".into());
        parts(&mut s)
            .headers
            .push(("X-Campaign".into(), "spring".into()));
        parts(&mut s).attachments.push(Attachment {
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            content: b"attached".to_vec(),
        });
        let id = MessageId::generate(Timestamp(0));
        let raw = String::from_utf8(build(&s, &id, Timestamp(1_700_000_000_000))).expect("ascii");
        assert!(
            raw.contains("From: \"Shop\" <news@shop.example>\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("To: <ann@example.com>\r\n") || raw.contains("To: ann@example.com\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains(&format!("Message-ID: <{id}@shop.example>")),
            "{raw}"
        );
        assert!(raw.contains("X-Campaign: spring\r\n"));
        assert!(raw.contains("multipart/mixed") && raw.contains("multipart/alternative"));
        assert!(
            !raw.contains("hidden@example.org"),
            "Bcc must not appear in the message"
        );
    }
}
