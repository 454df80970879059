//! SMTP command lines as the submission server and the inbound MX read them: the input is
//! split into lines the way the session splits its socket (CRLF only, 1000 bytes at most),
//! each line is taken as the session takes it (lossy UTF-8) and parsed; the whole input is
//! also parsed as one line. Checked: no panic, the verb's case does not matter, arguments are
//! trimmed and come from the line, a path is what stood between `<` and `>`, and a
//! `MAIL FROM:<path> SIZE=n` or `RCPT TO:<path>` made from the input parses back to its parts.
#![no_main]

use kuvert_core::EmailAddress;
use kuvert_mail::smtp::command::{self, Command, MailFrom, RcptTo};
use kuvert_mail::smtp::data::RawLine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut line = RawLine::default();
    let mut at = 0;
    while at < input.len() {
        line.clear();
        let (take, done) = line.feed(&input[at..], 1000);
        at += take;
        if !done {
            break;
        }
        // At most the limit with CRLF, and the dot a client doubles at the start of a line.
        assert!(line.text.len() < 1000 + usize::from(line.text.first() == Some(&b'.')));
        if line.too_long || !line.crlf || line.text.contains(&b'\r') {
            continue;
        }
        check(&String::from_utf8_lossy(&line.text));
    }
    check(&String::from_utf8_lossy(input));
    round_trip(input);
});

fn check(line: &str) {
    let cmd = command::parse(line);

    // The verb in another case is the same command.
    let (verb, rest) = line
        .split_once(' ')
        .map_or((line, None), |(v, r)| (v, Some(r)));
    for other in [verb.to_ascii_lowercase(), verb.to_ascii_uppercase()] {
        let again = match rest {
            Some(r) => format!("{other} {r}"),
            None => other,
        };
        assert_eq!(command::parse(&again), cmd, "{line:?} vs {again:?}");
    }

    match &cmd {
        Command::Ehlo(arg) | Command::Helo(arg) | Command::Auth(arg) => {
            assert_eq!(*arg, arg.trim());
            assert!(line.contains(*arg));
        }
        Command::Mail(Some(MailFrom { path, size })) => {
            if let Some(p) = path {
                assert!(!p.contains('>'));
                assert!(line.contains(&format!("<{p}>")), "{line:?}: {p:?}");
                address(p);
            } else {
                assert_eq!(*size, None, "no parameters without a path");
            }
            if size.is_some() {
                assert!(line.to_ascii_uppercase().contains("SIZE="));
            }
        }
        Command::Rcpt(Some(RcptTo { path: Some(p) })) => {
            assert!(!p.contains('>'));
            assert!(line.contains(&format!("<{p}>")), "{line:?}: {p:?}");
            address(p);
        }
        _ => {}
    }
}

/// An address the session accepts reads back as itself.
fn address(path: &str) {
    if let Ok(a) = EmailAddress::parse(path) {
        let again = EmailAddress::parse(&a.to_string()).expect("a parsed address parses again");
        assert_eq!(again, a);
        assert_eq!(again.to_string(), a.to_string());
    }
}

/// A command made from parts parses back to them, whatever the parts hold (a path holds
/// anything but `>`).
fn round_trip(input: &[u8]) {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    let path: String = String::from_utf8_lossy(rest)
        .chars()
        .filter(|&c| c != '>')
        .collect();
    let size = rest.iter().take(8).fold(0usize, |n, &b| {
        n.wrapping_mul(251).wrapping_add(usize::from(b))
    });
    let (mail, from, rcpt, to) = match first % 4 {
        0 => ("MAIL", "FROM:", "RCPT", "TO:"),
        1 => ("mail", "from:", "rcpt", "to:"),
        2 => ("Mail", "From: ", "Rcpt", "To:  "),
        _ => ("mAiL", "fRoM:\t", "rCpT", "tO:\t "),
    };
    let line = format!("{mail} {from}<{path}> BODY=8BITMIME SIZE={size} SMTPUTF8");
    assert_eq!(
        command::parse(&line),
        Command::Mail(Some(MailFrom {
            path: Some(path.clone()),
            size: Some(size)
        })),
        "{line:?}"
    );
    let line = format!("{rcpt} {to}<{path}> NOTIFY=NEVER");
    assert_eq!(
        command::parse(&line),
        Command::Rcpt(Some(RcptTo {
            path: Some(path.clone())
        })),
        "{line:?}"
    );
}
