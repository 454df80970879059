//! Stored templates filled in for a send: the version is read (the active one unless a tag
//! is named), parsed and rendered on the blocking threads, since a large template costs
//! CPU in proportion to it.

use kuvert_core::id::AccountId;
use kuvert_store::{StoreError, VersionInfo};
use kuvert_template::Rendered;
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
        let compiled = version.compiled;
        let rendered =
            tokio::task::spawn_blocking(move || compiled.prepare()?.render(&Value::Object(data)))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "a template render failed");
                    AcceptError::Internal(format!("the renderer stopped: {e}"))
                })??;
        Ok((version.info, rendered))
    }
}
