//! The import's CSV reader (`kuvert_admin::contacts::csv::Records`), which an account's
//! upload reaches in pieces, and what the import does with each cell. Checked:
//! - no panic, for any bytes cut anywhere;
//! - the records read in one piece are the records read in two, wherever the cut falls (the
//!   first byte of the input chooses it);
//! - a record read and written again (`write_record`, behind a header line with a comma, as
//!   the export writes) reads back the same, but for cells a spreadsheet would run, which
//!   are written with a leading quote mark;
//! - every cell through the sensitive-data check and masking, which show at most four of
//!   a long value's letters and digits.
#![no_main]

use kuvert_admin::contacts::csv::{Records, write_record};
use kuvert_core::sensitive::{ColumnScan, classify, mask};
use libfuzzer_sys::fuzz_target;

fn read(pieces: &[&[u8]]) -> Option<Vec<Vec<String>>> {
    let mut r = Records::new();
    let mut all = Vec::new();
    let mut each = |_: u64, f: &[&str]| all.push(f.iter().map(|s| s.to_string()).collect());
    for p in pieces {
        r.feed(p, &mut each).ok()?;
    }
    r.finish(&mut each).ok()?;
    Some(all)
}

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let whole = read(&[data]);
    let at = usize::from(cut) * data.len() / 256;
    let (a, b) = data.split_at(at);
    assert_eq!(read(&[a, b]), whole, "cut at {at}");
    let Some(records) = whole else { return };
    let mut scan = ColumnScan::new();
    for record in &records {
        let fields: Vec<&str> = record.iter().map(String::as_str).collect();
        for f in &fields {
            let _ = classify(f);
            scan.observe(f);
            let alnum = f.chars().filter(|c| c.is_alphanumeric()).count();
            let shown = mask(f)
                .chars()
                .filter(|c| c.is_alphanumeric())
                .count();
            if alnum >= 8 {
                assert!(shown <= 4, "{f:?} masked shows {shown}");
            }
        }
        // Written behind a header with a comma, as the export writes it: the separator is
        // chosen from the first line, and a lone field holding `;` would choose `;`.
        let mut out = b"h,h\r\n".to_vec();
        write_record(&mut out, &fields);
        let back = read(&[&out]).expect("what was written reads");
        let guarded = |f: &str| f.starts_with(['=', '+', '-', '@', '\t', '\r']) && f.parse::<f64>().is_err();
        if fields.iter().all(|f| !guarded(f)) && !(fields.len() == 1 && fields[0].is_empty()) {
            assert_eq!(back.get(1), Some(record), "written: {:?}", String::from_utf8_lossy(&out));
        }
    }
    let _ = scan.finding();
});
