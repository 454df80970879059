//! A Mailjet send's JSON, as `POST /v3.1/send` reads it (`kuvert_http::mailjet::send::read_request`:
//! `Globals` merged into each message, each message read on its own), then `Submission::check`
//! and the MIME message `accept()` would store. Checked:
//! - a refused request or message is a 4xx error entry in Mailjet's shape (a code, an
//!   identifier), never a panic or a 5xx;
//! - every recipient of an accepted message is an address the request named;
//! - a checked submission builds a message with one From, no Bcc, and no bare CR or LF in
//!   its header block: no field can be injected through a value.
#![no_main]

use kuvert_core::Timestamp;
use kuvert_core::id::MessageId;
use kuvert_core::submission::Limits;
use kuvert_http::mailjet::send::{MAX_MESSAGES, read_request};
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fuzz_target!(|input: &[u8]| {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(input) else {
        return;
    };
    let messages = match read_request(&request) {
        Ok(m) => m,
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e:?}");
            assert!(e.code.starts_with("mj-") || e.code.starts_with("send-"), "{e:?}");
            return;
        }
    };
    assert!(!messages.is_empty() && messages.len() <= MAX_MESSAGES);
    let text = String::from_utf8_lossy(input).to_lowercase();
    for m in messages {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                assert!((400..500).contains(&e.status), "{e:?}");
                assert_eq!(e.identifier.len(), 36, "{e:?}");
                continue;
            }
        };
        let sub = m.submission;
        for r in sub.to.iter().chain(&sub.cc).chain(&sub.bcc) {
            // The JSON may escape characters; the domain's ASCII letters stay as written.
            let domain = r.address.domain().to_lowercase();
            if domain.is_ascii() && !domain.contains('\\') {
                assert!(text.contains(&domain), "{} was not named", r.address);
            }
        }
        if sub.check(&Limits::default(), NOW).is_err() {
            continue;
        }
        let id = MessageId::from_string("msg_01jd0000000000000000000000".into());
        let mime = kuvert_mail::mime::build(&sub, &id, NOW);
        let end = mime
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(mime.len(), |i| i + 2);
        let head = &mime[..end];
        for (i, b) in head.iter().enumerate() {
            if *b == b'\n' {
                assert!(i > 0 && head[i - 1] == b'\r', "a bare LF in the header");
            }
            if *b == b'\r' {
                assert_eq!(head.get(i + 1), Some(&b'\n'), "a bare CR in the header");
            }
        }
        let fields = kuvert_mail::header::parse(&mime);
        assert_eq!(fields.count("from"), 1, "one From");
        assert_eq!(fields.count("bcc"), 0, "no Bcc");
    }
});
