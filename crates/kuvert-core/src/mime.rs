//! Builds the RFC 5322 / MIME message of a submission with mail-builder.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::text::Text;

use crate::id::MessageId;
use crate::submission::Submission;
use crate::{Mailbox, Timestamp};

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

/// The message as it will be sent, before DKIM signing. Bcc recipients are not in the headers.
pub fn build(s: &Submission, id: &MessageId, now: Timestamp) -> Vec<u8> {
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
    for (name, value) in &s.headers {
        b = b.header(Cow::Owned(name.clone()), Text::new(value.clone()));
    }
    if let Some(t) = &s.text {
        b = b.text_body(t.clone());
    }
    if let Some(h) = &s.html {
        b = b.html_body(h.clone());
    }
    for a in &s.attachments {
        b = b.attachment(
            a.content_type.clone(),
            a.filename.clone(),
            a.content.clone(),
        );
    }
    b.write_to_vec().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::Attachment;
    use crate::submission::tests::sample;

    #[test]
    fn builds_headers_and_parts() {
        let mut s = sample();
        s.bcc
            .push(Mailbox::parse("hidden@example.org").expect("valid"));
        s.html = Some("<p>Hi</p>".into());
        s.headers.push(("X-Campaign".into(), "spring".into()));
        s.attachments.push(Attachment {
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
