//! Tracking tokens and link rewriting (`kuvert_core::tracking`, `kuvert_mail::tracking`). Checked:
//! - `token(key, account, recipient, link)` reads back as itself with its key, is URL-safe,
//!   and reads as nothing with another key;
//! - any string that `parse_token` takes is a genuine token: the token made of what it read
//!   is that very string (arbitrary input, and a genuine token with one byte changed, cut
//!   short or grown);
//! - the same of double opt-in's confirmation links (`kuvert_core::optin`): any string
//!   `parse_token` takes is the genuine link of what it read, not yet expired;
//! - `rewrite_links` only hands out http(s) links without control characters, at most
//!   `MAX_TRACKED_LINKS`, returns its input unchanged when it rewrote nothing or when each
//!   link is rewritten to itself, and takes time linear in the size of the HTML (the input
//!   repeated to 256 KiB must take well under a quarter of a second of CPU).
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kuvert_core::id::{AccountId, RecipientId};
use kuvert_core::lookup::LookupKey;
use kuvert_core::tracking::{Link, Token, parse_token, token};
use kuvert_mail::tracking::{MAX_TRACKED_LINKS, rewrite_links};
use libfuzzer_sys::fuzz_target;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

fuzz_target!(|input: &[u8]| {
    let key = LookupKey::new([7; 32]);
    let text = String::from_utf8_lossy(input);

    // Whatever parses is genuine.
    genuine_or_nothing(&key, &text);

    // A token made from the input: ids of the right shape, the rest of the input as URL.
    let id = |prefix: &str, salt: u8| {
        let mut s = format!("{prefix}_");
        for i in 0..26 {
            let b = input.get(i).copied().unwrap_or(0);
            s.push(ALPHABET[usize::from(b.wrapping_add(salt).wrapping_mul(31) % 32)] as char);
        }
        s
    };
    let account = AccountId::from_string(id("acc", 0));
    let recipient = RecipientId::from_string(id("rcp", 1));
    let link = match input.first().map_or(0, |b| b % 3) {
        0 => Link::Click(text.get(1..).unwrap_or_default().to_owned()),
        1 => Link::Open,
        _ => Link::Unsubscribe,
    };
    let t = token(&key, &account, &recipient, &link);
    assert!(
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "URL-safe: {t}"
    );
    let want = Token {
        account: account.clone(),
        recipient: recipient.clone(),
        link: link.clone(),
    };
    assert_eq!(parse_token(&key, &t), Some(want));
    assert_eq!(parse_token(&LookupKey::new([8; 32]), &t), None);

    // The genuine token changed: one byte replaced, cut short, grown.
    if let Some(&b) = input.last() {
        let mut bytes = t.clone().into_bytes();
        let at = usize::from(b) * 7 % bytes.len();
        bytes[at] = ALPHABET[usize::from(b) % 32];
        genuine_or_nothing(&key, &String::from_utf8_lossy(&bytes));
        genuine_or_nothing(&key, &t[..at]);
        genuine_or_nothing(
            &key,
            &format!("{t}{}", char::from(ALPHABET[usize::from(b) % 32])),
        );
    }
    // Ids of any shape: what reads back is still genuine.
    if let Some(split) = text.find(' ') {
        let odd = token(
            &key,
            &AccountId::from_string(text[..split].to_owned()),
            &RecipientId::from_string(text[split + 1..].to_owned()),
            &link,
        );
        genuine_or_nothing(&key, &odd);
    }

    confirmation_links(&key, input, &text);
    links(&text);
});

fn confirmation_links(key: &LookupKey, input: &[u8], text: &str) {
    use kuvert_core::Timestamp;
    use kuvert_core::id::{ContactId, ListId};
    use kuvert_core::optin::{Confirmation, parse_token, token};
    let now = Timestamp(1_800_000_000_000);
    let genuine = |s: &str| {
        if let Some(c) = parse_token(key, s, now) {
            assert_eq!(token(key, &c), s);
            assert!(c.expires > now);
            assert!(ListId::looks_like(c.list.as_str()));
            assert!(ContactId::looks_like(c.contact.as_str()));
        }
    };
    genuine(text);
    let id = |prefix: &str, salt: u8| {
        let mut s = format!("{prefix}_");
        for i in 0..26 {
            let b = input.get(i).copied().unwrap_or(0);
            s.push(ALPHABET[usize::from(b.wrapping_add(salt).wrapping_mul(17) % 32)] as char);
        }
        s
    };
    let c = Confirmation {
        account: AccountId::from_string(id("acc", 0)),
        list: ListId::from_string(id("lst", 1)),
        contact: ContactId::from_string(id("con", 2)),
        expires: Timestamp(now.0 + i64::from(input.first().copied().unwrap_or(1)) - 128),
    };
    let t = token(key, &c);
    let want = (c.expires > now).then(|| c.clone());
    assert_eq!(parse_token(key, &t, now), want);
    assert_eq!(parse_token(&LookupKey::new([8; 32]), &t, now), None);
    if let Some(&b) = input.last() {
        let mut bytes = t.clone().into_bytes();
        let at = usize::from(b) * 7 % bytes.len();
        bytes[at] = ALPHABET[usize::from(b) % 32];
        genuine(&String::from_utf8_lossy(&bytes));
        genuine(&t[..at]);
    }
}

fn genuine_or_nothing(key: &LookupKey, s: &str) {
    if let Some(t) = parse_token(key, s) {
        assert_eq!(token(key, &t.account, &t.recipient, &t.link), s);
        assert!(AccountId::looks_like(t.account.as_str()));
        assert!(RecipientId::looks_like(t.recipient.as_str()));
    }
}

fn links(html: &str) {
    let mut calls = 0;
    let out = rewrite_links(html, |url| {
        calls += 1;
        let lower = url.to_ascii_lowercase();
        assert!(
            lower.starts_with("http://") || lower.starts_with("https://"),
            "{url:?}"
        );
        assert!(!url.chars().any(char::is_control), "{url:?}");
        format!("https://t.example/c/{calls}")
    });
    assert!(calls <= MAX_TRACKED_LINKS);
    if calls == 0 {
        assert_eq!(out, html, "nothing rewritten, nothing changed");
    }
    // Links rewritten to themselves: an HTML without '&' (whose escaping may differ) comes
    // back as it was.
    if !html.contains('&') {
        assert_eq!(rewrite_links(html, str::to_owned), html);
    }

    // Linear time, checked on the first input and every 64th (the one input of a rerun is
    // checked): 256 KiB of it must take well under a quarter of a second of CPU. Linear work
    // takes about a millisecond; quadratic work (a search restarted from the same place)
    // takes seconds.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    if !html.is_empty() && RUNS.fetch_add(1, Ordering::Relaxed) % 64 == 0 {
        let big = html.repeat((262_144 / html.len()).max(1));
        let start = cpu_time();
        let _ = rewrite_links(&big, |_| String::new());
        let took = cpu_time() - start;
        assert!(
            took < Duration::from_millis(250),
            "{} bytes took {took:?} of CPU",
            big.len()
        );
    }
}

/// CPU time of this thread, so that a loaded machine does not make a slow run.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
