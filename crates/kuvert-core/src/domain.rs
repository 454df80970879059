//! Sending domains: the DKIM key pair generated for each, and the DNS records its owner must
//! publish to send from it. Checking published records against these is pure; the look-up
//! itself happens in `kuvert-dns`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};

use crate::Timestamp;
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
    /// How long a replaced DKIM key's record stays listed after the new key begins to sign:
    /// mail signed with the old key may wait in queues for days, and must still verify.
    pub dkim_retire_after_ms: i64,
}

impl Default for DomainSettings {
    fn default() -> Self {
        Self {
            hostname: "mail.kuvert.localhost".into(),
            dkim_selector: "kuvert".into(),
            return_path_prefix: "bounces".into(),
            tracking_prefix: "track".into(),
            dkim_retire_after_ms: 7 * 86_400_000,
        }
    }
}

pub struct DkimKeyPair {
    pub algorithm: DkimAlgorithm,
    /// PKCS#8 DER; sealed before it is stored.
    pub private_pkcs8_der: Vec<u8>,
    /// The `p=` tag of the DKIM record: an RSA key's SubjectPublicKeyInfo DER, an Ed25519
    /// key's 32 bytes (RFC 8463), in base64.
    pub public_b64: String,
}

/// A fresh key of `algorithm`. CPU-heavy for RSA (a good fraction of a second): callers run
/// it off the async workers.
pub fn generate_dkim(algorithm: DkimAlgorithm) -> DkimKeyPair {
    match algorithm {
        DkimAlgorithm::Rsa => generate_dkim_rsa(),
        DkimAlgorithm::Ed25519 => generate_dkim_ed25519(),
    }
}

fn generate_dkim_ed25519() -> DkimKeyPair {
    use ring::signature::KeyPair as _;
    let rng = ring::rand::SystemRandom::new();
    let der =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("the system's random source");
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(der.as_ref())
        .expect("a key ring has just made");
    DkimKeyPair {
        algorithm: DkimAlgorithm::Ed25519,
        private_pkcs8_der: der.as_ref().to_vec(),
        public_b64: STANDARD.encode(pair.public_key().as_ref()),
    }
}

string_enum! {
    /// A DKIM key's algorithm, as the `k=` tag of its record names it: RSA (RFC 6376), which
    /// every receiver knows, and Ed25519 (RFC 8463), signed beside it.
    DkimAlgorithm { Rsa = "rsa", Ed25519 = "ed25519" }
}

string_enum! {
    /// Where a DKIM key stands. `pending`: made, its record not yet seen in DNS, so it signs
    /// nothing; `active`: it signs, and its record is required; `retiring`: replaced, it signs
    /// nothing and its record stays listed until `retire_at`, so that mail on its way still
    /// verifies.
    DkimKeyState { Pending = "pending", Active = "active", Retiring = "retiring" }
}

/// One of a domain's DKIM keys, its public half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimKey {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub public_b64: String,
    pub state: DkimKeyState,
    pub created_at: Timestamp,
    /// When it began to sign.
    pub active_at: Option<Timestamp>,
    /// A retiring key's end: its record is no longer listed after it.
    pub retire_at: Option<Timestamp>,
}

impl DkimKey {
    /// The TXT record at `selector._domainkey.domain`.
    pub fn record_value(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.algorithm, self.public_b64)
    }
}

/// A change a DKIM check makes to a domain's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DkimChange {
    /// A pending key whose record DNS now holds begins to sign.
    Activate { selector: String },
    /// An active key replaced by a newer one of its algorithm stops signing; its record is
    /// listed until `at`.
    Retire { selector: String, at: Timestamp },
    /// A retiring key past its end is forgotten.
    Remove { selector: String },
}

/// What a check changes, given which keys' records DNS holds (`published`). A key signs only
/// once its record is seen, and the key it replaces stops signing at that moment: so no mail
/// is signed with an unpublished key, and mail never goes unsigned.
pub fn dkim_changes(
    keys: &[DkimKey],
    published: impl Fn(&DkimKey) -> bool,
    now: Timestamp,
    grace_ms: i64,
) -> Vec<DkimChange> {
    let mut out = Vec::new();
    for key in keys {
        match key.state {
            DkimKeyState::Pending if published(key) => {
                out.push(DkimChange::Activate {
                    selector: key.selector.clone(),
                });
                out.extend(
                    keys.iter()
                        .filter(|k| k.state == DkimKeyState::Active && k.algorithm == key.algorithm)
                        .map(|k| DkimChange::Retire {
                            selector: k.selector.clone(),
                            at: Timestamp(now.0.saturating_add(grace_ms)),
                        }),
                );
            }
            DkimKeyState::Retiring if key.retire_at.is_none_or(|at| at <= now) => {
                out.push(DkimChange::Remove {
                    selector: key.selector.clone(),
                })
            }
            _ => {}
        }
    }
    out
}

/// A selector for a new key of `algorithm` made on `date` (`YYYYMMDD`), not among `taken`.
pub fn new_selector(base: &str, algorithm: DkimAlgorithm, date: &str, taken: &[&str]) -> String {
    let stem = match algorithm {
        DkimAlgorithm::Rsa => format!("{base}-{date}"),
        DkimAlgorithm::Ed25519 => format!("{base}-ed-{date}"),
    };
    (1..)
        .map(|n| {
            if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            }
        })
        .find(|s| !taken.contains(&s.as_str()))
        .expect("an unbounded sequence")
}

/// A fresh RSA-2048 key, the size every large mailbox provider accepts (RFC 8301 asks ≥1024).
fn generate_dkim_rsa() -> DkimKeyPair {
    let key =
        RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("2048-bit RSA key generation");
    let private = key.to_pkcs8_der().expect("an RSA key encodes as PKCS#8");
    let public = RsaPublicKey::from(&key)
        .to_public_key_der()
        .expect("an RSA key encodes as SPKI");
    DkimKeyPair {
        algorithm: DkimAlgorithm::Rsa,
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

impl RecordPurpose {
    /// Whether a required record of this purpose, missing from a domain that was verified,
    /// stops its sending: a DKIM key's does (its mail would fail DKIM and, with it, DMARC);
    /// a missing SPF or return-path MX hurts delivery and bounces, but the mail still
    /// authenticates by DKIM, so it goes on while the owner is told.
    pub fn stops_sending(self) -> bool {
        self == Self::Dkim
    }
}

/// A required record that a check did not find: what the domain's page and its owner's
/// notice show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordProblem {
    pub purpose: RecordPurpose,
    pub name: String,
    /// The value the record must have.
    pub expected: String,
    /// What DNS answered instead (nothing: no such record).
    pub found: Vec<String>,
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
            // The key, and its algorithm: an Ed25519 key published without `k=ed25519` reads
            // as RSA (the default) and every receiver would fail its signatures.
            RecordPurpose::Dkim => {
                let want = dkim_tag(&self.value, "p");
                let algorithm = |txt: &str| dkim_tag(txt, "k").unwrap_or_else(|| "rsa".into());
                found.iter().any(|txt| {
                    dkim_tag(txt, "p").is_some()
                        && dkim_tag(txt, "p") == want
                        && algorithm(txt).eq_ignore_ascii_case(&algorithm(&self.value))
                })
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
            // RFC 7489 §6.6.3: one DMARC record, or none counts; it needs a policy. Kuvert's
            // DKIM signature aligns with the From domain by construction (d= is the domain);
            // SPF aligns through the return path under it, but only relaxed: under
            // `aspf=s` DMARC rests on DKIM alone, which is worth telling.
            RecordPurpose::Dmarc => {
                let mut ours = found
                    .iter()
                    .filter(|t| dkim_tag(t, "v").as_deref() == Some("DMARC1"));
                // Tag values are case-insensitive (RFC 7489 §6.4).
                let tag = |r: &str, t: &str| dkim_tag(r, t).map(|v| v.to_ascii_lowercase());
                match (ours.next(), ours.next()) {
                    (Some(r), None) => {
                        matches!(
                            tag(r, "p").as_deref(),
                            Some("none" | "quarantine" | "reject")
                        ) && tag(r, "aspf").as_deref() != Some("s")
                    }
                    _ => false,
                }
            }
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

/// The records to publish for `domain`, whose DKIM keys are `keys`: an active key's record is
/// required, a pending or retiring one's listed.
pub fn dns_records(domain: &str, keys: &[DkimKey], s: &DomainSettings) -> Vec<DnsRecord> {
    let return_path = format!("{}.{domain}", s.return_path_prefix);
    let rec = |purpose, record_type, name: String, value: String, required| DnsRecord {
        purpose,
        record_type,
        name,
        value,
        required,
    };
    let dkim = keys.iter().map(|k| {
        rec(
            RecordPurpose::Dkim,
            RecordType::Txt,
            format!("{}._domainkey.{domain}", k.selector),
            k.record_value(),
            k.state == DkimKeyState::Active,
        )
    });
    dkim.chain([
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
    ])
    .collect()
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

    fn key(selector: &str, algorithm: DkimAlgorithm, state: DkimKeyState) -> DkimKey {
        DkimKey {
            selector: selector.into(),
            algorithm,
            public_b64: "MIIBIjAN+abc/def==".into(),
            state,
            created_at: Timestamp(0),
            active_at: None,
            retire_at: None,
        }
    }

    fn records() -> Vec<DnsRecord> {
        dns_records(
            "example.com",
            &[key("kuvert", DkimAlgorithm::Rsa, DkimKeyState::Active)],
            &DomainSettings::default(),
        )
    }

    #[test]
    fn lists_the_records_to_publish() {
        let r = records();
        assert_eq!(r[0].name, "kuvert._domainkey.example.com");
        assert_eq!(r[0].value, "v=DKIM1; k=rsa; p=MIIBIjAN+abc/def==");
        assert_eq!(r[1].name, "bounces.example.com");
        assert_eq!(r[2].value, "mail.kuvert.localhost");
        assert_eq!(r.iter().filter(|r| r.required).count(), 3);
        // During a rotation both keys are listed; only the one that signs is required.
        let r = dns_records(
            "example.com",
            &[
                key("kuvert", DkimAlgorithm::Rsa, DkimKeyState::Active),
                key("kuvert-20261207", DkimAlgorithm::Rsa, DkimKeyState::Pending),
                key(
                    "kuvert-ed-20261207",
                    DkimAlgorithm::Ed25519,
                    DkimKeyState::Active,
                ),
            ],
            &DomainSettings::default(),
        );
        let dkim: Vec<(&str, bool)> = r
            .iter()
            .filter(|r| r.purpose == RecordPurpose::Dkim)
            .map(|r| (r.name.as_str(), r.required))
            .collect();
        assert_eq!(
            dkim,
            [
                ("kuvert._domainkey.example.com", true),
                ("kuvert-20261207._domainkey.example.com", false),
                ("kuvert-ed-20261207._domainkey.example.com", true),
            ]
        );
        assert!(r[2].value.starts_with("v=DKIM1; k=ed25519; p="));
    }

    #[test]
    fn a_key_signs_only_once_published_and_replaces_its_algorithms_key() {
        use DkimAlgorithm::*;
        use DkimKeyState::*;
        let now = Timestamp(1_000);
        let keys = [
            key("old", Rsa, Active),
            key("new", Rsa, Pending),
            key("ed", Ed25519, Active),
        ];
        // Not yet in DNS: nothing changes.
        assert_eq!(dkim_changes(&keys, |_| false, now, 50), []);
        // Seen: the new key signs, the old RSA one retires, the Ed25519 one is untouched.
        assert_eq!(
            dkim_changes(&keys, |k| k.selector == "new", now, 50),
            [
                DkimChange::Activate {
                    selector: "new".into()
                },
                DkimChange::Retire {
                    selector: "old".into(),
                    at: Timestamp(1_050)
                },
            ]
        );
        // A retiring key is listed until its end, then forgotten.
        let mut retiring = key("old", Rsa, Retiring);
        retiring.retire_at = Some(Timestamp(1_050));
        assert_eq!(dkim_changes(&[retiring.clone()], |_| true, now, 50), []);
        assert_eq!(
            dkim_changes(&[retiring], |_| true, Timestamp(1_050), 50),
            [DkimChange::Remove {
                selector: "old".into()
            }]
        );
    }

    #[test]
    fn new_selectors_do_not_collide() {
        assert_eq!(
            new_selector("kuvert", DkimAlgorithm::Rsa, "20261207", &["kuvert"]),
            "kuvert-20261207"
        );
        assert_eq!(
            new_selector(
                "kuvert",
                DkimAlgorithm::Rsa,
                "20261207",
                &["kuvert-20261207", "kuvert-20261207-2"]
            ),
            "kuvert-20261207-3"
        );
        assert_eq!(
            new_selector("kuvert", DkimAlgorithm::Ed25519, "20261207", &[]),
            "kuvert-ed-20261207"
        );
    }

    #[test]
    fn generated_ed25519_key_is_32_bytes() {
        let k = generate_dkim(DkimAlgorithm::Ed25519);
        assert_eq!(STANDARD.decode(&k.public_b64).expect("base64").len(), 32);
        assert_ne!(
            generate_dkim(DkimAlgorithm::Ed25519).public_b64,
            k.public_b64
        );
    }

    #[test]
    fn matches_what_dns_returns() {
        let r = records();
        assert!(r[0].is_satisfied_by(&["v=DKIM1; k=rsa; p=MIIBIjAN+abc/ def==".into()]));
        assert!(!r[0].is_satisfied_by(&["v=DKIM1; k=rsa; p=MIIBIjAN+abc/xxx==".into()]));
        assert!(
            r[0].is_satisfied_by(&["v=DKIM1; p=MIIBIjAN+abc/def==".into()]),
            "k=rsa is the default"
        );
        assert!(!r[0].is_satisfied_by(&["v=DKIM1; k=ed25519; p=MIIBIjAN+abc/def==".into()]));
        assert!(!r[0].is_satisfied_by(&[]));
        assert!(r[1].is_satisfied_by(&[
            "v=spf1 include:_spf.google.com a:mail.kuvert.localhost -all".into()
        ]));
        assert!(!r[1].is_satisfied_by(&["v=spf1 include:_spf.google.com -all".into()]));
        assert!(r[2].is_satisfied_by(&["MAIL.kuvert.localhost.".into()]));
        assert!(r[3].is_satisfied_by(&["v=DMARC1; p=reject".into()]));
        assert!(r[3].is_satisfied_by(&["v=DMARC1;p=none;adkim=s".into()]));
        assert!(r[3].is_satisfied_by(&["v=DMARC1; p=Reject".into()]));
        assert!(!r[3].is_satisfied_by(&["v=DMARC1; p=reject; aspf=S".into()]));
        assert!(
            !r[3].is_satisfied_by(&["v=DMARC1; p=reject; aspf=s".into()]),
            "SPF unaligned"
        );
        assert!(
            !r[3].is_satisfied_by(&["v=DMARC1; rua=mailto:a@b.c".into()]),
            "no policy"
        );
        assert!(
            !r[3].is_satisfied_by(&["v=DMARC1; p=none".into(), "v=DMARC1; p=reject".into()]),
            "two records are none"
        );
    }

    #[test]
    fn generated_key_is_rsa_2048() {
        let k = generate_dkim(DkimAlgorithm::Rsa);
        assert_eq!(k.algorithm, DkimAlgorithm::Rsa);
        // A 2048-bit SPKI is 294 bytes, 392 base64 characters.
        assert_eq!(k.public_b64.len(), 392);
        assert!(k.private_pkcs8_der.len() > 1100);
    }
}
