//! Identifiers: a type per kind, so an account id can never be passed where a message id is
//! expected. Ids are a short prefix, a time part (so they sort by creation) and randomness.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::Timestamp;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Crockford-style base32 of the time (10 chars) and 80 random bits (16 chars).
fn generate(prefix: &str, now: Timestamp) -> String {
    let mut s = String::with_capacity(prefix.len() + 27);
    s.push_str(prefix);
    s.push('_');
    let t = now.millis().max(0) as u64;
    for i in (0..10).rev() {
        s.push(ALPHABET[((t >> (i * 5)) & 31) as usize] as char);
    }
    let mut rng = rand::thread_rng();
    for _ in 0..16 {
        s.push(ALPHABET[rng.gen_range(0..32)] as char);
    }
    s
}

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident = $prefix:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            pub fn generate(now: Timestamp) -> Self {
                Self(generate($prefix, now))
            }
            /// Wraps an id read back from storage or a URL. Ids from outside are only looked up,
            /// never trusted, so no further check is needed.
            pub fn from_string(s: String) -> Self {
                Self(s)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Whether `s` has the shape of this kind of id.
            pub fn looks_like(s: &str) -> bool {
                s.strip_prefix($prefix).and_then(|r| r.strip_prefix('_')).is_some_and(|r| {
                    r.len() == 26 && r.bytes().all(|b| ALPHABET.contains(&b))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

ids! {
    AccountId = "acc";
    UserId = "usr";
    ApiKeyId = "key";
    DomainId = "dom";
    MessageId = "msg";
    RecipientId = "rcp";
    EventId = "evt";
    WebhookId = "whk";
    PrivacyRequestId = "prq";
    ContactId = "con";
    ListId = "lst";
    ImportId = "imp";
    SegmentId = "seg";
    TemplateId = "tpl";
    CampaignId = "cmp";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_shape_and_sort_by_time() {
        let a = MessageId::generate(Timestamp(1_000));
        let b = MessageId::generate(Timestamp(2_000));
        assert!(MessageId::looks_like(a.as_str()), "{a}");
        assert!(!AccountId::looks_like(a.as_str()));
        assert!(a < b);
        assert_ne!(MessageId::generate(Timestamp(1_000)), a);
    }
}
