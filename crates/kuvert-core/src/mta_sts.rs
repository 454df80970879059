//! MTA-STS (RFC 8461) and SMTP TLS reporting (RFC 8460): what a receiving domain publishes
//! (the `_mta-sts` and `_smtp._tls` TXT records, the policy file), read strictly, what a policy
//! says about an MX host, and the daily report's JSON. Nothing here does I/O: the delivery
//! engine fetches, the store keeps, the reporter sends.

use serde::{Deserialize, Serialize};

/// The most of a policy file that is read (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The longest a policy may be cached (RFC 8461 §3.2: about a year).
pub const MAX_AGE_LIMIT: u32 = 31_557_600;
/// `mx` patterns kept of one policy; a longer list is refused rather than matched slowly.
pub const MAX_MX_PATTERNS: usize = 64;
/// Report addresses kept of one TLS-RPT record.
pub const MAX_RUA: usize = 5;
/// The tag of Kuvert's own TLS reports: RFC 8460 §5.3 wants them delivered whatever the
/// receiving domain's policy says, and left out of the next report.
pub const TLSRPT_TAG: &str = "kuvert-tlsrpt";

/// Whether a TXT record is of `version` (`v=STSv1`): its first field is exactly that, so
/// that `v=STSv10` is not taken for it.
fn is_version(txt: &str, version: &str) -> bool {
    txt.split(';').next().map(|f| f.trim_matches([' ', '\t'])) == Some(version)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    #[error("not an MTA-STS record: {0}")]
    Record(&'static str),
    #[error("invalid MTA-STS policy: {0}")]
    Policy(String),
    #[error("not a TLS-RPT record: {0}")]
    Report(&'static str),
}

/// What a domain asks of senders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StsMode {
    /// Only to MX hosts the policy names, over TLS with a certificate that checks; else wait.
    Enforce,
    /// Deliver as before, and report what would have failed.
    Testing,
    /// No policy (a domain withdrawing one publishes this).
    None,
}

impl StsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Testing => "testing",
            Self::None => "none",
        }
    }
}

/// The `_mta-sts.DOMAIN` TXT record: a policy exists, and its `id` says whether it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsRecord {
    pub id: String,
}

/// Splits `k=v; k=v` records (RFC 8461 §3.1, RFC 8460 §3): the fields in order, trimmed.
fn fields(txt: &str) -> impl Iterator<Item = (&str, &str)> {
    txt.split(';')
        .map(|f| f.trim_matches([' ', '\t']))
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.trim_matches([' ', '\t']), v.trim_matches([' ', '\t'])),
            None => (f, ""),
        })
}

impl StsRecord {
    /// Reads one record: `v=STSv1` first, then an `id` of 1 to 32 letters and digits.
    pub fn parse(txt: &str) -> Result<Self, StsError> {
        let mut f = fields(txt);
        if f.next() != Some(("v", "STSv1")) {
            return Err(StsError::Record("it does not begin with v=STSv1"));
        }
        let id = f
            .find(|(k, _)| *k == "id")
            .map(|(_, v)| v)
            .ok_or(StsError::Record("no id"))?;
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StsError::Record("the id is not 1 to 32 letters and digits"));
        }
        Ok(Self { id: id.to_owned() })
    }

    /// The one record among a name's TXT answers: those that begin `v=STSv1` count; none, or
    /// more than one, means no policy (RFC 8461 §3.1).
    pub fn find(answers: &[String]) -> Result<Option<Self>, StsError> {
        let mut ours = answers.iter().filter(|t| is_version(t, "v=STSv1"));
        match (ours.next(), ours.next()) {
            (None, _) => Ok(None),
            (Some(one), None) => Self::parse(one).map(Some),
            (Some(_), Some(_)) => Err(StsError::Record("more than one v=STSv1 record")),
        }
    }
}

/// A policy file (`https://mta-sts.DOMAIN/.well-known/mta-sts.txt`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StsPolicy {
    pub mode: StsMode,
    /// Host patterns, lower case without the final dot; `*.example.com` stands for one label.
    pub mx: Vec<String>,
    /// Seconds it may be cached.
    pub max_age: u32,
}

impl StsPolicy {
    /// Reads a policy: `key: value` lines ended by LF or CRLF; `version: STSv1`, `mode` and
    /// `max_age` once each (the first counts), `mx` once per pattern (required unless the
    /// mode is `none`); other keys are ignored, as RFC 8461 §3.2 asks.
    pub fn parse(text: &str) -> Result<Self, StsError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(StsError::Policy("longer than 64 KiB".into()));
        }
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(StsError::Policy(format!(
                    "a line without a colon: {line:?}"
                )));
            };
            let value = value.trim_matches([' ', '\t']);
            match key {
                "version" => {
                    version.get_or_insert(value);
                }
                "mode" => {
                    mode.get_or_insert(value);
                }
                "max_age" => {
                    max_age.get_or_insert(value);
                }
                "mx" => {
                    if mx.len() == MAX_MX_PATTERNS {
                        return Err(StsError::Policy(format!(
                            "more than {MAX_MX_PATTERNS} mx patterns"
                        )));
                    }
                    mx.push(mx_pattern(value)?);
                }
                _ => {}
            }
        }
        if version != Some("STSv1") {
            return Err(StsError::Policy("no version: STSv1".into()));
        }
        let mode = match mode {
            Some("enforce") => StsMode::Enforce,
            Some("testing") => StsMode::Testing,
            Some("none") => StsMode::None,
            Some(other) => return Err(StsError::Policy(format!("unknown mode {other:?}"))),
            None => return Err(StsError::Policy("no mode".into())),
        };
        let max_age = max_age
            .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&v| v <= u64::from(MAX_AGE_LIMIT))
            .ok_or_else(|| StsError::Policy(format!("max_age is not 0 to {MAX_AGE_LIMIT}")))?;
        if mx.is_empty() && mode != StsMode::None {
            return Err(StsError::Policy("no mx pattern".into()));
        }
        Ok(Self {
            mode,
            mx,
            max_age: max_age as u32,
        })
    }

    /// Whether `host` (an MX record's exchange) is one the policy names: equal, or a
    /// `*.` pattern whose rest equals the host without its first label (RFC 8461 §4.1).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
            None => *p == host,
        })
    }

    /// The policy as the report's `policy-string` gives it: one string per line.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            "version: STSv1".to_owned(),
            format!("mode: {}", self.mode.as_str()),
        ];
        out.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        out.push(format!("max_age: {}", self.max_age));
        out
    }
}

fn mx_pattern(value: &str) -> Result<String, StsError> {
    let p = value.trim_end_matches('.').to_ascii_lowercase();
    let name = p.strip_prefix("*.").unwrap_or(&p);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(StsError::Policy(format!("not a host pattern: {value:?}")));
    }
    Ok(p)
}

/// Where a domain wants its TLS reports (`_smtp._tls.DOMAIN`, RFC 8460 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportTo {
    Mailto(String),
    Https(String),
}

impl ReportTo {
    /// The addresses of the one `v=TLSRPTv1` record among a name's TXT answers; none or
    /// several: no reports (RFC 8460 §3). Unknown schemes are skipped; at most [`MAX_RUA`].
    pub fn find(answers: &[String]) -> Result<Vec<Self>, StsError> {
        let mut ours = answers.iter().filter(|t| is_version(t, "v=TLSRPTv1"));
        let one = match (ours.next(), ours.next()) {
            (None, _) => return Ok(vec![]),
            (Some(one), None) => one,
            (Some(_), Some(_)) => return Err(StsError::Report("more than one v=TLSRPTv1 record")),
        };
        let mut f = fields(one);
        if f.next() != Some(("v", "TLSRPTv1")) {
            return Err(StsError::Report("it does not begin with v=TLSRPTv1"));
        }
        let rua = f
            .find(|(k, _)| *k == "rua")
            .map(|(_, v)| v)
            .ok_or(StsError::Report("no rua"))?;
        let mut out = Vec::new();
        for uri in rua.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let (scheme, rest) = uri.split_once(':').unwrap_or(("", uri));
            let to = match scheme.to_ascii_lowercase().as_str() {
                "mailto" => {
                    let address = rest.split('?').next().unwrap_or_default();
                    match crate::EmailAddress::parse(address) {
                        Ok(a) => Self::Mailto(a.to_string()),
                        Err(_) => continue,
                    }
                }
                "https" if rest.starts_with("//") && rest.len() > 2 => Self::Https(uri.to_owned()),
                _ => continue,
            };
            if out.len() == MAX_RUA {
                break;
            }
            out.push(to);
        }
        Ok(out)
    }
}

/// Why a session failed, as RFC 8460 §4.3 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResultType {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
}

impl ResultType {
    pub const ALL: [Self; 8] = [
        Self::StarttlsNotSupported,
        Self::CertificateHostMismatch,
        Self::CertificateExpired,
        Self::CertificateNotTrusted,
        Self::ValidationFailure,
        Self::StsPolicyFetchError,
        Self::StsPolicyInvalid,
        Self::StsWebpkiInvalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StarttlsNotSupported => "starttls-not-supported",
            Self::CertificateHostMismatch => "certificate-host-mismatch",
            Self::CertificateExpired => "certificate-expired",
            Self::CertificateNotTrusted => "certificate-not-trusted",
            Self::ValidationFailure => "validation-failure",
            Self::StsPolicyFetchError => "sts-policy-fetch-error",
            Self::StsPolicyInvalid => "sts-policy-invalid",
            Self::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Sessions counted for one policy domain over one UTC day: what the report is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCount {
    /// The MX host (empty for failures before any host: the policy could not be read).
    pub mx_host: String,
    /// `None`: the sessions succeeded.
    pub result: Option<ResultType>,
    pub count: u64,
}

/// The sessions under one policy (its lines; empty when none could be read) in a day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySessions {
    pub policy: Vec<String>,
    pub sessions: Vec<SessionCount>,
}

/// One day's report for one policy domain (RFC 8460 §4.4): an entry per policy seen that
/// day (a domain that changed its policy has two).
pub struct TlsReport<'a> {
    pub organization: &'a str,
    pub contact: &'a str,
    pub report_id: &'a str,
    pub policy_domain: &'a str,
    /// The first millisecond of the day and of the next.
    pub begin: crate::Timestamp,
    pub end: crate::Timestamp,
    pub policies: &'a [PolicySessions],
}

impl TlsReport<'_> {
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let seconds = |t: crate::Timestamp| {
            chrono::DateTime::<chrono::Utc>::from_timestamp(t.seconds(), 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        };
        let policies: Vec<_> = self
            .policies
            .iter()
            .map(|p| {
                let sum = |failed: bool| -> u64 {
                    p.sessions
                        .iter()
                        .filter(|s| s.result.is_some() == failed)
                        .map(|s| s.count)
                        .sum()
                };
                let details: Vec<_> = p
                    .sessions
                    .iter()
                    .filter_map(|s| {
                        let r = s.result?;
                        let mut d =
                            json!({"result-type": r.as_str(), "failed-session-count": s.count});
                        if !s.mx_host.is_empty() {
                            d["receiving-mx-hostname"] = json!(s.mx_host);
                        }
                        Some(d)
                    })
                    .collect();
                let policy = if p.policy.is_empty() {
                    json!({"policy-type": "no-policy-found", "policy-domain": self.policy_domain})
                } else {
                    let mx: Vec<&str> =
                        p.policy.iter().filter_map(|l| l.strip_prefix("mx: ")).collect();
                    json!({"policy-type": "sts", "policy-string": p.policy, "policy-domain": self.policy_domain, "mx-host": mx})
                };
                json!({
                    "policy": policy,
                    "summary": {"total-successful-session-count": sum(false), "total-failure-session-count": sum(true)},
                    "failure-details": details,
                })
            })
            .collect();
        json!({
            "organization-name": self.organization,
            "date-range": {"start-datetime": seconds(self.begin), "end-datetime": seconds(self.end)},
            "contact-info": self.contact,
            "report-id": self.report_id,
            "policies": policies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_strictly() {
        assert_eq!(
            StsRecord::parse("v=STSv1; id=20160831085700Z;")
                .expect("valid")
                .id,
            "20160831085700Z"
        );
        assert_eq!(StsRecord::parse("v=STSv1;id=abc").expect("valid").id, "abc");
        assert!(StsRecord::parse("v=STSv1; id=ab-c").is_err());
        assert!(StsRecord::parse("v=STSv1").is_err());
        assert!(StsRecord::parse("id=1; v=STSv1").is_err());
        assert!(StsRecord::parse(&format!("v=STSv1; id={}", "a".repeat(33))).is_err());
        let answers = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(StsRecord::find(&answers(&["v=spf1 -all"])), Ok(None));
        assert_eq!(
            StsRecord::find(&answers(&["v=spf1 -all", "v=STSv1; id=1"])),
            Ok(Some(StsRecord { id: "1".into() }))
        );
        assert!(StsRecord::find(&answers(&["v=STSv1; id=1", "v=STSv1; id=2"])).is_err());
        assert_eq!(
            StsRecord::find(&answers(&["v=STSv10; id=1"])),
            Ok(None),
            "another version"
        );
    }

    #[test]
    fn a_policy_is_read_with_crlf_or_lf_and_matched_label_by_label() {
        let p = StsPolicy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\nfuture: x\r\n",
        )
        .expect("valid");
        assert_eq!(p.mode, StsMode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(p.mx, ["mail.example.com", "*.example.net"]);
        assert!(p.matches("MAIL.example.com."));
        assert!(p.matches("mx1.example.net"));
        assert!(!p.matches("example.net"), "a wildcard stands for one label");
        assert!(!p.matches("a.b.example.net"), "and only one");
        assert!(!p.matches("mail.example.com.evil.test"));
        assert_eq!(
            StsPolicy::parse(&p.lines().join("\n")).expect("valid"),
            p,
            "its lines read back"
        );
        let lf = StsPolicy::parse("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 86400")
            .expect("valid");
        assert_eq!(lf.mode, StsMode::Testing);
    }

    #[test]
    fn a_policy_that_lacks_a_field_is_refused() {
        for bad in [
            "mode: enforce\nmx: a.test\nmax_age: 1",
            "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1",
            "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1",
            "version: STSv1\nmode: enforce\nmax_age: 1",
            "version: STSv1\nmode: enforce\nmx: a.test",
            "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601",
            "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1",
            "version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1",
            "version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1",
            "<html>not found</html>",
        ] {
            assert!(StsPolicy::parse(bad).is_err(), "{bad:?}");
        }
        let none = StsPolicy::parse("version: STSv1\nmode: none\nmax_age: 1").expect("valid");
        assert_eq!(none.mode, StsMode::None);
        let many = format!(
            "version: STSv1\nmode: enforce\nmax_age: 1\n{}",
            "mx: a.test\n".repeat(MAX_MX_PATTERNS + 1)
        );
        assert!(StsPolicy::parse(&many).is_err());
    }

    #[test]
    fn report_addresses_are_read_from_the_one_record() {
        let answers = vec![
            "v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/tlsrpt, ftp://x"
                .to_owned(),
        ];
        assert_eq!(
            ReportTo::find(&answers).expect("valid"),
            [
                ReportTo::Mailto("tls@example.com".into()),
                ReportTo::Https("https://r.example.com/tlsrpt".into())
            ]
        );
        assert_eq!(ReportTo::find(&["v=spf1".to_owned()]).expect("valid"), []);
        assert!(ReportTo::find(&["v=TLSRPTv1;".to_owned()]).is_err());
        assert!(ReportTo::find(&[answers[0].clone(), answers[0].clone()]).is_err());
    }

    #[test]
    fn the_report_counts_sessions_by_outcome() {
        let policy = StsPolicy::parse("version: STSv1\nmode: enforce\nmx: mx.a.test\nmax_age: 60")
            .expect("valid")
            .lines();
        let sessions = [
            SessionCount {
                mx_host: "mx.a.test".into(),
                result: None,
                count: 7,
            },
            SessionCount {
                mx_host: "mx.b.test".into(),
                result: Some(ResultType::ValidationFailure),
                count: 2,
            },
        ];
        let policies = [
            PolicySessions {
                policy,
                sessions: sessions.to_vec(),
            },
            PolicySessions {
                policy: vec![],
                sessions: vec![SessionCount {
                    mx_host: String::new(),
                    result: Some(ResultType::StsPolicyFetchError),
                    count: 1,
                }],
            },
        ];
        let r = TlsReport {
            organization: "Kuvert",
            contact: "postmaster@kuvert.test",
            report_id: "r1",
            policy_domain: "a.test",
            begin: crate::Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").expect("valid"),
            end: crate::Timestamp::parse_rfc3339("2026-12-02T00:00:00Z").expect("valid"),
            policies: &policies,
        }
        .to_json();
        assert_eq!(r["date-range"]["start-datetime"], "2026-12-01T00:00:00Z");
        let p = &r["policies"][0];
        assert_eq!(p["policy"]["policy-type"], "sts");
        assert_eq!(p["policy"]["mx-host"][0], "mx.a.test");
        assert_eq!(p["summary"]["total-successful-session-count"], 7);
        assert_eq!(p["summary"]["total-failure-session-count"], 2);
        assert_eq!(p["failure-details"][0]["result-type"], "validation-failure");
        assert_eq!(
            p["failure-details"][0]["receiving-mx-hostname"],
            "mx.b.test"
        );
        let none = &r["policies"][1];
        assert_eq!(none["policy"]["policy-type"], "no-policy-found");
        assert_eq!(none["summary"]["total-failure-session-count"], 1);
        assert_eq!(
            none["failure-details"][0]["result-type"],
            "sts-policy-fetch-error"
        );
    }
}
