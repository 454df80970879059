//! Mail arriving at a return path (`kuvert_mail::report::parse`: DSN, ARF, automatic
//! replies), as anyone on the Internet can send it to the inbound MX. Checked: no panic, at
//! most `MAX_DSN_RECIPIENTS` recipient blocks, each naming an address, lower-case actions
//! and feedback types, a status without white space, addresses of the original that hold an `@`;
//! and the SMTP reply made of a recipient's diagnostic (as the inbound MX makes it) is
//! classified without panic and reads back from its own text.
#![no_main]

use kuvert_mail::bounce::classify;
use kuvert_mail::report::{self, MAX_DSN_RECIPIENTS, Original, Report};
use kuvert_mail::smtp::Reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    match report::parse(input) {
        Report::Dsn {
            reporting_mta: _,
            recipients,
            original,
        } => {
            assert!(recipients.len() <= MAX_DSN_RECIPIENTS);
            for r in &recipients {
                assert!(r.final_recipient.is_some() || r.original_recipient.is_some());
                assert_eq!(r.action, r.action.to_ascii_lowercase());
                if let Some(s) = &r.status {
                    // Empty when the field is (read as no enhanced code, as when absent).
                    assert!(!s.contains(char::is_whitespace), "{s:?}");
                }
                let diagnostic = r.diagnostic.clone().unwrap_or_default();
                reply(&[diagnostic.clone()]);
                let status = r.status.clone().unwrap_or_else(|| "5.0.0".into());
                let code = if status.starts_with('4') { 450 } else { 550 };
                let line = format!("{code} {status} {diagnostic}");
                let r = reply(&[line.trim().to_owned()]).expect("a reply with a code");
                assert_eq!(r.code, code);
            }
            original_ok(&original);
        }
        Report::Feedback {
            feedback_type,
            original,
            ..
        } => {
            assert_eq!(feedback_type, feedback_type.to_ascii_lowercase());
            original_ok(&original);
        }
        Report::AutoReply | Report::Other => {}
    }
});

fn original_ok(o: &Original) {
    assert!(o.to.iter().all(|a| a.contains('@')), "{:?}", o.to);
    assert!(o.return_path.as_deref() != Some(""));
}

/// The reply, classified; it reads back from its own text.
fn reply(lines: &[String]) -> Option<Reply> {
    let r = Reply::parse(lines)?;
    let _ = classify(&r);
    let _ = r.enhanced_string();
    assert_eq!(
        Reply::parse(&[r.to_string()]).as_ref(),
        Some(&r),
        "{lines:?}"
    );
    Some(r)
}
