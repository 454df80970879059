//! DKIM verification by dkimpy (PyPI), an implementation no one here wrote, given the TXT
//! record the DNS would serve.

use std::io::Write;
use std::process::{Command, Stdio};

const SCRIPT: &str = "import sys, dkim\n\
rec = sys.argv[1].encode()\n\
msg = sys.stdin.buffer.read()\n\
ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec)\n\
print('PASS' if ok else 'FAIL')\n";

/// `Ok` when dkimpy finds the message's signature valid under `txt_record`.
pub fn dkimpy_verify(message: &[u8], txt_record: &str) -> Result<(), String> {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, txt_record])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 (with dkimpy: pip install dkimpy): {e}"))?;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(message)
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.trim() == "PASS" {
        Ok(())
    } else {
        Err(format!(
            "dkimpy: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
