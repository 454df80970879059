//! Golden pairs in `testdata/`: each `.eml` beside the `.json` of what Kuvert reads in it.
//! `reports/`: what `report::parse` finds (DSN, ARF, automatic replies); `headers/`: the
//! header fields `header::parse` finds and where the body starts. After a change meant to
//! change what is read: `KUVERT_UPDATE_GOLDEN=1 cargo test -p kuvert-mail --test golden`,
//! then read the diff.

use std::path::{Path, PathBuf};

use kuvert_mail::{header, report};
use serde_json::{Value, json};

fn inputs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(dir);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("testdata")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 3, "golden inputs in {}", dir.display());
    out
}

/// Compares `got` with the `.json` beside `eml` (writes it first when asked to).
fn check(eml: &Path, got: Value) {
    let path = eml.with_extension("json");
    let pretty = serde_json::to_string_pretty(&got).expect("JSON") + "\n";
    if std::env::var_os("KUVERT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty).expect("write");
    }
    let want =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} is missing", path.display()));
    assert_eq!(pretty, want, "{} reads differently", eml.display());
}

#[test]
fn reports() {
    for (path, bytes) in inputs("reports") {
        check(
            &path,
            serde_json::to_value(report::parse(&bytes)).expect("JSON"),
        );
    }
}

#[test]
fn header_fields() {
    for (path, bytes) in inputs("headers") {
        let h = header::parse(&bytes);
        let fields: Vec<Value> = h
            .fields
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "value": f.unfolded(),
                    "raw": String::from_utf8_lossy(f.raw),
                })
            })
            .collect();
        let got = json!({
            "fields": fields,
            "body": String::from_utf8_lossy(&bytes[h.body_start..]),
        });
        check(&path, got);
    }
}
