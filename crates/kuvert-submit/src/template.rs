//! Stored templates filled in for a send: the version is read (the active one unless a tag
//! is named), parsed and rendered on the blocking threads, since a large template costs
//! CPU in proportion to it.

use kuvert_core::id::AccountId;
use kuvert_store::{StoreError, VersionInfo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kuvert_template::{Compiled, Prepared, Rendered, TemplateError};
use serde_json::{Map, Value};

use crate::{AcceptError, Acceptor};

/// The most bytes of variables a send may give (as JSON).
pub const MAX_VARIABLES_BYTES: usize = 64 * 1024;

/// A stored template to fill in: which version, with what.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateUse {
    pub name: String,
    /// A version's tag; the active version when `None`.
    pub version: Option<String>,
    pub variables: Map<String, Value>,
}

impl Acceptor {
    /// Renders a stored template with the variables of `using` over the defaults of `base`
    /// (a contact's properties, say; `using` wins). A variable the template names and
    /// neither gives is an error, as is an unknown template or version.
    pub async fn render_template(
        &self,
        account: &AccountId,
        using: &TemplateUse,
        base: Map<String, Value>,
    ) -> Result<(VersionInfo, Rendered), AcceptError> {
        let size = serde_json::to_vec(&using.variables).map_or(0, |v| v.len());
        if size > MAX_VARIABLES_BYTES {
            return Err(AcceptError::Invalid(
                kuvert_core::submission::SubmissionError::invalid(
                    "variables",
                    format!("variables are {size} bytes; the limit is {MAX_VARIABLES_BYTES}"),
                ),
            ));
        }
        // Names and tags are kept in lower case.
        let using = &TemplateUse {
            name: using.name.to_ascii_lowercase(),
            version: using.version.as_ref().map(|v| v.to_ascii_lowercase()),
            variables: using.variables.clone(),
        };
        let version = match self
            .store()
            .template_version(account, &using.name, using.version.as_deref())
            .await
        {
            Ok(v) => v,
            Err(StoreError::NotFound(_)) => {
                // Which is unknown: the template, or its version?
                let template = self.store().template(account, &using.name).await;
                return Err(AcceptError::UnknownTemplate {
                    name: using.name.clone(),
                    version: match template {
                        Ok(_) => using.version.clone(),
                        Err(StoreError::NotFound(_)) => None,
                        Err(e) => return Err(e.into()),
                    },
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut data = base;
        data.extend(using.variables.clone());
        let cache = self.prepared.clone();
        let key = (version.template_id.to_string(), version.info.tag.clone());
        let compiled = version.compiled;
        let rendered = tokio::task::spawn_blocking(move || {
            cache.get(key, compiled)?.render(&Value::Object(data))
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a template render failed");
            AcceptError::Internal(format!("the renderer stopped: {e}"))
        })??;
        Ok((version.info, rendered))
    }
}

/// Versions parsed for rendering, by template and tag: parsing a version's Handlebars costs
/// more than filling in one copy (BENCHMARKS.md), and a version's content never changes.
/// An entry serves only the same content (a tag deleted and used again gets a new one), and
/// the cache empties itself when it holds more than [`PREPARED_CACHE_BYTES`] of sources.
#[derive(Clone, Default)]
pub(crate) struct PreparedCache(Arc<Mutex<CacheInner>>);

#[derive(Default)]
struct CacheInner {
    entries: HashMap<(String, String), (Compiled, Arc<Prepared>)>,
    bytes: usize,
}

pub(crate) const PREPARED_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl PreparedCache {
    fn get(
        &self,
        key: (String, String),
        compiled: Compiled,
    ) -> Result<Arc<Prepared>, TemplateError> {
        if let Some((c, p)) = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .get(&key)
            && *c == compiled
        {
            return Ok(p.clone());
        }
        let prepared = Arc::new(compiled.prepare()?);
        let size = bytes(&compiled);
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if inner.bytes + size > PREPARED_CACHE_BYTES {
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.bytes += size;
        if let Some((old, _)) = inner.entries.insert(key, (compiled, prepared.clone())) {
            inner.bytes = inner.bytes.saturating_sub(bytes(&old));
        }
        Ok(prepared)
    }
}

fn bytes(c: &Compiled) -> usize {
    c.html.len() + c.source.content.len() + c.source.text.as_ref().map_or(0, String::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(content: &str) -> Compiled {
        kuvert_template::compile(kuvert_template::Source {
            engine: kuvert_template::Engine::Html,
            content: content.into(),
            text: None,
            subject: None,
            defaults: Default::default(),
        })
        .expect("compiles")
    }

    #[test]
    fn an_entry_serves_only_its_own_content() {
        let cache = PreparedCache::default();
        let key = || ("tpl_1".to_owned(), "v1".to_owned());
        let data = serde_json::json!({"x": "1"});
        let first = cache
            .get(key(), version("<p>a {{x}}</p>"))
            .expect("prepares");
        let again = cache
            .get(key(), version("<p>a {{x}}</p>"))
            .expect("prepares");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same content is parsed once"
        );
        // The tag deleted and used again for other content.
        let other = cache
            .get(key(), version("<p>b {{x}}</p>"))
            .expect("prepares");
        assert_eq!(other.render(&data).expect("renders").html, "<p>b 1</p>");
        let inner = cache.0.lock().expect("lock");
        assert_eq!(inner.entries.len(), 1);
        assert_eq!(inner.bytes, bytes(&version("<p>b {{x}}</p>")));
    }
}
