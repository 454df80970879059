//! The header fields of a message, or of any block written like one (the fields of a
//! delivery status notification, a feedback report): the one place where Kuvert finds
//! where a field starts and ends.
//!
//! mail-parser finds them, told to read every field as raw lines: a field ends at a line end
//! that no space or tab follows, whatever its value holds. That is how a receiving server
//! reads the fields, so what Kuvert checks, signs and sends is field for field what its
//! recipients see. (mail-parser's parsers of structured values may read a malformed value
//! into the next line; they are used for values only, never for where a field ends.)

use std::sync::LazyLock;

use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderName, MessageParser};

/// Every field read as lines and nothing more. (A parser whose map of fields is empty uses
/// mail-parser's own structured parsers, so one entry is given.)
static LINES: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .default_header_ignore()
        .ignore_header(HeaderName::Subject)
});

/// One header field, borrowed from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name as written, without the spaces around it.
    pub name: &'a str,
    /// The whole field: name, colon, value with its folding, and its line end.
    pub raw: &'a [u8],
    /// What follows the colon, folding and line end included.
    pub value: &'a [u8],
}

impl Field<'_> {
    /// Whether the field has this name (ASCII, any case).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The field without its final line end, as DKIM canonicalises it.
    pub fn without_line_end(&self) -> &[u8] {
        let raw = self.raw.strip_suffix(b"\n").unwrap_or(self.raw);
        raw.strip_suffix(b"\r").unwrap_or(raw)
    }

    /// The value unfolded (RFC 5322 §2.2.3) and trimmed; not decoded.
    pub fn unfolded(&self) -> String {
        let text = String::from_utf8_lossy(self.value);
        let mut out = String::with_capacity(text.len());
        for (i, line) in text.split('\n').enumerate() {
            let line = line.trim_end_matches('\r');
            if i > 0 && !line.trim().is_empty() {
                out.push(' ');
            }
            out.push_str(line.trim());
        }
        out
    }
}

/// The fields of one header block, and where what follows its blank line starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub fields: Vec<Field<'a>>,
    /// The offset of the body (past the blank line), or the length of the input when the
    /// block has no blank line.
    pub body_start: usize,
}

impl<'a> Header<'a> {
    /// The first field of this name.
    pub fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.is(name))
    }

    /// How many fields have this name.
    pub fn count(&self, name: &str) -> usize {
        self.fields.iter().filter(|f| f.is(name)).count()
    }
}

/// The header block at the start of `data`. A line that is no field (it has no colon, or no
/// well-formed name before it) belongs to no field and is left out.
pub fn parse(data: &[u8]) -> Header<'_> {
    parse_at(data, 0)
}

fn parse_at(data: &[u8], start: usize) -> Header<'_> {
    let block = &data[start..];
    let mut stream = MessageStream::new(block);
    let mut found = Vec::new();
    let ended = stream.parse_headers(&LINES, &mut found);
    let body_start = if ended {
        start + stream.offset()
    } else {
        data.len()
    };
    let fields = found
        .iter()
        .filter_map(|h| {
            let (field, colon, end) = (
                h.offset_field as usize,
                h.offset_start as usize,
                h.offset_end as usize,
            );
            let raw = block.get(field..end)?;
            // mail-parser also hands back a last line that ends the input without a colon,
            // as a name without its last byte: no colon, no field.
            let name_end = colon.checked_sub(1)?;
            if block.get(name_end) != Some(&b':') {
                return None;
            }
            // ASCII white space only, as mail-parser skips it: a vertical tab stays, and
            // makes the name no name.
            let name = std::str::from_utf8(block.get(field..name_end)?)
                .ok()?
                .trim_matches(|c: char| c.is_ascii_whitespace());
            is_field_name(name).then_some(Field {
                name,
                raw,
                value: block.get(colon..end)?,
            })
        })
        .collect();
    Header { fields, body_start }
}

/// RFC 5322 §3.6.8: printable ASCII but the colon. A line whose name is anything else (has a
/// space inside, say) is not a field to a receiving server either.
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// The header-like blocks of `data`, one after another, each ended by a blank line (the
/// blocks of a delivery status notification). Blocks without a field are skipped.
pub fn blocks(data: &[u8]) -> impl Iterator<Item = Header<'_>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < data.len() {
            let h = parse_at(data, at);
            // Every call consumes at least a line end, or reaches the end.
            at = if h.body_start > at {
                h.body_start
            } else {
                data.len()
            };
            if !h.fields.is_empty() {
                return Some(h);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_end_at_a_line_end_no_space_follows() {
        let m = b"From: a@shop.example\r\nSubject: one\r\n two\r\nno field here\r\nDate: +c\r\nTo: b@x.example\r\n\r\nbody\r\n";
        let h = parse(m);
        let names: Vec<&str> = h.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, ["From", "Subject", "Date", "To"]);
        assert_eq!(h.fields[1].raw, b"Subject: one\r\n two\r\n");
        assert_eq!(h.fields[1].without_line_end(), b"Subject: one\r\n two");
        assert_eq!(h.fields[1].unfolded(), "one two");
        // A malformed date does not run into the next field.
        assert_eq!(h.fields[2].raw, b"Date: +c\r\n");
        assert_eq!(&m[h.body_start..], b"body\r\n");
        assert_eq!(h.count("subject"), 1);
        assert_eq!(
            h.get("to").map(|f| f.unfolded()).as_deref(),
            Some("b@x.example")
        );
        // A last line without a colon is no field (found by the `header_fields` fuzz
        // target: mail-parser gave it back with its last byte cut, "FromX" as "From").
        let h = parse(b"Subject: x\r\nFromX");
        assert_eq!(h.fields.len(), 1);
        assert_eq!(h.count("from"), 0);
        // Nor a line that starts with a vertical tab (found by the same target: the name,
        // trimmed of it, no longer began the field).
        assert!(parse(b"\x0bFrom: a@x\r\n\r\n").fields.is_empty());
        // Names a server would not read as one are no field.
        let h = parse(
            b"F rom: a@x
: From: b@x
From: c@x

",
        );
        assert_eq!(h.count("from"), 1);
        assert_eq!(h.fields.len(), 1);
    }

    #[test]
    fn a_block_without_a_blank_line_ends_with_the_input() {
        let block = b"Action: failed\nStatus: 5.1.1";
        let h = parse(block);
        assert_eq!(h.fields.len(), 2);
        assert_eq!(h.body_start, block.len());
        assert!(parse(b"").fields.is_empty());
        assert_eq!(parse(b"\r\nbody").body_start, 2);
    }

    #[test]
    fn blocks_one_after_another() {
        let d = b"Reporting-MTA: dns; mx.example\r\n\r\n\r\nFinal-Recipient: rfc822; a@x\r\nAction: failed\r\n\r\nFinal-Recipient: rfc822; b@x\r\n";
        let got: Vec<Vec<String>> = blocks(d)
            .map(|b| b.fields.iter().map(|f| f.unfolded()).collect())
            .collect();
        assert_eq!(
            got,
            [
                vec!["dns; mx.example".to_owned()],
                vec!["rfc822; a@x".to_owned(), "failed".to_owned()],
                vec!["rfc822; b@x".to_owned()],
            ]
        );
    }
}
