//! VERP return paths (MAIL FROM): `b-ID-MAC@RETURN_PATH_HOST`. The id names the recipient (or,
//! for a transaction with several recipients, the message), so that a bounce arriving later as
//! mail is matched to it; the MAC, keyed by a secret of the instance, makes the address
//! impossible to forge.

use kuvert_core::id::{MessageId, RecipientId};
use kuvert_core::lookup::{LookupKey, same_mac};

/// What a return path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerpTarget {
    Recipient(RecipientId),
    Message(MessageId),
}

impl VerpTarget {
    fn id(&self) -> &str {
        match self {
            Self::Recipient(r) => r.as_str(),
            Self::Message(m) => m.as_str(),
        }
    }
}

/// Hex digits of the MAC kept in the address: 64 bits.
const MAC_LEN: usize = 16;

fn mac(key: &LookupKey, id: &str) -> String {
    key.hash(&format!("verp:{id}"))[..MAC_LEN].to_owned()
}

/// The return path for `target` on `host` (the domain's return-path host).
pub fn encode(key: &LookupKey, target: &VerpTarget, host: &str) -> String {
    let id = target.id();
    format!("b-{id}-{}@{host}", mac(key, id))
}

/// The target of a return path, if its MAC checks.
pub fn decode(key: &LookupKey, address: &str) -> Option<VerpTarget> {
    // Relays may change the case of a local part; everything here is lower case.
    let local = address.rsplit_once('@')?.0.to_ascii_lowercase();
    let (id, given) = local.strip_prefix("b-")?.rsplit_once('-')?;
    let id = id.to_owned();
    let want = mac(key, &id);
    // Compared in constant time: the MAC is the secret part of the address.
    if !same_mac(given, &want) {
        return None;
    }
    if RecipientId::looks_like(&id) {
        Some(VerpTarget::Recipient(RecipientId::from_string(id)))
    } else if MessageId::looks_like(&id) {
        Some(VerpTarget::Message(MessageId::from_string(id)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_core::Timestamp;

    #[test]
    fn round_trip_and_forgery() {
        let key = LookupKey::new([7; 32]);
        let rcpt = VerpTarget::Recipient(RecipientId::generate(Timestamp(1_800_000_000_000)));
        let addr = encode(&key, &rcpt, "bounces.example.com");
        assert!(
            addr.starts_with("b-rcp_") && addr.ends_with("@bounces.example.com"),
            "{addr}"
        );
        assert_eq!(decode(&key, &addr), Some(rcpt.clone()));
        assert_eq!(
            decode(&key, &addr.to_uppercase()),
            Some(rcpt),
            "case folded by a relay"
        );
        let msg = VerpTarget::Message(MessageId::generate(Timestamp(1_800_000_000_000)));
        assert_eq!(decode(&key, &encode(&key, &msg, "b.example")), Some(msg));

        // Another instance's key, a changed id, a changed MAC: all refused.
        assert_eq!(decode(&LookupKey::new([8; 32]), &addr), None);
        let (local, host) = addr.split_once('@').expect("@");
        let flipped = format!(
            "{}{}@{host}",
            &local[..local.len() - 1],
            if local.ends_with('0') { '1' } else { '0' }
        );
        assert_eq!(decode(&key, &flipped), None);
        assert_eq!(decode(&key, "b-rcp_x-0000000000000000@h"), None);
        assert_eq!(decode(&key, "postmaster@h"), None);
    }
}
