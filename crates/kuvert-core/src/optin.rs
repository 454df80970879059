//! Double opt-in: the signed link of a confirmation mail. It names the account, the list and
//! the contact, and when it stops working; nothing else (the address is not in it, so a
//! forwarded link leaks none). Only its MAC makes it good: a forged or altered one, or one
//! past its time, names nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use crate::Timestamp;
use crate::id::{AccountId, ContactId, ListId};
use crate::lookup::{LookupKey, same_mac};

/// How long a confirmation link works.
pub const LINK_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// What a genuine confirmation link asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmation {
    pub account: AccountId,
    pub list: ListId,
    pub contact: ContactId,
    pub expires: Timestamp,
}

/// Hex digits of MAC in a link: 128 bits (a link confirms consent, so more than a tracking
/// link's 96).
const MAC_LEN: usize = 32;

fn mac(key: &LookupKey, encoded: &str) -> String {
    let mut input = Vec::with_capacity(encoded.len() + 9);
    input.extend_from_slice(b"optin/v1:");
    input.extend_from_slice(encoded.as_bytes());
    key.mac(&input)[..MAC_LEN].to_owned()
}

/// `PAYLOAD.MAC`, URL-safe; the payload is `acc_..|lst_..|con_..|EXPIRES`.
pub fn token(key: &LookupKey, c: &Confirmation) -> String {
    let payload = format!("{}|{}|{}|{}", c.account, c.list, c.contact, c.expires.0);
    let encoded = B64URL.encode(payload.as_bytes());
    format!("{encoded}.{}", mac(key, &encoded))
}

/// What a link asks for, if its MAC checks and it has not expired at `now`.
pub fn parse_token(key: &LookupKey, token: &str, now: Timestamp) -> Option<Confirmation> {
    let (encoded, given) = token.split_once('.')?;
    if !same_mac(given, &mac(key, encoded)) {
        return None;
    }
    let payload = String::from_utf8(B64URL.decode(encoded).ok()?).ok()?;
    let mut parts = payload.split('|');
    let (account, list, contact, expires) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !AccountId::looks_like(account)
        || !ListId::looks_like(list)
        || !ContactId::looks_like(contact)
    {
        return None;
    }
    let expires = Timestamp(expires.parse().ok()?);
    if expires.0 <= now.0 {
        return None;
    }
    Some(Confirmation {
        account: AccountId::from_string(account.to_owned()),
        list: ListId::from_string(list.to_owned()),
        contact: ContactId::from_string(contact.to_owned()),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(now: i64) -> Confirmation {
        Confirmation {
            account: AccountId::generate(Timestamp(now)),
            list: ListId::generate(Timestamp(now)),
            contact: ContactId::generate(Timestamp(now)),
            expires: Timestamp(now + LINK_LIFETIME_MS),
        }
    }

    #[test]
    fn a_link_names_what_it_was_made_for_until_it_expires() {
        let key = LookupKey::new([7; 32]);
        let c = sample(1_000_000);
        let t = token(&key, &c);
        assert_eq!(parse_token(&key, &t, Timestamp(1_000_000)), Some(c.clone()));
        assert_eq!(
            parse_token(&key, &t, Timestamp(c.expires.0 - 1)),
            Some(c.clone())
        );
        assert_eq!(parse_token(&key, &t, c.expires), None, "expired");
        // Another key, an altered payload, a cut MAC: nothing.
        assert_eq!(
            parse_token(&LookupKey::new([8; 32]), &t, Timestamp(1_000_000)),
            None
        );
        let (payload, mac) = t.split_once('.').expect("a dot");
        let mut other = sample(2_000_000);
        other.expires = Timestamp(i64::MAX);
        let forged = format!(
            "{}.{mac}",
            token(&key, &other).split_once('.').expect("a dot").0
        );
        assert_eq!(parse_token(&key, &forged, Timestamp(1_000_000)), None);
        assert_eq!(
            parse_token(
                &key,
                &format!("{payload}.{}", &mac[..20]),
                Timestamp(1_000_000)
            ),
            None
        );
        assert_eq!(
            parse_token(&key, &t.to_ascii_uppercase(), Timestamp(1_000_000)),
            None
        );
    }

    #[test]
    fn a_tracking_token_is_no_confirmation() {
        let key = LookupKey::new([7; 32]);
        let c = sample(1_000_000);
        let rcpt = crate::id::RecipientId::generate(Timestamp(1_000_000));
        for link in [
            crate::tracking::Link::Open,
            crate::tracking::Link::Unsubscribe,
        ] {
            let t = crate::tracking::token(&key, &c.account, &rcpt, &link);
            assert_eq!(parse_token(&key, &t, Timestamp(1_000_000)), None);
        }
    }
}
