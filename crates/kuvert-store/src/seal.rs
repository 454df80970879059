//! Sealing: encryption at rest of message content, DKIM keys and personal fields.
//!
//! Each account has its own data key; the store keeps it only wrapped by the instance master
//! key. Destroying the wrapped key (setting it to NULL) makes every sealed value of the
//! account unreadable, in the live database and in every backup taken since (crypto-shredding).
//! XChaCha20-Poly1305 is used because its 192-bit random nonces cannot realistically repeat,
//! however many values one account seals.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::StoreError;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
    if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
        return Err(StoreError::Sealing("not a sealed value".into()));
    }
    let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| StoreError::Sealing("authentication failed".into()))
}

/// The instance master key: it only wraps account keys.
pub struct MasterKey(XChaCha20Poly1305);

impl MasterKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(key.into()))
    }

    /// A fresh account key and its wrapped form for storage. The account id is bound in as
    /// associated data, so a wrapped key cannot be moved to another account.
    pub fn new_account_key(&self, account_id: &str) -> (AccountKey, Vec<u8>) {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let wrapped = seal_with(&self.0, account_id.as_bytes(), &key);
        (AccountKey::new(&key, account_id), wrapped)
    }

    pub fn unwrap(&self, account_id: &str, wrapped: &[u8]) -> Result<AccountKey, StoreError> {
        let key = open_with(&self.0, account_id.as_bytes(), wrapped)?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| StoreError::Sealing("wrapped key has the wrong length".into()))?;
        Ok(AccountKey::new(&key, account_id))
    }
}

/// One account's data key.
pub struct AccountKey {
    cipher: XChaCha20Poly1305,
    aad: Vec<u8>,
    /// Keyed hashes of the account's contacts' addresses, and what stays of an erased one:
    /// derived from the data key, so they link nothing across accounts, and mean nothing
    /// once the account's key is destroyed.
    lookup: kuvert_core::lookup::LookupKey,
}

impl AccountKey {
    fn new(key: &[u8; 32], account_id: &str) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            aad: account_id.as_bytes().to_vec(),
            lookup: kuvert_core::lookup::LookupKey::derive(key, "contact-lookup"),
        }
    }
    /// The keyed hash of an address under this account's own key (normalised: trimmed, lower
    /// case).
    pub fn lookup(&self, address: &str) -> String {
        self.lookup.hash(address)
    }
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, &self.aad, plaintext)
    }
    pub fn seal_opt(&self, plaintext: Option<&str>) -> Option<Vec<u8>> {
        plaintext.map(|p| self.seal(p.as_bytes()))
    }
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        open_with(&self.cipher, &self.aad, sealed)
    }
    pub fn open_string(&self, sealed: &[u8]) -> Result<String, StoreError> {
        String::from_utf8(self.open(sealed)?)
            .map_err(|_| StoreError::Sealing("sealed text is not UTF-8".into()))
    }
    pub fn open_opt(&self, sealed: Option<Vec<u8>>) -> Result<Option<String>, StoreError> {
        sealed.map(|s| self.open_string(&s)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let master = MasterKey::new(&[7; 32]);
        let (key, wrapped) = master.new_account_key("acc_a");
        let sealed = key.seal(b"secret body");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        let again = master.unwrap("acc_a", &wrapped).expect("unwraps");
        assert_eq!(again.open(&sealed).expect("opens"), b"secret body");
        assert!(
            master.unwrap("acc_b", &wrapped).is_err(),
            "a wrapped key is bound to its account"
        );
        let (other, _) = master.new_account_key("acc_a");
        assert!(other.open(&sealed).is_err(), "another key cannot open it");
        assert!(MasterKey::new(&[8; 32]).unwrap("acc_a", &wrapped).is_err());
    }
}
