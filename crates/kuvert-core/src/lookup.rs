//! Keyed hashes of personal values (addresses, user e-mails). They let the store find and
//! deduplicate rows without keeping the value in clear, and they are what stays of an address
//! erased under GDPR on a suppression list (such an address stays suppressed).

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct LookupKey([u8; 32]);

impl std::fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupKey(..)")
    }
}

impl LookupKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// A sub-key for one purpose, derived from the instance master key, so that one secret
    /// to keep serves every purpose without reusing a key across them.
    pub fn derive(master: &[u8; 32], purpose: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes any key length");
        mac.update(b"kuvert/derive/v1/");
        mac.update(purpose.as_bytes());
        Self(mac.finalize().into_bytes().into())
    }

    /// Hex HMAC-SHA256 of exactly these bytes, for MACs where case matters (tokens).
    pub fn mac(&self, bytes: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(bytes);
        hex(&mac.finalize().into_bytes())
    }

    /// Hex HMAC-SHA256 of the normalised value (trimmed, lower case).
    pub fn hash(&self, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(value.trim().to_lowercase().as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

/// Whether a MAC given by a client equals the one computed, in time that does not depend on
/// where they differ (only on their lengths, which are public).
pub fn same_mac(given: &str, want: &str) -> bool {
    given.len() == want.len()
        && given
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_keyed_and_case_insensitive() {
        let a = LookupKey::new([1; 32]);
        let b = LookupKey::new([2; 32]);
        assert_eq!(a.hash("Ann@Example.com"), a.hash("ann@example.com "));
        assert_ne!(a.hash("ann@example.com"), b.hash("ann@example.com"));
        assert_eq!(a.hash("x").len(), 64);
    }
}
