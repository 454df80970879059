//! The bytes of the conversation, without I/O: lines (CRLF and nothing else, bounded in
//! length) and the message after DATA (dot-unstuffed, ended only by CRLF.CRLF). The session
//! feeds these what its socket gives, in whatever pieces it comes; the result does not depend
//! on where the pieces break.

/// One line as read: its text without the line end (at most `limit - 1` bytes of it kept, one
/// more when it starts with a dot), whether it ended in CRLF (else in a bare LF), and whether
/// it was longer than the limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawLine {
    pub text: Vec<u8>,
    pub crlf: bool,
    pub too_long: bool,
    /// The last byte before the LF seen so far.
    last: u8,
    /// The first byte of the line, once seen.
    first: Option<u8>,
}

impl RawLine {
    /// Empties the line for the next one, keeping its buffer.
    pub fn clear(&mut self) {
        self.text.clear();
        self.crlf = false;
        self.too_long = false;
        self.last = 0;
        self.first = None;
    }

    /// Takes the start of `buf` that belongs to this line: the bytes taken, and whether the
    /// line ended (its LF was among them). The LF, and the CR of a CRLF, are not kept; text
    /// past `limit` (CRLF included) is skipped and marked. The dot a client doubles at the
    /// start of a line is not counted (RFC 5321 §4.5.3.1.6).
    pub fn feed(&mut self, buf: &[u8], limit: usize) -> (usize, bool) {
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let chunk = &buf[..if done { take - 1 } else { take }];
        if let Some(&b) = chunk.last() {
            self.last = b;
        }
        if self.first.is_none() {
            self.first = chunk.first().copied();
        }
        // Room for the text and its CR; the LF makes the limit.
        let dot = usize::from(self.first == Some(b'.'));
        let room = (limit.saturating_sub(1) + dot).saturating_sub(self.text.len());
        if chunk.len() > room {
            self.too_long = true;
        }
        self.text.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if done {
            self.crlf = self.last == b'\r';
            if self.crlf && !self.too_long {
                self.text.pop();
            }
        }
        (take, done)
    }
}

/// Why a message that was read to its end is refused, in the order the checks are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A bare CR or LF.
    BareLineEnd,
    /// A NUL byte (RFC 5322 allows none).
    Nul,
    /// A line longer than the limit.
    LineTooLong,
    /// More than the largest message allowed.
    TooBig,
}

/// The message after DATA, line by line.
#[derive(Debug)]
pub struct DataReader {
    data: Vec<u8>,
    max: usize,
    bare: bool,
    long: bool,
    too_big: bool,
    nul: bool,
    /// The previous line ended in CRLF: only then can a "." line end the data.
    after_crlf: bool,
}

impl DataReader {
    /// A reader that keeps at most `max` bytes of message.
    pub fn new(max: usize) -> Self {
        Self {
            data: Vec::new(),
            max,
            bare: false,
            long: false,
            too_big: false,
            nul: false,
            after_crlf: true,
        }
    }

    /// Takes one whole line; true when it ended the data (it is then not part of it).
    pub fn line(&mut self, line: &RawLine) -> bool {
        if self.after_crlf && line.crlf && line.text == b"." {
            return true;
        }
        self.long |= line.too_long;
        self.bare |= !line.crlf || line.text.contains(&b'\r');
        self.nul |= line.text.contains(&0);
        self.after_crlf = line.crlf;
        // A line starting with "." had it doubled by the client (RFC 5321 §4.5.2).
        let text = line.text.strip_prefix(b".").unwrap_or(&line.text);
        if self.data.len() + text.len() + 2 > self.max {
            self.too_big = true;
        } else if !self.too_big {
            self.data.extend_from_slice(text);
            self.data.extend_from_slice(b"\r\n");
        }
        false
    }

    /// The message (CRLF line ends, dot-unstuffed), or why it is refused.
    pub fn finish(self) -> Result<Vec<u8>, Refusal> {
        if self.bare {
            Err(Refusal::BareLineEnd)
        } else if self.nul {
            Err(Refusal::Nul)
        } else if self.long {
            Err(Refusal::LineTooLong)
        } else if self.too_big {
            Err(Refusal::TooBig)
        } else {
            Ok(self.data)
        }
    }
}

/// Reads the message at the start of `input` as the session does, with lines of at most
/// `limit` bytes and at most `max` bytes of message: the outcome and the bytes taken (the
/// rest is the next command), or `None` when `input` ends before the data does.
pub fn read(input: &[u8], limit: usize, max: usize) -> Option<(Result<Vec<u8>, Refusal>, usize)> {
    let mut reader = DataReader::new(max);
    let mut line = RawLine::default();
    let mut at = 0;
    loop {
        line.clear();
        loop {
            if at == input.len() {
                return None;
            }
            let (take, done) = line.feed(&input[at..], limit);
            at += take;
            if done {
                break;
            }
        }
        if reader.line(&line) {
            return Some((reader.finish(), at));
        }
    }
}

/// The message as DATA sends it: CRLF line ends (bare LF and CR are made CRLF, so nothing
/// can smuggle an end of data), dot-stuffed (RFC 5321 §4.5.2), ending in `CRLF.CRLF`.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 5);
    let mut rest = message;
    let mut at_line_start = true;
    // Line by line: each line's text is copied in one piece.
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        if end > 0 {
            if rest[0] == b'.' {
                out.push(b'.');
            }
            out.extend_from_slice(&rest[..end]);
            at_line_start = false;
        }
        rest = &rest[end..];
        if let Some(&b) = rest.first() {
            out.extend_from_slice(b"\r\n");
            let skip = if b == b'\r' && rest.get(1) == Some(&b'\n') {
                2
            } else {
                1
            };
            rest = &rest[skip..];
            at_line_start = true;
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\nx"), b"..\r\nx\r\n.\r\n");
        assert_eq!(
            dot_stuff(b"a\n.\nb\r.\r\n"),
            b"a\r\n..\r\nb\r\n..\r\n.\r\n",
            "bare LF and CR cannot end the data"
        );
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn a_stuffed_message_reads_back_and_the_rest_is_left() {
        let m = b"Subject: x\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n";
        let mut sent = dot_stuff(m);
        sent.extend_from_slice(b"QUIT\r\n");
        let (got, taken) = read(&sent, 1000, 1 << 20).expect("ends");
        assert_eq!(got.as_deref(), Ok(&m[..]));
        assert_eq!(&sent[taken..], b"QUIT\r\n");
        assert_eq!(read(b".\r\n", 1000, 10), Some((Ok(vec![]), 3)));
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_data() {
        // <LF>.<CRLF>, <CRLF>.<LF> and <CR>.<CR> are content (and refused as bare line ends).
        for sent in [
            &b"a\n.\r\nb\r\n.\r\n"[..],
            b"a\r\n.\nb\r\n.\r\n",
            b"a\r.\rb\r\n.\r\n",
        ] {
            let (got, taken) = read(sent, 1000, 1 << 20).expect("ends");
            assert_eq!(got, Err(Refusal::BareLineEnd), "{sent:?}");
            assert_eq!(taken, sent.len(), "{sent:?}");
        }
        assert_eq!(read(b"a\r\n.\n", 1000, 1 << 20), None);
    }

    #[test]
    fn refusals_come_in_order_and_pieces_do_not_matter() {
        let long = [b"x".repeat(998), b"\r\n.\r\n".to_vec()].concat();
        assert_eq!(
            read(&long, 1000, 1 << 20).map(|r| r.0),
            Some(Ok(long[..1000].to_vec()))
        );
        let longer = [b"x".repeat(999), b"\r\n.\r\n".to_vec()].concat();
        let got = read(&longer, 1000, 1 << 20).map(|r| r.0);
        assert_eq!(got, Some(Err(Refusal::LineTooLong)));
        assert_eq!(
            read(b"a\0\r\nb\n\r\n.\r\n", 1000, 1 << 20).map(|r| r.0),
            Some(Err(Refusal::BareLineEnd))
        );
        assert_eq!(
            read(b"a\0\r\n.\r\n", 1000, 1 << 20).map(|r| r.0),
            Some(Err(Refusal::Nul))
        );
        assert_eq!(
            read(b"abcd\r\n.\r\n", 1000, 5).map(|r| r.0),
            Some(Err(Refusal::TooBig))
        );
        // Fed one byte at a time, a line comes out the same.
        let mut line = RawLine::default();
        for (i, b) in longer.iter().enumerate() {
            if line.feed(std::slice::from_ref(b), 1000) == (1, true) {
                assert_eq!(i, 1000);
                break;
            }
        }
        assert!(line.too_long && line.crlf && line.text.len() == 999);
    }

    /// Found by the `smtp_data` fuzz target: a line of 1000 octets with its CRLF that starts
    /// with a dot is sent as 1001 (the dot doubled), and was refused as too long.
    #[test]
    fn the_doubled_dot_does_not_count_towards_the_line_limit() {
        let line = [b".".to_vec(), b"x".repeat(997), b"\r\n".to_vec()].concat();
        assert_eq!(line.len(), 1000);
        let sent = dot_stuff(&line);
        assert_eq!(
            read(&sent, 1000, 1 << 20).map(|r| r.0),
            Some(Ok(line.clone()))
        );
        let longer = [b".".to_vec(), line].concat();
        let sent = dot_stuff(&longer);
        assert_eq!(
            read(&sent, 1000, 1 << 20).map(|r| r.0),
            Some(Err(Refusal::LineTooLong))
        );
    }
}
