//! What recipient domains publish for MTA-STS and TLS reporting (`kuvert_core::mta_sts`): a
//! policy file as any web server can serve it, and the `_mta-sts` and `_smtp._tls` TXT
//! records as any DNS server can answer. Checked: no panic; an accepted policy names at most
//! `MAX_MX_PATTERNS` lower-case patterns (some, unless its mode is `none`), caches for at
//! most a year, reads back from its own lines and matches the hosts its patterns stand for;
//! an accepted record's id is 1 to 32 letters and digits; at most `MAX_RUA` report addresses.
#![no_main]

use kuvert_core::mta_sts::{
    MAX_AGE_LIMIT, MAX_MX_PATTERNS, MAX_RUA, ReportTo, StsMode, StsPolicy, StsRecord,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(p) = StsPolicy::parse(text) {
        assert!(p.mx.len() <= MAX_MX_PATTERNS);
        assert!(p.mode == StsMode::None || !p.mx.is_empty());
        assert!(p.max_age <= MAX_AGE_LIMIT);
        assert_eq!(StsPolicy::parse(&p.lines().join("\r\n")).as_ref(), Ok(&p));
        for m in &p.mx {
            assert_eq!(*m, m.to_ascii_lowercase());
            let host = m.replace("*.", "any.");
            assert!(p.matches(&host), "{m} does not match {host}");
            assert!(p.matches(&host.to_ascii_uppercase()));
        }
    }
    for line in text.lines() {
        if let Ok(r) = StsRecord::parse(line) {
            assert!((1..=32).contains(&r.id.len()));
            assert!(r.id.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }
    let answers: Vec<String> = text.lines().map(str::to_owned).collect();
    let _ = StsRecord::find(&answers);
    if let Ok(to) = ReportTo::find(&answers) {
        assert!(to.len() <= MAX_RUA);
    }
});
