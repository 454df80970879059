//! What a permanent refusal means for the address ([`BounceClass`]), read from the reply.

use kuvert_core::event::Bounce;
pub use kuvert_core::event::BounceClass;

use crate::smtp::Reply;

/// Phrases of servers that send no enhanced code (or a vague one).
const HARD_PHRASES: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "unknown recipient",
    "recipient unknown",
    "no such recipient",
    "does not exist",
    "mailbox not found",
    "invalid recipient",
    "address rejected: user",
    "no mailbox",
    "account disabled",
    "account has been disabled",
];
const POLICY_PHRASES: &[&str] = &[
    "spam",
    "blocked",
    "blacklist",
    "blocklist",
    "denylist",
    "policy",
    "reputation",
    "rejected due to",
    "not authorized",
    "dmarc",
    "spf",
    "dkim",
];

/// The event details of a permanent refusal: its class, enhanced code and words. Where it
/// came from (the MX, a report) is the caller's to add.
pub fn bounce(reply: &Reply) -> Bounce {
    Bounce {
        attempt: None,
        class: classify(reply),
        code: reply.enhanced_string(),
        reply: reply.to_string(),
        mx: None,
        source: None,
        reporting_mta: None,
    }
}

/// Classifies a 5xx reply by its enhanced code (RFC 3463), then by its words.
pub fn classify(reply: &Reply) -> BounceClass {
    match reply.enhanced {
        // Bad destination mailbox or system: 5.1.1 user unknown, 5.1.2 no such domain,
        // 5.1.3 bad address syntax, 5.1.6 moved, 5.1.10 null MX.
        Some((5, 1, 1 | 2 | 3 | 6 | 10)) => return BounceClass::Hard,
        // 5.2.1: mailbox disabled.
        Some((5, 2, 1)) => return BounceClass::Hard,
        Some((5, 7, _)) => return BounceClass::Policy,
        _ => {}
    }
    let text = reply.text.to_ascii_lowercase();
    if HARD_PHRASES.iter().any(|p| text.contains(p)) {
        BounceClass::Hard
    } else if POLICY_PHRASES.iter().any(|p| text.contains(p)) {
        BounceClass::Policy
    } else {
        BounceClass::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(line: &str) -> Reply {
        Reply::parse(&[line.to_owned()]).expect("reply")
    }

    #[test]
    fn by_code_then_by_words() {
        let cases = [
            (
                "550 5.1.1 The email account that you tried to reach does not exist",
                BounceClass::Hard,
            ),
            (
                "550 5.2.1 The email account that you tried to reach is disabled",
                BounceClass::Hard,
            ),
            (
                "556 5.1.10 Recipient address has null MX",
                BounceClass::Hard,
            ),
            ("550 5.7.1 Message rejected as spam", BounceClass::Policy),
            (
                "554 5.7.26 Unauthenticated email is not accepted (DMARC)",
                BounceClass::Policy,
            ),
            ("552 5.2.2 Mailbox full", BounceClass::Other),
            (
                "550 Requested action not taken: mailbox unavailable, user unknown",
                BounceClass::Hard,
            ),
            ("554 Your IP is listed on a blocklist", BounceClass::Policy),
            ("554 Transaction failed", BounceClass::Other),
        ];
        for (line, want) in cases {
            assert_eq!(classify(&reply(line)), want, "{line}");
        }
        assert!(BounceClass::Hard.suppresses() && !BounceClass::Policy.suppresses());
    }
}
