//! A message received over SMTP to its `Submission` (`kuvert_mail::received::to_submission`):
//! header splitting, the one-From rule, the `X-Kuvert-*` options, the sorting of envelope
//! recipients into to, cc and bcc. The first line of the input is the envelope's recipients
//! (separated by spaces); the rest is the message, made as the DATA reader delivers it (CRLF
//! line ends only, no NUL). Checked, for an accepted message:
//! - every envelope recipient is in exactly one of to, cc and bcc;
//! - the message kept has no `Bcc` and no `X-Kuvert-*` field left in its header;
//! - read again, the kept message gives the same sender, recipients, subject and bytes, and
//!   no options: what Kuvert checked is what the recipient gets.
#![no_main]

use kuvert_core::submission::{Body, TrackingOptions};
use kuvert_mail::received::to_submission;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let (head, body) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (&b""[..], input),
    };
    let rcpts: Vec<String> = String::from_utf8_lossy(head)
        .split(' ')
        .filter(|r| !r.is_empty())
        .take(50)
        .map(str::to_owned)
        .collect();
    // As the DATA reader hands it over: CRLF line ends, no bare CR or LF, no NUL.
    let mut data = Vec::with_capacity(body.len() + body.len() / 16);
    for line in body.split(|&b| b == b'\n') {
        data.extend(line.iter().copied().filter(|&b| b != b'\r' && b != 0));
        data.extend_from_slice(b"\r\n");
    }

    let Ok(s) = to_submission(&data, &rcpts) else {
        return;
    };
    assert_eq!(s.to.len() + s.cc.len() + s.bcc.len(), rcpts.len());
    let Body::Raw(raw) = s.body.clone() else {
        panic!("a received message is kept whole");
    };
    for name in header_names(&raw) {
        let n = name.to_ascii_lowercase();
        assert!(n != "bcc" && !n.starts_with("x-kuvert-"), "{name:?} kept");
    }

    let again = to_submission(&raw, &rcpts).expect("the kept message is accepted again");
    assert_eq!(again.from, s.from);
    assert_eq!((&again.to, &again.cc, &again.bcc), (&s.to, &s.cc, &s.bcc));
    assert_eq!(again.subject, s.subject);
    assert_eq!(again.body, Body::Raw(raw), "kept as it is");
    assert!(again.tags.is_empty() && again.metadata.is_empty());
    assert_eq!(again.tracking, TrackingOptions::default());
    assert!(again.send_at.is_none() && !again.require_tls);
});

/// The names of the header fields of `raw`, up to its first empty line (a name that is not
/// UTF-8 names no field anyone reads).
fn header_names(raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if let Ok(name) = std::str::from_utf8(&line[..colon]) {
                out.push(name.trim().to_owned());
            }
        }
    }
    out
}
