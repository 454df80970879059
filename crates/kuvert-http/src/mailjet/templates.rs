//! Mailjet's `template` and `template/{id}/detailcontent` onto Kuvert's stored templates.
//! A template's `Name` is Kuvert's name (its rules apply); its `ID` is Kuvert's id, which
//! a send's `TemplateID` names. Each content saved is a new version that becomes the active
//! one (Kuvert keeps the old ones, up to its limit of versions), and the language is
//! Handlebars (`{{name}}`), not Mailjet's (`{{var:name}}`, which is refused when saved).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_admin::templates::{self, VersionRequest};
use kuvert_store::Template;
use kuvert_template::{Engine, Source};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Listed, MjError, MjFull, MjQuery, one};
use crate::AppState;
use crate::error::ApiError;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateOut {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub description: String,
    /// 2 (HTML) or 4 (MJML), by the active version.
    pub edit_mode: u8,
    pub owner_type: &'static str,
    pub purposes: Vec<String>,
    pub created_at: String,
    pub last_updated_at: String,
}

fn template_out(t: &Template) -> TemplateOut {
    TemplateOut {
        id: t.id.to_string(),
        name: t.name.clone(),
        description: t.description.clone().unwrap_or_default(),
        edit_mode: match t.active().map(|v| v.engine) {
            Some(Engine::Mjml) => 4,
            _ => 2,
        },
        owner_type: "apikey",
        purposes: vec![],
        created_at: super::time(t.created_at),
        last_updated_at: super::time(t.updated_at),
    }
}

fn admin(e: kuvert_admin::AdminError) -> MjError {
    ApiError::from(e).into()
}

/// The account's template with this id.
async fn by_id(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    id: &str,
) -> Result<Template, MjError> {
    let name = state.store.template_name(&auth.account_id, id).await?;
    Ok(state.store.template(&auth.account_id, &name).await?)
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    q: MjQuery,
) -> Result<Json<Listed<TemplateOut>>, MjError> {
    q.only(&["name"])?;
    let paging = q.paging()?;
    let all: Vec<TemplateOut> = state
        .store
        .templates(&auth.account_id)
        .await?
        .iter()
        .filter(|t| {
            q.get("name")
                .is_none_or(|n| t.name == n.to_ascii_lowercase())
        })
        .map(template_out)
        .collect();
    Ok(paging.page(all))
}

/// The properties of a template Kuvert takes; the rest are refused by name.
const TEMPLATE_FIELDS: &[&str] = &["Name", "Description", "OwnerType", "EditMode"];

pub async fn create(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<TemplateOut>>), MjError> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(MjError::bad_request("the body is not a JSON object"));
    };
    if let Some(k) = m.keys().find(|k| !TEMPLATE_FIELDS.contains(&k.as_str())) {
        return Err(MjError::unsupported(
            k,
            "Kuvert's templates have no such property",
        ));
    }
    // A template belongs to the account, whichever owner Mailjet would name.
    if let Some(owner) = m.get("OwnerType")
        && !matches!(owner.as_str(), Some("apikey" | "user"))
    {
        return Err(MjError::unsupported(
            "OwnerType",
            "a template belongs to the account (apikey or user)",
        ));
    }
    let name = m
        .get("Name")
        .and_then(Value::as_str)
        .ok_or_else(|| MjError::bad_request("Name is required"))?;
    let description = match m.get("Description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.as_str()),
        Some(_) => return Err(MjError::bad_request("Description: a string is expected")),
    };
    if description.is_some_and(|d| d.len() > 1000) {
        return Err(MjError::bad_request("Description: at most 1000 bytes"));
    }
    let engine = match m.get("EditMode").map(Value::as_u64) {
        None | Some(Some(2)) => Engine::Html,
        Some(Some(4)) => Engine::Mjml,
        Some(_) => {
            return Err(MjError::unsupported(
                "EditMode",
                "templates are HTML (2) or MJML (4)",
            ));
        }
    };
    // Kuvert keeps no template without a version: it starts with an empty one.
    let first = VersionRequest {
        tag: None,
        comment: None,
        active: true,
        source: Source {
            engine,
            content: match engine {
                Engine::Mjml => "<mjml><mj-body></mj-body></mjml>".into(),
                Engine::Html => String::new(),
            },
            text: None,
            subject: None,
            defaults: Map::new(),
        },
    };
    let t = templates::create_template(&state.store, &auth.account_id, name, description, first)
        .await
        .map_err(admin)?;
    Ok((StatusCode::CREATED, one(template_out(&t))))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<Json<Listed<TemplateOut>>, MjError> {
    Ok(one(template_out(&by_id(&state, &auth, &id).await?)))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<StatusCode, MjError> {
    let t = by_id(&state, &auth, &id).await?;
    state
        .store
        .delete_template(&auth.account_id, &t.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The active version's content in Mailjet's shape.
pub async fn content_get(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<Json<Listed<Value>>, MjError> {
    let t = by_id(&state, &auth, &id).await?;
    let v = state
        .store
        .template_version(&auth.account_id, &t.name, None)
        .await?;
    Ok(one(content_out(v.compiled)))
}

fn content_out(c: kuvert_template::Compiled) -> Value {
    let mjml = c.source.engine == Engine::Mjml;
    json!({
        "Headers": {"Subject": c.source.subject.unwrap_or_default()},
        "Html-part": c.html,
        "Text-part": c.source.text.unwrap_or_default(),
        "MJMLContent": if mjml { Value::String(c.source.content) } else { Value::String(String::new()) },
    })
}

/// Saves content as a new active version: `Html-part` (or `MJMLContent`), `Text-part`, and
/// the subject in `Headers`.
pub async fn content_set(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<Value>>), MjError> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(MjError::bad_request("the body is not a JSON object"));
    };
    let text = |k: &str| -> Result<Option<String>, MjError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(MjError::bad_request(format!("{k}: a string is expected"))),
        }
    };
    if let Some(k) = m
        .keys()
        .find(|k| !["Headers", "Html-part", "Text-part", "MJMLContent"].contains(&k.as_str()))
    {
        return Err(MjError::unsupported(
            k,
            "not a part of a template's content",
        ));
    }
    let mut subject = None;
    match m.get("Headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                match k.as_str() {
                    "Subject" => {
                        let Value::String(v) = v else {
                            return Err(MjError::bad_request(
                                "Headers.Subject: a string is expected",
                            ));
                        };
                        subject = Some(v.clone()).filter(|s| !s.is_empty());
                    }
                    other => {
                        return Err(MjError::unsupported(
                            &format!("Headers.{other}"),
                            "a template keeps its subject only: the sender and reply-to come with each send",
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(MjError::bad_request("Headers: an object is expected")),
    }
    let (engine, content) = match (text("MJMLContent")?, text("Html-part")?) {
        (Some(_), Some(_)) => {
            return Err(MjError::bad_request(
                "give MJMLContent or Html-part, not both: the HTML is rendered from the MJML",
            ));
        }
        (Some(mjml), None) => (Engine::Mjml, mjml),
        (None, Some(html)) => (Engine::Html, html),
        (None, None) => {
            return Err(MjError::bad_request("Html-part or MJMLContent is required"));
        }
    };
    // Mailjet's own language would be read by Handlebars as other variables' names: refused
    // by name rather than rendered wrong.
    for part in [
        Some(&content),
        text("Text-part")?.as_ref(),
        subject.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        let squeezed: String = part.chars().filter(|c| !c.is_whitespace()).collect();
        if ["{{var:", "{{data:", "{%"]
            .iter()
            .any(|m| squeezed.contains(m))
        {
            return Err(MjError::unsupported(
                "Mailjet's template language",
                "templates are Handlebars: {{name}} for a variable, {{#if x}}...{{/if}}",
            ));
        }
    }
    let t = by_id(&state, &auth, &id).await?;
    templates::add_version(
        &state.store,
        &auth.account_id,
        &t.name,
        VersionRequest {
            tag: None,
            comment: None,
            active: true,
            source: Source {
                engine,
                content,
                text: text("Text-part")?,
                subject,
                defaults: Map::new(),
            },
        },
    )
    .await
    .map_err(admin)?;
    let v = state
        .store
        .template_version(&auth.account_id, &t.name, None)
        .await?;
    Ok((StatusCode::CREATED, one(content_out(v.compiled))))
}
