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
        let (info, prepared) = self
            .prepare_template(account, &using.name, using.version.as_deref())
            .await?;
        let mut data = base;
        data.extend(using.variables.clone());
        Ok((info, render_prepared(prepared, data).await?))
    }

    /// A version read and parsed for rendering (the active one unless `version` names a
    /// tag): what a campaign fills each copy with. Names and tags are taken in lower case.
    pub async fn prepare_template(
        &self,
        account: &AccountId,
        name: &str,
        version: Option<&str>,
    ) -> Result<(VersionInfo, Arc<Prepared>), AcceptError> {
        let name = name.to_ascii_lowercase();
        let version = version.map(str::to_ascii_lowercase);
        let found = match self
            .store()
            .template_version(account, &name, version.as_deref())
            .await
        {
            Ok(v) => v,
            Err(StoreError::NotFound(_)) => {
                // Which is unknown: the template, or its version?
                let template = self.store().template(account, &name).await;
                return Err(AcceptError::UnknownTemplate {
                    name,
                    version: match template {
                        Ok(_) => version,
                        Err(StoreError::NotFound(_)) => None,
                        Err(e) => return Err(e.into()),
                    },
                });
            }
            Err(e) => return Err(e.into()),
        };
        let cache = self.prepared.clone();
        let key = (found.template_id.to_string(), found.info.tag.clone());
        let compiled = found.compiled;
        let prepared = tokio::task::spawn_blocking(move || cache.get(key, compiled))
            .await
            .map_err(stopped)??;
        Ok((found.info, prepared))
    }
}

/// Fills in one copy of a prepared version on the blocking threads.
pub async fn render_prepared(
    prepared: Arc<Prepared>,
    data: Map<String, Value>,
) -> Result<Rendered, AcceptError> {
    Ok(
        tokio::task::spawn_blocking(move || prepared.render(&Value::Object(data)))
            .await
            .map_err(stopped)??,
    )
}

fn stopped(e: tokio::task::JoinError) -> AcceptError {
    tracing::error!(error = %e, "a template task failed");
    AcceptError::Internal(format!("a template task stopped: {e}"))
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
