//! The OpenAPI document against its committed copy (`openapi.json` beside this crate's
//! manifest): a change to the API shows in review as a change to that file. After a change
//! meant to change the API: `KUVERT_UPDATE_OPENAPI=1 cargo test -p kuvert-http --test openapi`.

use std::path::Path;

#[test]
fn the_document_is_the_committed_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let now = kuvert_http::openapi_json() + "\n";
    if std::env::var_os("KUVERT_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &now).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(&path).expect("openapi.json is committed");
    if committed != now {
        let first = committed
            .lines()
            .zip(now.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(now.lines().count()));
        panic!(
            "the OpenAPI document differs from {} from line {}:\n  committed: {:?}\n  now:       {:?}\n\
             If the API is meant to change, run KUVERT_UPDATE_OPENAPI=1 cargo test -p kuvert-http --test openapi",
            path.display(),
            first + 1,
            committed.lines().nth(first),
            now.lines().nth(first)
        );
    }
}

#[test]
fn every_error_code_is_in_the_document() {
    let doc: serde_json::Value = serde_json::from_str(&kuvert_http::openapi_json()).expect("JSON");
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    let codes: Vec<&str> = codes
        .as_array()
        .expect("ErrorCode is an enum schema")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for want in [
        "invalid_field",
        "unauthorized",
        "not_found",
        "rate_limited",
        "internal",
    ] {
        assert!(codes.contains(&want), "{want} in {codes:?}");
    }
    assert_eq!(
        doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
}
