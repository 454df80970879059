//! Handlebars variables, filled within a bound on work.
//!
//! A template and its data are each bounded in size, but a loop in a loop over a long list
//! multiplies them. So a part is walked once when it is parsed: what it does at each depth of
//! `each` is counted, and a render first multiplies those counts by the longest list (or
//! object) in its data and refuses above [`MAX_RENDER_STEPS`], before any work. Partials and
//! decorators (which could recurse) are refused, and so are helpers we do not run; what is
//! written is counted and stopped at [`MAX_RENDERED_BYTES`].

use std::sync::LazyLock;

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Context, Handlebars, Output, Path, RenderContext, RenderErrorReason, Renderable};
use serde_json::Value;

use crate::{TemplateError, guard};

pub const MAX_RENDER_STEPS: u64 = 1_000_000;
pub const MAX_RENDERED_BYTES: usize = 4 * 1024 * 1024;

/// Helpers a template may call: Handlebars' own, less `log` (it would write contacts' data
/// to the server's log).
const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or",
    "not", "len",
];
const BLOCK_HELPERS: &[&str] = &["if", "unless", "each", "with"];
/// Deeper loops than this are refused outright (the bound would refuse them with any list
/// of more than a few items anyway).
const MAX_LOOP_DEPTH: usize = 4;

/// Handlebars' helpers that are not run: a variable of that name is read as `this.log`.
const REFUSED_HELPERS: &[&str] = &["log", "raw"];

fn registry(escape: bool) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    if escape {
        h.register_escape_fn(escape_html);
    } else {
        h.register_escape_fn(handlebars::no_escape);
    }
    h
}

/// The five characters that matter in HTML text and quoted attributes. (Handlebars' own
/// escaper also writes `=` as `&#x3D;`, which the link tracking would have to decode.)
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

static HTML: LazyLock<Handlebars<'static>> = LazyLock::new(|| registry(true));
static PLAIN: LazyLock<Handlebars<'static>> = LazyLock::new(|| registry(false));

/// One part parsed: its template, whether its values are HTML-escaped, and its steps per
/// depth of loops.
pub(crate) struct Part {
    part: crate::Part,
    template: Template,
    escape: bool,
    steps: Vec<u64>,
}

impl Part {
    pub(crate) fn parse(part: crate::Part, src: &str, escape: bool) -> Result<Self, TemplateError> {
        let invalid = |message: String| TemplateError::Invalid { part, message };
        guard::check_blocks(src).map_err(invalid)?;
        let template = Template::compile(src).map_err(|e| invalid(e.to_string()))?;
        let mut steps = Vec::new();
        count(&template, 0, &mut steps).map_err(invalid)?;
        Ok(Self {
            part,
            template,
            escape,
            steps,
        })
    }

    /// What a render with `data` would cost at most: each step at each depth of loops as
    /// often as the longest list can go round, and each as dear as a copy of the data (the
    /// built-in helpers clone and compare whole values), by kibibyte.
    fn cost(&self, data: &DataSize) -> u64 {
        let mut total = 0u64;
        let mut factor = 1u64;
        for s in &self.steps {
            total = total.saturating_add(s.saturating_mul(factor));
            factor = factor.saturating_mul(data.longest.max(1));
        }
        total.saturating_mul(1 + data.bytes / 1024)
    }

    pub(crate) fn render(&self, data: &Value, size: &DataSize) -> Result<String, TemplateError> {
        let part = self.part;
        let steps = self.cost(size);
        if steps > MAX_RENDER_STEPS {
            return Err(TemplateError::TooMuchWork { part, steps });
        }
        let registry: &Handlebars<'static> = if self.escape { &HTML } else { &PLAIN };
        let ctx = Context::wraps(data).map_err(|e| TemplateError::Render {
            part,
            message: e.to_string(),
        })?;
        let mut rc = RenderContext::new(None);
        let mut out = Bounded::default();
        match self.template.render(registry, &ctx, &mut rc, &mut out) {
            Ok(()) => Ok(out.text),
            Err(_) if out.full => Err(TemplateError::TooLarge { part }),
            Err(e) => Err(match e.reason() {
                RenderErrorReason::MissingVariable(name) => TemplateError::MissingVariable {
                    part,
                    name: name.clone().unwrap_or_default(),
                },
                _ => TemplateError::Render {
                    part,
                    message: e.to_string(),
                },
            }),
        }
    }

    /// The first segment of each variable path the part names outside any block.
    pub(crate) fn variables(&self) -> Vec<String> {
        let mut out = Vec::new();
        names(&self.template, &mut out);
        out
    }
}

fn names(t: &Template, out: &mut Vec<String>) {
    for e in &t.elements {
        match e {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                if h.params.is_empty() && h.hash.is_empty() {
                    param_name(&h.name, out);
                } else {
                    h.params.iter().for_each(|p| param_name(p, out));
                }
            }
            TemplateElement::HelperBlock(h) => {
                h.params.iter().for_each(|p| param_name(p, out));
                // Inside `each` and `with`, names are relative to the item.
                if !matches!(helper_name(h), Some("each" | "with")) {
                    [&h.template, &h.inverse]
                        .into_iter()
                        .flatten()
                        .for_each(|t| names(t, out));
                }
            }
            _ => {}
        }
    }
}

fn param_name(p: &Parameter, out: &mut Vec<String>) {
    let raw = match p {
        Parameter::Name(n) => n.as_str(),
        Parameter::Path(path) => path_raw(path),
        _ => return,
    };
    let first = raw.split(['.', '/', '[']).next().unwrap_or_default();
    if !first.is_empty() && !first.starts_with('@') && first != "this" && first != ".." {
        out.push(first.to_owned());
    }
}

fn path_raw(p: &Path) -> &str {
    match p {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

fn helper_name(h: &HelperTemplate) -> Option<&str> {
    match &h.name {
        Parameter::Name(n) => Some(n.as_str()),
        Parameter::Path(p) => Some(path_raw(p)),
        _ => None,
    }
}

/// Adds the steps of `t` at loop depth `depth` to `steps`, refusing what we do not run.
fn count(t: &Template, depth: usize, steps: &mut Vec<u64>) -> Result<(), String> {
    t.elements
        .iter()
        .try_for_each(|e| count_element(e, depth, steps))
}

fn count_element(e: &TemplateElement, depth: usize, steps: &mut Vec<u64>) -> Result<(), String> {
    if steps.len() <= depth {
        steps.resize(depth + 1, 0);
    }
    steps[depth] += 1;
    match e {
        TemplateElement::RawString(_) | TemplateElement::Comment(_) => Ok(()),
        TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
            if !(h.params.is_empty() && h.hash.is_empty()) {
                helper(h, false)?;
            } else if let Some(name) = helper_name(h)
                && REFUSED_HELPERS.contains(&name)
            {
                return Err(format!(
                    "{{{{{name}}}}} names a helper Kuvert does not run; write {{{{this.{name}}}}} for a variable of that name"
                ));
            }
            params(h, depth, steps)
        }
        TemplateElement::HelperBlock(h) => {
            let name = helper(h, true)?;
            params(h, depth, steps)?;
            let inner = if name == "each" { depth + 1 } else { depth };
            if inner > MAX_LOOP_DEPTH {
                return Err(format!("loops nest more than {MAX_LOOP_DEPTH} deep"));
            }
            [&h.template, &h.inverse]
                .into_iter()
                .flatten()
                .try_for_each(|b| count(b, inner, steps))
        }
        TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
            Err("decorators ({{* ...}}) are not supported".into())
        }
        TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
            Err("partials ({{> ...}}) are not supported".into())
        }
        _ => Err("this template element is not supported".into()),
    }
}

fn helper(h: &HelperTemplate, block: bool) -> Result<&str, String> {
    let name = helper_name(h).unwrap_or_default();
    let allowed = if block { BLOCK_HELPERS } else { HELPERS };
    if allowed.contains(&name) {
        Ok(name)
    } else {
        Err(format!(
            "{name:?} is not a helper Kuvert runs (it runs {})",
            allowed.join(", ")
        ))
    }
}

/// The parameters of a helper, its name too when that is a subexpression (`{{(log x)}}`
/// calls a helper as surely as `{{log x}}`). Array and object literals are refused: a loop
/// over one would go round as often as the template, not its data, says.
fn params(h: &HelperTemplate, depth: usize, steps: &mut Vec<u64>) -> Result<(), String> {
    for p in std::iter::once(&h.name)
        .chain(&h.params)
        .chain(h.hash.values())
    {
        match p {
            Parameter::Subexpression(s) => count_element(&s.element, depth, steps)?,
            Parameter::Literal(Value::Array(_) | Value::Object(_)) => {
                return Err(
                    "array and object literals are not supported; pass them as variables".into(),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// What bounds a render's work in its data: the most items of any array or object (what one
/// loop can go round), and its size as JSON.
pub(crate) struct DataSize {
    longest: u64,
    bytes: u64,
}

impl DataSize {
    pub(crate) fn of(v: &Value) -> Self {
        Self {
            longest: longest_collection(v),
            bytes: serde_json::to_vec(v).map_or(u64::MAX, |b| b.len() as u64),
        }
    }
}

fn longest_collection(v: &Value) -> u64 {
    match v {
        Value::Array(a) => a
            .iter()
            .map(longest_collection)
            .fold(a.len() as u64, u64::max),
        Value::Object(o) => o
            .values()
            .map(longest_collection)
            .fold(o.len() as u64, u64::max),
        _ => 0,
    }
}

/// An output that stops at [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct Bounded {
    text: String,
    full: bool,
}

impl Output for Bounded {
    fn write(&mut self, seg: &str) -> Result<(), std::io::Error> {
        if self.text.len() + seg.len() > MAX_RENDERED_BYTES {
            self.full = true;
            return Err(std::io::Error::other("the rendered part is too large"));
        }
        self.text.push_str(seg);
        Ok(())
    }
}
