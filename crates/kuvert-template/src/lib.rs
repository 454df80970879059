//! Templates without I/O. A version's source (MJML or HTML, an optional text part and an
//! optional subject) is compiled once when it is saved: MJML becomes HTML there, and every
//! part is checked as Handlebars. Each copy then only fills in variables, within a bound on
//! its work that is known before it starts ([`Prepared::render`]).
//!
//! Handlebars, because it is what Mailgun's stored templates speak (and Mailjet's language
//! is close to it): code written for either moves here with its templates. Strict mode: a
//! variable the data lacks is an error, never a blank.

mod guard;
mod mjml;
mod text;
mod vars;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use text::html_to_text;
pub use vars::{MAX_RENDER_STEPS, MAX_RENDERED_BYTES, escape_html};

/// The largest source of one part (MJML or HTML, text, subject).
pub const MAX_SOURCE_BYTES: usize = 512 * 1024;
/// The most bytes of a version's defaults (as JSON).
pub const MAX_DEFAULTS_BYTES: usize = 64 * 1024;
/// How deeply MJML tags or Handlebars blocks, else-chains and subexpressions may nest: the
/// parsers recurse, and a deeper source is no real template but an attempt on the stack.
pub const MAX_NESTING: usize = 100;
/// The variable that becomes the contact's unsubscribe link: it is left as
/// [`UNSUBSCRIBE_PLACEHOLDER`] for the delivery step that writes each recipient's link.
pub const UNSUBSCRIBE_VARIABLE: &str = "unsubscribe_url";
pub use kuvert_core::tracking::UNSUBSCRIBE_PLACEHOLDER;

/// What a version's main part is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// MJML, rendered to HTML by `mrml` when the version is saved.
    Mjml,
    Html,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Mjml => "mjml",
            Engine::Html => "html",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mjml" => Some(Engine::Mjml),
            "html" => Some(Engine::Html),
            _ => None,
        }
    }
}

/// A version as its author wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub engine: Engine,
    /// MJML or HTML, with Handlebars variables.
    pub content: String,
    /// The text part; derived from the HTML of each copy when absent.
    pub text: Option<String>,
    /// The subject; a send may give its own instead.
    pub subject: Option<String>,
    /// Values for variables that the data of a send or a contact may leave out.
    #[serde(default)]
    pub defaults: Map<String, Value>,
}

/// A version ready to store: the source and the HTML it compiled to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compiled {
    pub source: Source,
    /// The HTML with its Handlebars variables (MJML already rendered).
    pub html: String,
}

/// One copy's parts, variables filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub html: String,
    pub text: String,
}

impl Rendered {
    /// Whether the copy links its unsubscribe page: such a send needs the link written in.
    pub fn asks_for_unsubscribe(&self) -> bool {
        self.html.contains(UNSUBSCRIBE_PLACEHOLDER) || self.text.contains(UNSUBSCRIBE_PLACEHOLDER)
    }
}

/// Which part of a version an error is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Content,
    Text,
    Subject,
    Defaults,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Content => "content",
            Part::Text => "text",
            Part::Subject => "subject",
            Part::Defaults => "defaults",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The source cannot be a template (MJML or Handlebars syntax, a helper we do not run, too
    /// large or too deep).
    #[error("{part}: {message}")]
    Invalid { part: Part, message: String },
    /// The data has no value for a variable the template uses.
    #[error("{part}: the variable {name:?} has no value")]
    MissingVariable { part: Part, name: String },
    /// The data is well formed but makes the template fail (a helper given the wrong kind
    /// of value, say).
    #[error("{part}: {message}")]
    Render { part: Part, message: String },
    /// The template would loop over the data more than the bound allows.
    #[error(
        "{part}: with this data the template would take {steps} steps; the limit is {MAX_RENDER_STEPS} (loops nested over long lists)"
    )]
    TooMuchWork { part: Part, steps: u64 },
    #[error("{part}: the rendered part passes the limit of {MAX_RENDERED_BYTES} bytes")]
    TooLarge { part: Part },
}

impl TemplateError {
    pub fn part(&self) -> Part {
        match self {
            TemplateError::Invalid { part, .. }
            | TemplateError::MissingVariable { part, .. }
            | TemplateError::Render { part, .. }
            | TemplateError::TooMuchWork { part, .. }
            | TemplateError::TooLarge { part } => *part,
        }
    }
}

/// Compiles a version: MJML to HTML, and checks every part as Handlebars. CPU-bound (MJML):
/// run it off the async workers.
pub fn compile(source: Source) -> Result<Compiled, TemplateError> {
    for (part, s) in [
        (Part::Content, Some(&source.content)),
        (Part::Text, source.text.as_ref()),
        (Part::Subject, source.subject.as_ref()),
    ] {
        if let Some(s) = s
            && s.len() > MAX_SOURCE_BYTES
        {
            return Err(TemplateError::Invalid {
                part,
                message: format!("{} bytes; the limit is {MAX_SOURCE_BYTES} bytes", s.len()),
            });
        }
    }
    let defaults = serde_json::to_vec(&source.defaults).map_or(0, |v| v.len());
    if defaults > MAX_DEFAULTS_BYTES {
        return Err(TemplateError::Invalid {
            part: Part::Defaults,
            message: format!("{defaults} bytes; the limit is {MAX_DEFAULTS_BYTES} bytes"),
        });
    }
    if let Some(subject) = &source.subject
        && subject.contains(['\r', '\n'])
    {
        return Err(TemplateError::Invalid {
            part: Part::Subject,
            message: "a subject must not contain a line break".into(),
        });
    }
    let html = match source.engine {
        Engine::Mjml => mjml::render(&source.content)?,
        // HTML reaches no recursive parser but Handlebars', whose nesting `prepare` checks.
        Engine::Html => source.content.clone(),
    };
    let compiled = Compiled { source, html };
    let prepared = compiled.prepare()?;
    if let Some(subject) = &prepared.subject
        && subject
            .variables()
            .iter()
            .any(|v| v == UNSUBSCRIBE_VARIABLE)
    {
        return Err(TemplateError::Invalid {
            part: Part::Subject,
            message: format!("{{{{{UNSUBSCRIBE_VARIABLE}}}}} belongs in the body, not the subject"),
        });
    }
    Ok(compiled)
}

/// A compiled version parsed for rendering: keep one per version and render each copy with it.
pub struct Prepared {
    defaults: Map<String, Value>,
    html: vars::Part,
    text: Option<vars::Part>,
    subject: Option<vars::Part>,
}

impl Compiled {
    pub fn prepare(&self) -> Result<Prepared, TemplateError> {
        Ok(Prepared {
            defaults: self.source.defaults.clone(),
            html: vars::Part::parse(Part::Content, &self.html, true)?,
            text: self
                .source
                .text
                .as_deref()
                .map(|t| vars::Part::parse(Part::Text, t, false))
                .transpose()?,
            subject: self
                .source
                .subject
                .as_deref()
                .map(|s| vars::Part::parse(Part::Subject, s, false))
                .transpose()?,
        })
    }
}

impl Prepared {
    /// Fills in one copy. `data` is an object of variables over the version's defaults;
    /// `unsubscribe_url` is added (as the placeholder the delivery step replaces) unless the
    /// data has one. The cost is bounded before the work starts: the parts' steps times the
    /// longest list in the data to the power of how deeply loops nest, times its size.
    pub fn render(&self, data: &Value) -> Result<Rendered, TemplateError> {
        let mut merged = self.defaults.clone();
        if let Value::Object(given) = data {
            merged.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        merged
            .entry(UNSUBSCRIBE_VARIABLE)
            .or_insert_with(|| Value::String(UNSUBSCRIBE_PLACEHOLDER.into()));
        let data = Value::Object(merged);
        let size = vars::DataSize::of(&data);
        let html = self.html.render(&data, &size)?;
        let text = match &self.text {
            Some(t) => t.render(&data, &size)?,
            None => html_to_text(&html),
        };
        let subject = self
            .subject
            .as_ref()
            .map(|s| s.render(&data, &size))
            .transpose()?
            .map(|s| s.replace(['\r', '\n'], " "));
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }

    /// The variables the parts name at their top level (for a preview's sample data).
    pub fn variables(&self) -> Vec<String> {
        let mut names: Vec<String> = [Some(&self.html), self.text.as_ref(), self.subject.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|p| p.variables())
            .filter(|n| n != UNSUBSCRIBE_VARIABLE)
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn html(content: &str) -> Source {
        Source {
            engine: Engine::Html,
            content: content.into(),
            text: None,
            subject: None,
            defaults: Default::default(),
        }
    }

    #[test]
    fn fills_variables_escaping_html_only_in_html() {
        let c = compile(Source {
            subject: Some("Hello {{name}}".into()),
            defaults: Default::default(),
            ..html("<p>Hi {{name}}, {{{bold}}}</p>")
        })
        .expect("valid");
        let r = c
            .prepare()
            .expect("valid")
            .render(&json!({"name": "A & <B>", "bold": "<b>x</b>"}))
            .expect("valid");
        assert_eq!(r.html, "<p>Hi A &amp; &lt;B&gt;, <b>x</b></p>");
        assert_eq!(r.subject.as_deref(), Some("Hello A & <B>"));
        assert_eq!(r.text, "Hi A & <B>, x");
    }

    #[test]
    fn a_missing_variable_is_an_error_not_a_blank() {
        let p = compile(html("<p>Hi {{name}} {{city}}</p>"))
            .expect("valid")
            .prepare()
            .expect("valid");
        let e = p.render(&json!({"name": "A"})).expect_err("refused");
        assert_eq!(
            e,
            TemplateError::MissingVariable {
                part: Part::Content,
                name: "city".into()
            }
        );
        let e = p.render(&json!({"city": "B"})).expect_err("refused");
        assert!(matches!(e, TemplateError::MissingVariable { .. }), "{e:?}");
    }

    #[test]
    fn defaults_fill_what_the_data_leaves_out() {
        let mut source = html("<p>{{greeting}} {{name}}</p>");
        source.defaults = json!({"greeting": "Hello", "name": "friend"})
            .as_object()
            .cloned()
            .expect("object");
        let p = compile(source).expect("valid").prepare().expect("valid");
        assert_eq!(
            p.render(&json!({})).expect("renders").html,
            "<p>Hello friend</p>"
        );
        assert_eq!(
            p.render(&json!({"name": "Ada"})).expect("renders").html,
            "<p>Hello Ada</p>"
        );
        let mut big = html("x");
        big.defaults
            .insert("a".into(), Value::String("x".repeat(MAX_DEFAULTS_BYTES)));
        let e = compile(big).expect_err("refused");
        assert!(
            matches!(
                e,
                TemplateError::Invalid {
                    part: Part::Defaults,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn unsubscribe_url_stays_for_delivery() {
        let p = compile(html("<a href=\"{{unsubscribe_url}}\">leave {{name}}</a>"))
            .expect("valid")
            .prepare()
            .expect("valid");
        let r = p.render(&json!({"name": "x"})).expect("valid");
        assert_eq!(r.html, "<a href=\"{{unsubscribe_url}}\">leave x</a>");
        assert_eq!(p.variables(), vec!["name".to_owned()]);
    }

    #[test]
    fn partials_decorators_and_unknown_helpers_are_refused() {
        for src in [
            "{{> header}}",
            "{{#*inline \"a\"}}x{{/inline}}",
            "{{log name}}",
            "{{#nope x}}y{{/nope}}",
            "{{upper (lower name)}}",
            "{{log}}",
            "{{{raw}}}",
            "{{(log name)}}",
            "{{#each [1,2,3]}}x{{/each}}",
            "{{lookup {\"a\": 1} \"a\"}}",
        ] {
            let e = compile(html(src)).expect_err("refused");
            assert!(
                matches!(
                    e,
                    TemplateError::Invalid {
                        part: Part::Content,
                        ..
                    }
                ),
                "{src}: {e:?}"
            );
        }
        // The helpers that are run.
        let p = compile(html(
            "{{#each items}}{{#if (gt this 1)}}{{this}}{{else}}-{{/if}}{{/each}}{{#with a}}{{b}}{{/with}}{{lookup items 0}}{{len items}}",
        ))
        .expect("valid")
        .prepare()
        .expect("valid");
        let r = p
            .render(&json!({"items": [1, 2, 3], "a": {"b": "!"}}))
            .expect("valid");
        assert_eq!(r.html, "-23!13");
    }

    #[test]
    fn loops_nested_over_long_lists_are_refused_before_they_run() {
        let p = compile(html(
            "{{#each a}}{{#each ../a}}{{#each ../../a}}{{#if false}}x{{/if}}{{/each}}{{/each}}{{/each}}",
        ))
        .expect("valid")
        .prepare()
        .expect("valid");
        let small: Vec<u32> = (0..10).collect();
        let r = p.render(&json!({ "a": small }));
        assert!(r.is_ok(), "{r:?}");
        let long: Vec<u32> = (0..1000).collect();
        let e = p.render(&json!({ "a": long })).expect_err("refused");
        assert!(matches!(e, TemplateError::TooMuchWork { .. }), "{e:?}");
    }

    #[test]
    fn large_data_makes_every_step_dear() {
        // Under the bound by steps alone (two loops over 700 items), but each step may copy
        // 60 KB of data.
        let p = compile(html(
            "{{#each a}}{{#each ../a}}{{#if (len ../../s)}}{{/if}}{{/each}}{{/each}}",
        ))
        .expect("valid")
        .prepare()
        .expect("valid");
        let a: Vec<u32> = (0..700).collect();
        let e = p
            .render(&json!({ "a": a, "s": "x".repeat(60_000) }))
            .expect_err("refused");
        assert!(matches!(e, TemplateError::TooMuchWork { .. }), "{e:?}");
        let a: Vec<u32> = (0..20).collect();
        assert!(p.render(&json!({ "a": a, "s": "x" })).is_ok());
    }

    #[test]
    fn the_unsubscribe_link_is_no_subject() {
        let e = compile(Source {
            subject: Some("Leave: {{unsubscribe_url}}".into()),
            defaults: Default::default(),
            ..html("<p>x</p>")
        })
        .expect_err("refused");
        assert!(
            matches!(
                e,
                TemplateError::Invalid {
                    part: Part::Subject,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn output_is_bounded() {
        let p = compile(html("{{#each a}}{{../big}}{{/each}}"))
            .expect("valid")
            .prepare()
            .expect("valid");
        let big = "x".repeat(100_000);
        let a: Vec<u32> = (0..100).collect();
        let e = p
            .render(&json!({ "a": a, "big": big }))
            .expect_err("refused");
        assert_eq!(
            e,
            TemplateError::TooLarge {
                part: Part::Content
            }
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = "{{#if a}}".repeat(10_000) + &"{{/if}}".repeat(10_000);
        let e = compile(html(&deep)).expect_err("refused");
        assert!(matches!(e, TemplateError::Invalid { .. }), "{e:?}");
        let deep = "<mjml><mj-body>".to_owned() + &"<mj-wrapper>".repeat(10_000);
        let e = compile(Source {
            engine: Engine::Mjml,
            ..html(&deep)
        })
        .expect_err("refused");
        assert!(matches!(e, TemplateError::Invalid { .. }), "{e:?}");
        // Unclosed HTML tags are no nesting for an HTML template.
        assert!(compile(html(&"<p>x".repeat(1000))).is_ok());
    }

    #[test]
    fn mjml_renders_to_html_with_variables_kept() {
        let c = compile(Source {
            engine: Engine::Mjml,
            content: r#"<mjml><mj-body><mj-section><mj-column>
                <mj-text>Hello {{name}}</mj-text>
                <mj-button href="{{url}}">Go</mj-button>
              </mj-column></mj-section></mj-body></mjml>"#
                .into(),
            text: None,
            subject: None,
            defaults: Default::default(),
        })
        .expect("valid");
        assert!(c.html.contains("<!doctype html>"), "{}", c.html);
        // No third-party fonts by default: opening the mail tells no font host.
        assert!(!c.html.contains("fonts.googleapis.com"), "{}", c.html);
        let r = c
            .prepare()
            .expect("valid")
            .render(&json!({"name": "Ada", "url": "https://a.example/x?y=1&z=2"}))
            .expect("valid");
        assert!(r.html.contains("Hello Ada"), "{}", r.html);
        assert!(
            r.html.contains("https://a.example/x?y=1&amp;z=2"),
            "{}",
            r.html
        );
        assert!(r.text.contains("Hello Ada"), "{}", r.text);
        assert!(!r.text.contains('<'), "{}", r.text);
    }

    #[test]
    fn bad_mjml_is_refused_with_a_reason() {
        for src in [
            "<mjml><mj-body><mj-section>",
            "not mjml",
            // Found by the fuzz target: trips an assertion of mrml's tokenizer.
            "<mjml><mj-body><mj-sectli>\": \"<Ahead><sd><body><!--[if ",
            "<mjml><mj-body><mj-include path=\"/etc/passwd\" /></mj-body></mjml>",
        ] {
            let e = compile(Source {
                engine: Engine::Mjml,
                content: src.into(),
                text: None,
                subject: None,
                defaults: Default::default(),
            })
            .expect_err("refused");
            assert!(
                matches!(
                    e,
                    TemplateError::Invalid {
                        part: Part::Content,
                        ..
                    }
                ),
                "{src}: {e:?}"
            );
        }
    }
}
