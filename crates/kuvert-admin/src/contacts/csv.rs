//! CSV as imports read it and exports write it (RFC 4180, with `;` accepted as the
//! separator when the header uses it, as spreadsheets in much of Europe write it). Reading
//! is push-style: an upload arrives in pieces, and a record may span two of them, so the
//! parser keeps its place between pieces and memory holds one record at a time.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder, WriteResult, Writer};

/// A record longer than this is refused: the import fails there rather than hold it.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Fields in one record at most.
pub const MAX_FIELDS: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("row {0} is longer than 1 MiB")]
    RecordTooLong(u64),
    #[error("row {0} has more than 512 columns")]
    TooManyFields(u64),
}

/// Reads records from pieces of input. Record 0 is the header.
pub struct Records {
    reader: Option<Reader>,
    out: Vec<u8>,
    ends: Vec<usize>,
    outpos: usize,
    endpos: usize,
    /// Records handed out so far.
    count: u64,
    /// The start of the input, kept until the header's separator is known.
    head: Vec<u8>,
    bom_checked: bool,
}

impl Default for Records {
    fn default() -> Self {
        Self::new()
    }
}

impl Records {
    pub fn new() -> Self {
        Self {
            reader: None,
            out: vec![0; 4096],
            ends: vec![0; 32],
            outpos: 0,
            endpos: 0,
            count: 0,
            head: Vec::new(),
            bom_checked: false,
        }
    }

    /// Records handed out so far (the header too).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Parses `input`, calling `each` with every record it completes (its number, 0 for the
    /// header, and its fields, invalid UTF-8 replaced). A record cut at the end of `input`
    /// is finished by the next call, or by [`Records::finish`].
    pub fn feed(
        &mut self,
        input: &[u8],
        each: &mut dyn FnMut(u64, &[&str]),
    ) -> Result<(), CsvError> {
        if !self.bom_checked {
            // The separator is chosen from the header line: wait for its end.
            self.head.extend_from_slice(input);
            if !self.head.contains(&b'\n') && self.head.len() < MAX_RECORD_BYTES {
                return Ok(());
            }
            self.bom_checked = true;
            let head = std::mem::take(&mut self.head);
            let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
            self.reader = Some(reader_for(body));
            return self.parse(body, each);
        }
        self.parse(input, each)
    }

    /// The end of the input: the last record, if it had no line end.
    pub fn finish(&mut self, each: &mut dyn FnMut(u64, &[&str])) -> Result<(), CsvError> {
        if !self.bom_checked {
            self.bom_checked = true;
            let head = std::mem::take(&mut self.head);
            let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head).to_vec();
            self.reader = Some(reader_for(&body));
            self.parse(&body, each)?;
        }
        self.parse(&[], each)
    }

    fn parse(
        &mut self,
        mut input: &[u8],
        each: &mut dyn FnMut(u64, &[&str]),
    ) -> Result<(), CsvError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(());
        };
        loop {
            let (outpos, endpos) = (self.outpos, self.endpos);
            let (res, nin, nout, nend) =
                reader.read_record(input, &mut self.out[outpos..], &mut self.ends[endpos..]);
            input = &input[nin..];
            // csv-core counts field ends from the start of the record, across calls.
            self.outpos += nout;
            self.endpos += nend;
            match res {
                ReadRecordResult::InputEmpty => return Ok(()),
                ReadRecordResult::OutputFull => {
                    if self.out.len() >= MAX_RECORD_BYTES {
                        return Err(CsvError::RecordTooLong(self.count));
                    }
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= MAX_FIELDS {
                        return Err(CsvError::TooManyFields(self.count));
                    }
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    // Each field is read as UTF-8 on its own: two fields may join into
                    // valid UTF-8 that a field boundary would cut.
                    let mut start = 0;
                    let mut cells: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(self.endpos);
                    for &end in &self.ends[..self.endpos] {
                        cells.push(String::from_utf8_lossy(&self.out[start..end]));
                        start = end;
                    }
                    let fields: Vec<&str> = cells.iter().map(|c| c.as_ref()).collect();
                    // A blank line is no record.
                    if !(fields.len() == 1 && fields[0].is_empty()) {
                        each(self.count, &fields);
                        self.count += 1;
                    }
                    self.outpos = 0;
                    self.endpos = 0;
                }
                ReadRecordResult::End => return Ok(()),
            }
        }
    }
}

/// A reader with the separator the header line uses: `;` when it has semicolons and no
/// comma, else `,`.
fn reader_for(body: &[u8]) -> Reader {
    let line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let semicolon = line.contains(&b';') && !line.contains(&b',');
    ReaderBuilder::new()
        .delimiter(if semicolon { b';' } else { b',' })
        .build()
}

/// Writes one record, quoting fields as needed, and a CRLF, for a file people open:
/// a cell a spreadsheet would run as a formula is written with a leading quote mark.
pub fn write_record(out: &mut Vec<u8>, fields: &[&str]) {
    write(out, fields, true);
}

/// Writes one record as [`write_record`] does, but every value as it is: for a CSV that
/// Kuvert itself reads back (an import made from an API request), where a guard would change
/// the data.
pub fn write_record_exact(out: &mut Vec<u8>, fields: &[&str]) {
    write(out, fields, false);
}

fn write(out: &mut Vec<u8>, fields: &[&str], guard: bool) {
    let mut w = Writer::new();
    let mut buf = [0u8; 1024];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            let (_, n) = w.delimiter(&mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        // Formulas are a spreadsheet's, not ours: a cell that a spreadsheet would run is
        // written with a leading quote mark (CSV injection).
        let guarded;
        let field = if guard
            && field.starts_with(['=', '+', '-', '@', '\t', '\r'])
            && field.parse::<f64>().is_err()
        {
            guarded = format!("'{field}");
            guarded.as_str()
        } else {
            field
        };
        let mut input = field.as_bytes();
        loop {
            let (res, nin, nout) = w.field(input, &mut buf);
            out.extend_from_slice(&buf[..nout]);
            input = &input[nin..];
            if res == WriteResult::InputEmpty {
                break;
            }
        }
        loop {
            let (res, n) = w.finish(&mut buf);
            out.extend_from_slice(&buf[..n]);
            if res == WriteResult::InputEmpty {
                break;
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_record_reads_back_as_written() {
        let fields = ["-news@x.example", "@alice", "+44 20 7946 0958", "a,\"b\""];
        let mut out = Vec::new();
        write_record_exact(&mut out, &fields);
        let mut got = Vec::new();
        let mut r = Records::new();
        let mut each =
            |_: u64, f: &[&str]| got.push(f.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        r.feed(&out, &mut each).expect("feed");
        r.finish(&mut each).expect("finish");
        assert_eq!(got, [fields.map(str::to_owned).to_vec()]);
        let mut guarded = Vec::new();
        write_record(&mut guarded, &fields);
        assert!(guarded.starts_with(b"'-news"), "exports keep their guard");
    }

    fn read_in(pieces: &[&[u8]]) -> Result<Vec<Vec<String>>, CsvError> {
        let mut r = Records::new();
        let mut all = Vec::new();
        let mut each = |_: u64, f: &[&str]| all.push(f.iter().map(|s| s.to_string()).collect());
        for p in pieces {
            r.feed(p, &mut each)?;
        }
        r.finish(&mut each)?;
        Ok(all)
    }

    #[test]
    fn records_across_pieces() {
        let whole = b"\xEF\xBB\xBFemail,name\r\na@x.test,\"Ann, \"\"A\"\"\"\nb@x.test,Bob";
        let want = vec![
            vec!["email".to_string(), "name".into()],
            vec!["a@x.test".into(), "Ann, \"A\"".into()],
            vec!["b@x.test".into(), "Bob".into()],
        ];
        assert_eq!(read_in(&[whole]).expect("test value"), want);
        for cut in 1..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(read_in(&[a, b]).expect("test value"), want, "cut at {cut}");
        }
    }

    #[test]
    fn semicolons_blank_lines_and_bounds() {
        let got = read_in(&[b"email;name\n\na@x.test;A,nn\n"]).expect("test value");
        assert_eq!(got[1], vec!["a@x.test".to_string(), "A,nn".into()]);
        assert_eq!(got.len(), 2);
        let long = format!("email\n{}\n", "x".repeat(MAX_RECORD_BYTES + 1));
        assert_eq!(read_in(&[long.as_bytes()]), Err(CsvError::RecordTooLong(1)));
        let wide = format!("email\n{}\n", ",".repeat(MAX_FIELDS + 1));
        assert_eq!(read_in(&[wide.as_bytes()]), Err(CsvError::TooManyFields(1)));
        let bad = read_in(&[b"email\n\xFFa@x.test\n"]).expect("test value");
        assert_eq!(bad[1][0], "\u{FFFD}a@x.test");
        // Two fields whose bytes join into one character are read apart.
        let split = read_in(&[b"a,b\n\xC3,\xA9\n"]).expect("test value");
        assert_eq!(split[1], vec!["\u{FFFD}".to_string(), "\u{FFFD}".into()]);
    }

    #[test]
    fn writes_what_it_reads() {
        let mut out = Vec::new();
        write_record(
            &mut out,
            &["a@x.test", "Ann, \"A\"", "line\nbreak", "=SUM(A1)", "-5"],
        );
        let got = read_in(&[&out]).expect("test value");
        assert_eq!(
            got[0],
            vec![
                "a@x.test".to_string(),
                "Ann, \"A\"".into(),
                "line\nbreak".into(),
                "'=SUM(A1)".into(),
                "-5".into()
            ]
        );
    }
}
