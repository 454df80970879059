//! Sending domains: the DKIM key pair generated for each, and the DNS records its owner must
//! publish to send from it. Checking published records against these is pure; the look-up
//! itself happens in `kuvert-dns`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};

use crate::account::string_enum;

/// Instance-wide names that the records point at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSettings {
    /// The public name of this Kuvert instance: MX of the return-path hosts, target of the
    /// tracking CNAME, and the host SPF authorises.
    pub hostname: String,
    pub dkim_selector: String,
    pub return_path_prefix: String,
    pub tracking_prefix: String,
}

impl Default for DomainSettings {
    fn default() -> Self {
        Self {
            hostname: "mail.kuvert.localhost".into(),
            dkim_selector: "kuvert".into(),
            return_path_prefix: "bounces".into(),
            tracking_prefix: "track".into(),
        }
    }
}

pub struct DkimKeyPair {
    /// PKCS#8 DER; sealed before it is stored.
    pub private_pkcs8_der: Vec<u8>,
    /// SubjectPublicKeyInfo DER in base64: the `p=` tag of the DKIM record.
    pub public_b64: String,
}

/// A fresh RSA-2048 key, the size every large mailbox provider accepts (RFC 8301 asks ≥1024).
pub fn generate_dkim_rsa() -> DkimKeyPair {
    let key =
        RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("2048-bit RSA key generation");
    let private = key.to_pkcs8_der().expect("an RSA key encodes as PKCS#8");
    let public = RsaPublicKey::from(&key)
        .to_public_key_der()
        .expect("an RSA key encodes as SPKI");
    DkimKeyPair {
        private_pkcs8_der: private.as_bytes().to_vec(),
        public_b64: STANDARD.encode(public.as_bytes()),
    }
}

string_enum! {
    /// Whether a domain may send: a sandbox sends without DNS (its mail is captured), a
    /// verified domain has its records published, an unverified one does not send yet.
    DomainState { Verified = "verified", Unverified = "unverified", Sandbox = "sandbox" }
}

string_enum! {
    /// Which purpose a DNS record serves.
    RecordPurpose { Dkim = "dkim", Spf = "spf", ReturnPath = "return_path", Dmarc = "dmarc", Tracking = "tracking" }
}

string_enum! {
    RecordType { Txt = "TXT", Mx = "MX", Cname = "CNAME" }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub purpose: RecordPurpose,
    #[serde(rename = "type")]
    pub record_type: RecordType,
    pub name: String,
    pub value: String,
    /// Required records must be found before the domain may send; the others are advice.
    pub required: bool,
}

impl DnsRecord {
    /// Whether what DNS answered for this record's name and type satisfies it. `found` holds
    /// one entry per record: TXT strings already joined, MX exchanges and CNAME targets as
    /// host names.
    pub fn is_satisfied_by(&self, found: &[String]) -> bool {
        let same_host = |a: &str, b: &str| {
            a.trim_end_matches('.')
                .eq_ignore_ascii_case(b.trim_end_matches('.'))
        };
        match self.purpose {
            RecordPurpose::Dkim => {
                let want = dkim_tag(&self.value, "p");
                found
                    .iter()
                    .any(|txt| dkim_tag(txt, "p").is_some() && dkim_tag(txt, "p") == want)
            }
            RecordPurpose::Spf => {
                let mechanism = self.value.split_whitespace().nth(1).unwrap_or_default();
                found.iter().any(|txt| {
                    let mut words = txt.split_whitespace();
                    words
                        .next()
                        .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
                        && words.any(|w| w.eq_ignore_ascii_case(mechanism))
                })
            }
            RecordPurpose::Dmarc => found
                .iter()
                .any(|txt| txt.trim_start().starts_with("v=DMARC1")),
            RecordPurpose::ReturnPath | RecordPurpose::Tracking => {
                found.iter().any(|h| same_host(h, &self.value))
            }
        }
    }
}

/// The value of one tag of a DKIM record, with folding whitespace removed.
fn dkim_tag(record: &str, tag: &str) -> Option<String> {
    record.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == tag).then(|| v.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

/// The records to publish for `domain`, whose DKIM public key is `public_b64`.
pub fn dns_records(
    domain: &str,
    selector: &str,
    public_b64: &str,
    s: &DomainSettings,
) -> Vec<DnsRecord> {
    let return_path = format!("{}.{domain}", s.return_path_prefix);
    let rec = |purpose, record_type, name: String, value: String, required| DnsRecord {
        purpose,
        record_type,
        name,
        value,
        required,
    };
    vec![
        rec(
            RecordPurpose::Dkim,
            RecordType::Txt,
            format!("{selector}._domainkey.{domain}"),
            format!("v=DKIM1; k=rsa; p={public_b64}"),
            true,
        ),
        // SPF is checked against the MAIL FROM domain, which is the return-path host; with it
        // under the sender's domain, SPF aligns for DMARC (relaxed).
        rec(
            RecordPurpose::Spf,
            RecordType::Txt,
            return_path.clone(),
            format!("v=spf1 a:{} ~all", s.hostname),
            true,
        ),
        rec(
            RecordPurpose::ReturnPath,
            RecordType::Mx,
            return_path,
            s.hostname.clone(),
            true,
        ),
        rec(
            RecordPurpose::Dmarc,
            RecordType::Txt,
            format!("_dmarc.{domain}"),
            format!("v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"),
            false,
        ),
        rec(
            RecordPurpose::Tracking,
            RecordType::Cname,
            format!("{}.{domain}", s.tracking_prefix),
            s.hostname.clone(),
            false,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI schema of an enum lists the texts the API writes, not the variants' names.
    #[test]
    fn enum_schemas_list_the_texts_written() {
        let schema = serde_json::to_value(<RecordType as utoipa::PartialSchema>::schema())
            .expect("a schema");
        let written: Vec<String> = RecordType::ALL
            .iter()
            .map(|t| {
                serde_json::to_value(t)
                    .expect("text")
                    .as_str()
                    .expect("a string")
                    .to_owned()
            })
            .collect();
        assert_eq!(written, ["TXT", "MX", "CNAME"]);
        assert_eq!(schema["enum"], serde_json::json!(written), "{schema}");
    }

    fn records() -> Vec<DnsRecord> {
        dns_records(
            "example.com",
            "kuvert",
            "MIIBIjAN+abc/def==",
            &DomainSettings::default(),
        )
    }

    #[test]
    fn lists_the_records_to_publish() {
        let r = records();
        assert_eq!(r[0].name, "kuvert._domainkey.example.com");
        assert_eq!(r[1].name, "bounces.example.com");
        assert_eq!(r[2].value, "mail.kuvert.localhost");
        assert_eq!(r.iter().filter(|r| r.required).count(), 3);
    }

    #[test]
    fn matches_what_dns_returns() {
        let r = records();
        assert!(r[0].is_satisfied_by(&["v=DKIM1; k=rsa; p=MIIBIjAN+abc/ def==".into()]));
        assert!(!r[0].is_satisfied_by(&["v=DKIM1; k=rsa; p=MIIBIjAN+abc/xxx==".into()]));
        assert!(!r[0].is_satisfied_by(&[]));
        assert!(r[1].is_satisfied_by(&[
            "v=spf1 include:_spf.google.com a:mail.kuvert.localhost -all".into()
        ]));
        assert!(!r[1].is_satisfied_by(&["v=spf1 include:_spf.google.com -all".into()]));
        assert!(r[2].is_satisfied_by(&["MAIL.kuvert.localhost.".into()]));
        assert!(r[3].is_satisfied_by(&["v=DMARC1; p=reject".into()]));
    }

    #[test]
    fn generated_key_is_rsa_2048() {
        let k = generate_dkim_rsa();
        // A 2048-bit SPKI is 294 bytes, 392 base64 characters.
        assert_eq!(k.public_b64.len(), 392);
        assert!(k.private_pkcs8_der.len() > 1100);
    }
}
