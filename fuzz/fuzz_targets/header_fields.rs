//! The one reader of header fields (`kuvert_mail::header`). Checked, for any bytes:
//! - fields come in order, do not overlap, and lie before the body;
//! - each field's raw bytes start with its name and a colon (spaces allowed between), its
//!   value is the rest of them, and its name is printable ASCII without a colon;
//! - no field runs into the next line: inside a field, every line end is followed by a
//!   space or a tab (a receiving server reads the same fields);
//! - the fields written again, one after another, with a blank line read back as the same
//!   fields with the same values;
//! - `blocks` ends, and each of its blocks is a block `parse` reads the same way.
#![no_main]

use kuvert_mail::header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = header::parse(data);
    assert!(h.body_start <= data.len());
    let base = data.as_ptr() as usize;
    let mut end_of_last = 0;
    for f in &h.fields {
        let start = f.raw.as_ptr() as usize - base;
        assert!(start >= end_of_last, "fields overlap or are out of order");
        end_of_last = start + f.raw.len();
        assert!(end_of_last <= h.body_start, "a field past the body's start");
        assert!(!f.name.is_empty());
        assert!(f.name.bytes().all(|b| (33..=126).contains(&b) && b != b':'));
        assert!(f.raw.starts_with(f.name.as_bytes()));
        assert!(f.raw.ends_with(f.value));
        let between = &f.raw[f.name.len()..f.raw.len() - f.value.len()];
        assert!(
            between.last() == Some(&b':')
                && between[..between.len() - 1]
                    .iter()
                    .all(|b| b.is_ascii_whitespace()),
            "{between:?}"
        );
        let body = f.without_line_end();
        for (i, &b) in body.iter().enumerate() {
            if b == b'\n' {
                assert!(
                    matches!(body.get(i + 1), Some(b' ' | b'\t')),
                    "a field runs into the next line: {:?}",
                    String::from_utf8_lossy(f.raw)
                );
            }
        }
    }

    // Written again, field after field, they read back the same.
    let mut again = Vec::new();
    for f in &h.fields {
        again.extend_from_slice(f.raw);
        if !f.raw.ends_with(b"\n") {
            again.extend_from_slice(b"\r\n");
        }
    }
    again.extend_from_slice(b"\r\n");
    let back = header::parse(&again);
    let names = |h: &header::Header<'_>| {
        h.fields
            .iter()
            .map(|f| (f.name.to_owned(), f.unfolded()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&back), names(&h));
    assert_eq!(back.body_start, again.len());

    let mut n = 0;
    for b in header::blocks(data) {
        n += 1;
        assert!(n <= data.len(), "more blocks than bytes");
        assert!(!b.fields.is_empty());
    }
});
