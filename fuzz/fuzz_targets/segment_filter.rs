//! Segment filters as an account sends them (`kuvert_core::segment::Filter`, JSON), checked
//! against a fixed set of properties. Checked:
//! - no panic reading or checking;
//! - a filter that passes its check has at most `MAX_CONDITIONS` conditions, no deeper than
//!   `MAX_DEPTH`, and reads back equal once written;
//! - every property condition of a filter that passes compares as its property's kind
//!   says (text: `eq` or `ne` only).
#![no_main]

use std::collections::HashMap;

use kuvert_core::contact::PropertyKind;
use kuvert_core::segment::{Compare, Filter, MAX_CONDITIONS, MAX_DEPTH, Op};
use libfuzzer_sys::fuzz_target;

fn walk(f: &Filter, depth: usize, count: &mut usize, props: &HashMap<String, PropertyKind>) {
    *count += 1;
    assert!(depth <= MAX_DEPTH, "too deep");
    match f {
        Filter::All(v) | Filter::Any(v) => v.iter().for_each(|g| walk(g, depth + 1, count, props)),
        Filter::Not(g) => walk(g, depth + 1, count, props),
        Filter::Property(p) => match p.compare(props).expect("checked") {
            Compare::Text { .. } => {
                assert_eq!(props[&p.name], PropertyKind::String);
                assert!(matches!(p.op, Op::Eq | Op::Ne));
            }
            Compare::Number { value, .. } => {
                assert_ne!(props[&p.name], PropertyKind::String);
                assert!(value.is_finite());
            }
            Compare::Exists | Compare::Missing => {}
        },
        _ => {}
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(filter) = serde_json::from_slice::<Filter>(input) else {
        return;
    };
    let props: HashMap<String, PropertyKind> = [
        ("age", PropertyKind::Integer),
        ("score", PropertyKind::Decimal),
        ("vip", PropertyKind::Boolean),
        ("born", PropertyKind::DateTime),
        ("city", PropertyKind::String),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_owned(), k))
    .collect();
    if filter.check(&props).is_err() {
        return;
    }
    let mut count = 0;
    walk(&filter, 1, &mut count, &props);
    assert!(count <= MAX_CONDITIONS);
    let written = serde_json::to_vec(&filter).expect("serialises");
    let back: Filter = serde_json::from_slice(&written).expect("reads back");
    assert_eq!(back, filter);
});
