//! SMTP replies (RFC 5321 §4.2) with their enhanced status codes (RFC 3463): what the
//! server answers, what the client reads, what the test sink answers.

use std::fmt;

/// Class, subject and detail, as in `5.1.1`.
pub type Enhanced = (u8, u16, u16);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<Enhanced>,
    /// The text without the codes. A reply read is one line of text, its lines joined by
    /// spaces; a reply to send has a line of the reply for each line of text.
    pub text: String,
}

impl Reply {
    /// A reply with its enhanced code.
    pub fn new(code: u16, enhanced: Enhanced, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced: Some(enhanced),
            text: text.into(),
        }
    }

    /// A reply without an enhanced code: the greeting, EHLO's keywords, AUTH's challenges
    /// (RFC 2034 gives them none).
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced: None,
            text: text.into(),
        }
    }

    /// The reply as sent: a line for each line of its text, all but the last marked as
    /// continued (`250-`), each ending in CRLF.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 16);
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            if let Some((c, s, d)) = self.enhanced {
                out.extend_from_slice(format!("{c}.{s}.{d} ").as_bytes());
            }
            // A CR of the text is no line end: only this loop ends lines.
            let line = line.strip_suffix('\r').unwrap_or(line);
            out.extend(line.bytes().map(|b| if b == b'\r' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// Parses the lines of one complete reply (each without its CRLF).
    pub fn parse(lines: &[String]) -> Option<Self> {
        let code: u16 = lines.first()?.get(..3)?.parse().ok()?;
        if !(200..600).contains(&code) {
            return None;
        }
        let mut enhanced = None;
        let mut texts = Vec::new();
        for line in lines {
            if line.get(..3)?.parse::<u16>().ok()? != code {
                return None;
            }
            let mut text = line.get(4..).unwrap_or_default().trim();
            let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
            if let Some(e) = parse_enhanced(first)
                && e.0 as u16 == code / 100
            {
                enhanced.get_or_insert(e);
                text = rest.trim();
            }
            if !text.is_empty() {
                texts.push(text);
            }
        }
        Some(Self {
            code,
            enhanced,
            text: texts.join(" "),
        })
    }

    /// `5.1.1`, or the basic code's class as `5.0.0` when the server sent none.
    pub fn enhanced_string(&self) -> String {
        let (c, s, d) = self.enhanced.unwrap_or(((self.code / 100) as u8, 0, 0));
        format!("{c}.{s}.{d}")
    }
}

fn parse_enhanced(s: &str) -> Option<(u8, u16, u16)> {
    let mut parts = s.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    (parts.next().is_none() && matches!(class, 2 | 4 | 5) && subject < 1000 && detail < 1000)
        .then_some((class, subject, detail))
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.enhanced {
            Some((c, s, d)) => write!(f, "{} {c}.{s}.{d} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn single_and_multi_line_replies() {
        let r = Reply::parse(&lines(&["550 5.1.1 <x@example.com>: no such user"])).expect("reply");
        assert_eq!((r.code, r.enhanced), (550, Some((5, 1, 1))));
        assert_eq!(r.text, "<x@example.com>: no such user");
        assert!(r.is_permanent());
        let r = Reply::parse(&lines(&[
            "452-4.2.2 The mailbox is full.",
            "452 4.2.2 Try again later.",
        ]))
        .expect("reply");
        assert_eq!(
            r.to_string(),
            "452 4.2.2 The mailbox is full. Try again later."
        );
        let r = Reply::parse(&lines(&["250 OK"])).expect("reply");
        assert_eq!((r.enhanced, r.enhanced_string().as_str()), (None, "2.0.0"));
        assert_eq!(
            Reply::parse(&lines(&["556 5.1.10 null MX"])).and_then(|r| r.enhanced),
            Some((5, 1, 10))
        );
    }

    #[test]
    fn replies_sent_read_back() {
        let r = Reply::new(550, (5, 1, 1), "No such mailbox");
        assert_eq!(r.to_wire(), b"550 5.1.1 No such mailbox\r\n");
        let lines: Vec<String> = String::from_utf8(r.to_wire())
            .expect("ascii")
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(Reply::parse(&lines), Some(r));
        let ehlo = Reply::plain(250, "mx.example greets c\nPIPELINING\nHELP");
        assert_eq!(
            ehlo.to_wire(),
            b"250-mx.example greets c\r\n250-PIPELINING\r\n250 HELP\r\n"
        );
        assert_eq!(Reply::plain(334, "").to_wire(), b"334 \r\n");
    }

    /// Reply texts can carry what a client sent (a header name, an address): a CR in one
    /// must not reach the wire, where it would end the line early.
    #[test]
    fn a_carriage_return_in_the_text_is_no_line_end() {
        let r = Reply::new(550, (5, 6, 0), "X-Bad\rHeader: refused");
        assert_eq!(r.to_wire(), b"550 5.6.0 X-Bad Header: refused\r\n");
        let r = Reply::plain(250, "one\r\ntwo");
        assert_eq!(r.to_wire(), b"250-one\r\n250 two\r\n");
    }

    #[test]
    fn garbage_is_not_a_reply() {
        for bad in [
            &["hello"][..],
            &["99 x"],
            &["250-a", "251 b"],
            &["700 nope"],
        ] {
            assert!(Reply::parse(&lines(bad)).is_none(), "{bad:?}");
        }
    }
}
