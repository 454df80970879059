//! The body of `POST /v1/messages`, as the route reads it (`kuvert_http::submission_from_json`,
//! the same JSON reading as every route), then `Submission::check`, then the MIME message that
//! `accept()` would store (`kuvert_mail::mime::build`) and, for a tracked message, a
//! recipient's copy (`tracking::personalise`, every link on). Checked:
//! - a refused body is a 400 or 422, never a 5xx;
//! - a checked submission builds a message whose header block ends in CRLF, holds no bare CR
//!   or LF, one From (the submission's), no Bcc, and no header field other than those Kuvert
//!   writes and those the request named: no field can be injected through a value.
#![no_main]

use kuvert_core::Timestamp;
use kuvert_core::id::{AccountId, MessageId, RecipientId};
use kuvert_core::lookup::LookupKey;
use kuvert_core::submission::{Limits, Submission};
use kuvert_core::tracking::Tracking;
use kuvert_mail::tracking::{RecipientLinks, personalise};
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

/// Header fields Kuvert writes itself (at the top of the message).
const OURS: &[&str] = &[
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

fuzz_target!(|input: &[u8]| {
    let s = match kuvert_http::submission_from_json(input) {
        Ok(s) => s,
        Err(e) => {
            assert!(
                e.status == 400 || e.status == 422,
                "{} for {:?}",
                e.status,
                e.message
            );
            return;
        }
    };
    if s.check(&Limits::default(), NOW).is_err() {
        return;
    }
    let id = MessageId::from_string("msg_01jd0000000000000000000000".into());
    let built = kuvert_mail::mime::build(&s, &id, NOW);
    headers_ok(&s, &built);

    {
        let key = LookupKey::new([5; 32]);
        let account = AccountId::from_string("acc_01jd0000000000000000000000".into());
        let recipient = RecipientId::from_string("rcp_01jd0000000000000000000000".into());
        let p = RecipientLinks {
            base_url: "https://t.example",
            key: &key,
            account: &account,
            recipient: &recipient,
        };
        let all = Tracking {
            opens: true,
            clicks: true,
            unsubscribe: true,
        };
        let copy = personalise(&built, all, &p);
        headers_ok(&s, &copy);
    }
});

fn headers_ok(s: &Submission, message: &[u8]) {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block ended by an empty line");
    let head = &message[..end + 2];
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR in the header"),
            b'\n' => assert!(i > 0 && head[i - 1] == b'\r', "bare LF in the header"),
            _ => {}
        }
    }
    let mut froms = 0;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || matches!(line[0], b' ' | b'\t') {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .unwrap_or_else(|| panic!("a header line without a name: {line:?}"));
        let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
        froms += usize::from(name == "from");
        assert!(
            OURS.contains(&name.as_str())
                || s.parts()
                    .is_some_and(|p| p.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name))),
            "an injected header field {name:?}"
        );
    }
    assert_eq!(froms, 1, "one From");
    let parsed = mail_parser::MessageParser::default()
        .parse_headers(message)
        .expect("headers");
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address.as_deref())
        .expect("a From address");
    assert!(
        from.eq_ignore_ascii_case(s.from.address.as_str()),
        "{from:?} is not {}",
        s.from.address
    );
}
