//! MJML to HTML, by `mrml`, once per version.

use std::collections::HashMap;

use mrml::prelude::render::RenderOptions;

use crate::{Part, TemplateError, guard};

fn invalid(message: String) -> TemplateError {
    TemplateError::Invalid {
        part: Part::Content,
        message,
    }
}

/// Renders MJML. `mj-include` is refused (the default loader loads nothing: a template
/// reads no file and no URL). No web fonts are added unless the template declares them with
/// `mj-font`: a font from a third-party host would tell that host each time the mail is
/// opened.
pub(crate) fn render(src: &str) -> Result<String, TemplateError> {
    guard::check_tags(src).map_err(invalid)?;
    // The HTML tokenizer under mrml asserts on some malformed input (its `debug_assert!` in
    // `Stream::advance`, found by the fuzz target) and may index past its end after it: such
    // a source is refused, not a panic of the server's thread.
    let parsed = std::panic::catch_unwind(|| mrml::parse(src))
        .map_err(|_| invalid("MJML the parser cannot read (a tag or comment left open?)".into()))?
        .map_err(|e| invalid(format!("not valid MJML: {e}")))?;
    let options = RenderOptions {
        fonts: HashMap::new(),
        ..RenderOptions::default()
    };
    parsed
        .element
        .render(&options)
        .map_err(|e| invalid(format!("MJML could not be rendered: {e}")))
}
