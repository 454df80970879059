//! A Mailgun send's form, as `POST /v3/{domain}/messages` and `messages.mime` read it
//! (`kuvert_http::mailgun::form::urlencoded`, then `messages::read_send`), then
//! `Submission::check` and the MIME message `accept()` would store; or (first byte 2 or 3)
//! an events query (`mailgun::events::EventsQuery`, from parameters or from a page token).
//! Checked:
//! - an events query is refused with a 400, or goes through its token and back unchanged
//!   with a limit from 1 to 300; a token not made by the server is refused, never a panic;
//! - a refused form is a 4xx in Mailgun's shape, never a 5xx;
//! - every `to` of an accepted form is an address the form named, and `o:tag` gives at most
//!   three tags;
//! - a checked submission builds a message with one From, no Bcc, and no bare CR or LF in
//!   its header block: no field can be injected through a value.
#![no_main]

use kuvert_core::Timestamp;
use kuvert_core::id::MessageId;
use kuvert_core::submission::Limits;
use kuvert_http::mailgun::form::urlencoded;
use kuvert_http::mailgun::messages::{MAX_TAGS, read_send};
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else {
        return;
    };
    if mode & 2 == 2 {
        events(body);
        return;
    }
    let form = match urlencoded(body) {
        Ok(f) => f,
        Err(e) => {
            assert!(e.status.is_client_error(), "{e:?}");
            return;
        }
    };
    let send = match read_send(&form, mode & 1 == 1) {
        Ok(s) => s,
        Err(e) => {
            assert!(e.status.is_client_error(), "{e:?}");
            return;
        }
    };
    let sub = send.submission;
    assert!(sub.tags.len() <= MAX_TAGS);
    let named: String = form.texts("to").collect::<Vec<_>>().join(",");
    for to in &sub.to {
        assert!(
            named.contains(to.address.local_part()),
            "{} was not named in to",
            to.address
        );
    }
    if sub.check(&Limits::default(), NOW).is_err() {
        return;
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
});

fn events(body: &[u8]) {
    use kuvert_http::mailgun::events::{EventsQuery, MAX_LIMIT};
    if let Ok(token) = std::str::from_utf8(body)
        && let Err(e) = EventsQuery::from_token(token)
    {
        assert_eq!(e.status.as_u16(), 400, "{e:?}");
    }
    let Ok(params) = urlencoded(body) else {
        return;
    };
    match EventsQuery::from_params(&params) {
        Ok(q) => {
            assert!((1..=MAX_LIMIT).contains(&q.limit));
            assert_eq!(EventsQuery::from_token(&q.token()).expect("its own token"), q);
            if let (Some(from), Some(to)) = (q.from, q.to) {
                assert!(from <= to, "the range is in order");
            }
        }
        Err(e) => assert_eq!(e.status.as_u16(), 400, "{e:?}"),
    }
}
