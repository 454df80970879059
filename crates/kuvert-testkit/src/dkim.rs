//! DKIM verification by dkimpy (PyPI; Ed25519 needs PyNaCl), an implementation no one here
//! wrote, given the TXT records the DNS would serve.

use std::io::Write;
use std::process::{Command, Stdio};

/// Verifies every `DKIM-Signature` of the message, each against the record its `s=` and `d=`
/// name (`records`: name without the final dot, then TXT value, as JSON; `*` answers any
/// name); prints a line `PASS selector algorithm` or `FAIL selector ...` per signature, top
/// first.
const SCRIPT: &str = r#"import sys, json, dkim
records = {k.lower(): v.encode() for k, v in json.loads(sys.argv[1]).items()}
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
sigs = [v for (k, v) in dkim.rfc822_parse(msg)[0] if k.lower() == b'dkim-signature']
lookup = lambda name, timeout=5: records.get(name.decode().rstrip('.').lower(), records.get('*'))
for i, sig in enumerate(sigs):
    tags = dkim.util.parse_tag_value(sig)
    ok = d.verify(idx=i, dnsfunc=lookup)
    print(('PASS' if ok else 'FAIL'), tags[b's'].decode(), tags[b'a'].decode())
"#;

/// One signature as dkimpy judged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub selector: String,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: String,
    pub pass: bool,
}

/// Every signature of the message as dkimpy judges it, given the TXT records by name
/// (`selector._domainkey.domain`).
pub fn dkimpy_verify_each(
    message: &[u8],
    records: &[(String, String)],
) -> Result<Vec<Verified>, String> {
    let records: serde_json::Map<String, serde_json::Value> = records
        .iter()
        .map(|(name, txt)| (name.clone(), txt.clone().into()))
        .collect();
    let mut child = Command::new("python3")
        .args([
            "-c",
            SCRIPT,
            &serde_json::Value::Object(records).to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 (with dkimpy: pip install dkimpy pynacl): {e}"))?;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(message)
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("dkimpy: {}", String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(verdict), Some(selector), Some(algorithm)) => Ok(Verified {
                    selector: selector.to_owned(),
                    algorithm: algorithm.to_owned(),
                    pass: verdict == "PASS",
                }),
                _ => Err(format!("dkimpy printed {line:?}")),
            }
        })
        .collect()
}

/// `Ok` when dkimpy finds the message's (first) signature valid under `txt_record`.
pub fn dkimpy_verify(message: &[u8], txt_record: &str) -> Result<(), String> {
    let verdicts = dkimpy_verify_each(message, &[("*".into(), txt_record.to_owned())])?;
    match verdicts.first() {
        Some(v) if v.pass => Ok(()),
        _ => Err(format!("dkimpy: {verdicts:?}")),
    }
}
