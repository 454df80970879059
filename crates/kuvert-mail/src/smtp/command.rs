//! A command line of the conversation, parsed: the verb (any case) and its argument. What the
//! session may do with a command depends on its state; what the line says does not.

/// One command. Arguments are borrowed from the line; verbs that take none ignore what
/// follows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// The client's name, empty when none was given.
    Ehlo(&'a str),
    Helo(&'a str),
    StartTls,
    /// The mechanism and, after a space, the initial response.
    Auth(&'a str),
    /// `MAIL FROM:<path> PARAMS`; `None` without `FROM:`.
    Mail(Option<MailFrom>),
    /// `RCPT TO:<path> PARAMS`; `None` without `TO:`.
    Rcpt(Option<RcptTo>),
    Data,
    Rset,
    Noop,
    Vrfy,
    Help,
    Quit,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailFrom {
    /// What is between `<` and `>` (empty for the null sender); `None` when malformed.
    pub path: Option<String>,
    /// The `SIZE=` parameter, when given as a number.
    pub size: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptTo {
    /// What is between `<` and `>`; `None` when malformed.
    pub path: Option<String>,
}

/// Parses one command line (without its CRLF).
pub fn parse(line: &str) -> Command<'_> {
    let (verb, arg) = line
        .split_once(' ')
        .map_or((line, ""), |(v, a)| (v, a.trim()));
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => Command::Ehlo(arg),
        "HELO" => Command::Helo(arg),
        "STARTTLS" => Command::StartTls,
        "AUTH" => Command::Auth(arg),
        "MAIL" => Command::Mail(strip_prefix_ci(arg, "FROM:").map(|rest| {
            let (path, params) = split_path(rest);
            let size = params
                .split_whitespace()
                .find_map(|p| strip_prefix_ci(p, "SIZE="))
                .and_then(|n| n.parse::<usize>().ok());
            MailFrom { path, size }
        })),
        "RCPT" => Command::Rcpt(strip_prefix_ci(arg, "TO:").map(|rest| RcptTo {
            path: split_path(rest).0,
        })),
        "DATA" => Command::Data,
        "RSET" => Command::Rset,
        "NOOP" => Command::Noop,
        "VRFY" => Command::Vrfy,
        "HELP" => Command::Help,
        "QUIT" => Command::Quit,
        _ => Command::Unknown,
    }
}

/// `s` after `prefix` (ASCII, any case), trimmed; bytes, not characters, are compared, so a
/// line whose prefix ends inside a multi-byte character is simply not a match.
pub fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.as_bytes().get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix.as_bytes()) {
        return None;
    }
    // The prefix is ASCII and matched, so its end is a character boundary.
    s.get(prefix.len()..).map(str::trim_start)
}

/// `<path> PARAMS` into the path (None when malformed) and the parameters.
pub fn split_path(s: &str) -> (Option<String>, &str) {
    let s = s.trim();
    match s.strip_prefix('<').and_then(|r| r.split_once('>')) {
        Some((path, params)) => (Some(path.to_owned()), params.trim()),
        None => (None, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ending_inside_a_character_is_no_match_and_no_panic() {
        assert_eq!(strip_prefix_ci("FRéé", "FROM:"), None);
        assert_eq!(strip_prefix_ci("TéO", "TO:"), None);
        assert_eq!(strip_prefix_ci("SIZé=1", "SIZE="), None);
        assert_eq!(strip_prefix_ci("from: <a@b.c>", "FROM:"), Some("<a@b.c>"));
        assert_eq!(strip_prefix_ci("FROM:é", "FROM:"), Some("é"));
        assert_eq!(strip_prefix_ci("FRO", "FROM:"), None);
    }

    #[test]
    fn commands_in_any_case_with_their_arguments() {
        assert_eq!(
            parse("ehlo  client.example "),
            Command::Ehlo("client.example")
        );
        assert_eq!(parse("HELO"), Command::Helo(""));
        assert_eq!(parse("StartTLS now"), Command::StartTls);
        assert_eq!(
            parse("AUTH PLAIN AGEAYg=="),
            Command::Auth("PLAIN AGEAYg==")
        );
        assert_eq!(
            parse("mail from: <a@shop.example> BODY=8BITMIME size=1234"),
            Command::Mail(Some(MailFrom {
                path: Some("a@shop.example".into()),
                size: Some(1234)
            }))
        );
        assert_eq!(
            parse("MAIL FROM:<>"),
            Command::Mail(Some(MailFrom {
                path: Some(String::new()),
                size: None
            }))
        );
        assert_eq!(
            parse("MAIL FROM:a@shop.example SIZE=1"),
            Command::Mail(Some(MailFrom {
                path: None,
                size: None
            }))
        );
        assert_eq!(parse("MAIL TO:<a@b.c>"), Command::Mail(None));
        assert_eq!(
            parse("RCPT TO:<ann@example.com> NOTIFY=NEVER"),
            Command::Rcpt(Some(RcptTo {
                path: Some("ann@example.com".into())
            }))
        );
        assert_eq!(parse("RCPT FROM:<a@b.c>"), Command::Rcpt(None));
        assert_eq!(parse("quit"), Command::Quit);
        assert_eq!(parse("EHLO\tx"), Command::Unknown);
        assert_eq!(parse(""), Command::Unknown);
    }
}
