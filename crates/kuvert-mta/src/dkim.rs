//! DKIM signing (RFC 6376): rsa-sha256 and ed25519-sha256 (RFC 8463), relaxed/relaxed.
//!
//! Written here rather than taken from mail-auth: signing is a small, fully specified step, and
//! mail-auth would bring a second DNS resolver and crypto stack into the build for it. The
//! tests check every signature with dkimpy, an implementation no one here wrote.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kuvert_core::Timestamp;
use kuvert_core::domain::DkimAlgorithm;
use kuvert_mail::header;
use kuvert_store::DkimPrivate;
use ring::digest::{Context, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

/// Fields named once more in `h=` than they occur ("over-signed"): a verifier then counts a
/// copy added later, say a second From or Subject, as part of what was signed, so adding one
/// breaks the signature.
pub const OVERSIGNED_HEADERS: &[&str] = &["From", "To", "Subject", "List-Unsubscribe"];

/// Header fields signed when present, as the product promises; From always is.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DkimError {
    #[error("the DKIM key {selector:?} of {domain} cannot be read: {reason}")]
    Key {
        domain: String,
        selector: String,
        reason: String,
    },
    #[error("{0} has no DKIM key that may sign")]
    NoKey(String),
}

/// A parsed private key.
enum SigningKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// One key with its selector.
struct Key {
    selector: String,
    key: SigningKey,
}

/// A domain's active keys, parsed once and kept (parsing an RSA key costs more than signing
/// with it), ready to sign: each adds its own signature, so a domain with RSA and Ed25519
/// keys sends mail that receivers who know only RSA still verify (RFC 8463).
///
/// RSA through ring: on these machines it signs about three times as fast as the pure-Rust
/// `rsa` crate and as fast as aws-lc-rs and OpenSSL (`bench/rsa-backends`), and it is
/// already in the build for TLS.
pub struct DkimSigner {
    domain: String,
    keys: Vec<Key>,
    /// For the blinding of each RSA signature.
    rng: SystemRandom,
}

impl DkimSigner {
    /// The signer of `domain` with its keys (PKCS#8 DER); at least one.
    pub fn new(domain: &str, keys: &[DkimPrivate]) -> Result<Self, DkimError> {
        if keys.is_empty() {
            return Err(DkimError::NoKey(domain.to_owned()));
        }
        let keys = keys
            .iter()
            .map(|k| {
                let bad = |e: String| DkimError::Key {
                    domain: domain.to_owned(),
                    selector: k.selector.clone(),
                    reason: e,
                };
                let key = match k.algorithm {
                    DkimAlgorithm::Rsa => SigningKey::Rsa(
                        RsaKeyPair::from_pkcs8(&k.pkcs8_der).map_err(|e| bad(e.to_string()))?,
                    ),
                    DkimAlgorithm::Ed25519 => SigningKey::Ed25519(
                        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&k.pkcs8_der)
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                };
                Ok(Key {
                    selector: k.selector.clone(),
                    key,
                })
            })
            .collect::<Result<_, DkimError>>()?;
        Ok(Self {
            domain: domain.to_ascii_lowercase(),
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// An RSA signer with one key (tests and benchmarks).
    pub fn from_pkcs8_der(domain: &str, selector: &str, der: &[u8]) -> Result<Self, DkimError> {
        Self::new(
            domain,
            &[DkimPrivate {
                selector: selector.to_owned(),
                algorithm: DkimAlgorithm::Rsa,
                pkcs8_der: der.to_vec(),
            }],
        )
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selectors that sign, in the order of their signatures.
    pub fn selectors(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.selector.as_str())
    }

    /// The message with a `DKIM-Signature` field in front for each key.
    pub fn sign(&self, message: &[u8], now: Timestamp) -> Vec<u8> {
        let head = header::parse(message);
        let (fields, body) = (&head.fields, &message[head.body_start..]);
        // Every instance of a signed name, bottom-most first as a verifier takes them; an
        // over-signed name once more, which stands for a field that is not there (it
        // contributes nothing to the hash, RFC 6376 5.4.2).
        let mut names = Vec::new();
        let mut signed = Vec::new();
        for want in SIGNED_HEADERS {
            let present = fields.iter().rev().filter(|f| f.is(want));
            for field in present {
                names.push(*want);
                signed.extend_from_slice(&relaxed_header(field.without_line_end()));
                signed.extend_from_slice(b"\r\n");
            }
            if OVERSIGNED_HEADERS.contains(want) {
                names.push(*want);
            }
        }
        // The body and the fields are hashed once, whatever the number of keys.
        let mut body_hash = Context::new(&SHA256);
        relaxed_body(body, |part| body_hash.update(part));
        let body_hash = B64.encode(body_hash.finish());
        let names = names.join(":");
        let time = now.millis().max(0) / 1000;
        let mut out = Vec::with_capacity(message.len() + 600 * self.keys.len());
        for key in &self.keys {
            let algorithm = match key.key {
                SigningKey::Rsa(_) => "rsa-sha256",
                SigningKey::Ed25519(_) => "ed25519-sha256",
            };
            let value = format!(
                "v=1; a={algorithm}; c=relaxed/relaxed; d={}; s={}; t={time}; h={names}; bh={body_hash}; b=",
                self.domain, key.selector,
            );
            // Folded at tag boundaries: relaxed canonicalisation reads ";\r\n\t" as "; ".
            let folded = value.replace("; ", ";\r\n\t");
            let field = format!("DKIM-Signature: {folded}");
            let mut data = signed.clone();
            data.extend_from_slice(&relaxed_header(field.as_bytes()));
            let signature = match &key.key {
                SigningKey::Rsa(rsa) => {
                    let mut signature = vec![0; rsa.public().modulus_len()];
                    rsa.sign(&RSA_PKCS1_SHA256, &self.rng, &data, &mut signature)
                        .expect("an RSA signature of a buffer the size of the modulus");
                    signature
                }
                // RFC 8463: Ed25519 signs the SHA-256 hash of what RSA would sign.
                SigningKey::Ed25519(ed) => ed
                    .sign(ring::digest::digest(&SHA256, &data).as_ref())
                    .as_ref()
                    .to_vec(),
            };
            let signature = B64.encode(signature);
            out.extend_from_slice(field.as_bytes());
            for (i, chunk) in signature.as_bytes().chunks(72).enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"\r\n\t");
                }
                out.extend_from_slice(chunk);
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(message);
        out
    }
}

/// RFC 6376 §3.4.2: lower-case name, unfolded value, runs of white space as one space, none at
/// the ends of the value or around the colon.
fn relaxed_header(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
    let mut out: Vec<u8> = raw[..colon]
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(u8::to_ascii_lowercase)
        .collect();
    out.push(b':');
    let mut space = false;
    for &b in raw.get(colon + 1..).unwrap_or_default() {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && out.last() != Some(&b':') {
                    out.push(b' ');
                }
                space = false;
                out.push(b);
            }
        }
    }
    out
}

/// RFC 6376 §3.4.4: runs of white space as one space, none at line ends, no empty lines at the
/// end, and a final CRLF unless the body is empty. Given to `emit` in pieces (straight to the
/// hash, no copy of the body); a line with no white space to fold is passed through as it is.
fn relaxed_body(body: &[u8], mut emit: impl FnMut(&[u8])) {
    let mut pending_blank_lines = 0usize;
    let text = body.strip_suffix(b"\r\n").unwrap_or(body);
    if body.is_empty() {
        return;
    }
    let mut canon = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let canonical: &[u8] = if needs_folding(line) {
            canon.clear();
            let mut space = false;
            for &b in line {
                if b == b' ' || b == b'\t' {
                    space = true;
                } else {
                    if space {
                        canon.push(b' ');
                    }
                    space = false;
                    canon.push(b);
                }
            }
            &canon
        } else {
            line
        };
        if canonical.is_empty() {
            pending_blank_lines += 1;
            continue;
        }
        for _ in 0..pending_blank_lines {
            emit(b"\r\n");
        }
        pending_blank_lines = 0;
        emit(canonical);
        emit(b"\r\n");
    }
}

/// Whether relaxed canonicalisation changes this line: a tab, a run of white space, or white
/// space at its end. One pass; most lines of text have none of these.
fn needs_folding(line: &[u8]) -> bool {
    let mut after_space = false;
    for &b in line {
        let space = b == b' ' || b == b'\t';
        if b == b'\t' || (space && after_space) {
            return true;
        }
        after_space = space;
    }
    after_space
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_header_canonicalisation() {
        assert_eq!(
            relaxed_header(b"SubJect :  Hello \r\n\t  World  "),
            b"subject:Hello World"
        );
        assert_eq!(relaxed_header(b"To: a@example.com"), b"to:a@example.com");
    }

    fn relaxed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        relaxed_body(body, |part| out.extend_from_slice(part));
        out
    }

    #[test]
    fn relaxed_body_canonicalisation() {
        // RFC 6376 §3.4.6's example, and the edge cases around the end.
        assert_eq!(relaxed(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed(b""), b"");
        assert_eq!(relaxed(b"\r\n\r\n"), b"");
        assert_eq!(relaxed(b"a"), b"a\r\n");
        assert_eq!(relaxed(b"a\r\n\r\nb\r\n"), b"a\r\n\r\nb\r\n");
        // Only runs of white space and white space at line ends change a line.
        assert_eq!(relaxed(b"a b\r\n"), b"a b\r\n");
        assert_eq!(relaxed(b"a\tb \r\n \r\n"), b"a b\r\n");
        assert_eq!(relaxed(b" a  b\t\r\n"), b" a b\r\n");
    }
}
