//! API keys: random, shown once, stored only as a SHA-256 hash. A key has 256 bits of
//! entropy, so a fast hash is enough and keeps authentication cheap on every request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::account::string_enum;
use crate::lookup::hex;

string_enum! {
    /// `full` may use every endpoint; `send` only the sending ones.
    Scope { Full = "full", Send = "send" }
}

/// A newly made key: the secret goes to the user once, the hash to the store.
#[derive(Debug)]
pub struct NewApiKey {
    pub secret: String,
    pub hash: String,
    /// The first characters, kept in clear so users can tell their keys apart.
    pub prefix: String,
}

pub const KEY_PREFIX: &str = "kv_";

impl NewApiKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        Self {
            hash: hash_key(&secret),
            prefix: secret[..10].to_owned(),
            secret,
        }
    }
}

pub fn hash_key(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_matches() {
        let a = NewApiKey::generate();
        let b = NewApiKey::generate();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(KEY_PREFIX) && a.secret.len() == 46);
        assert_eq!(hash_key(&a.secret), a.hash);
        assert!(a.secret.starts_with(&a.prefix));
    }
}
