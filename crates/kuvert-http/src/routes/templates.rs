//! Templates with versions (one active), previews and test sends.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_admin::templates::{self, VersionRequest};
use kuvert_store::{Template, VersionInfo};
use kuvert_submit::TemplateUse;
use kuvert_template::{Engine, Source};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::messages::{SendResponse, mailbox, mailboxes};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct TemplateOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The tag of the version sends use when they name none.
    pub active_version: Option<String>,
    /// Newest first.
    pub versions: Vec<VersionOut>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct VersionOut {
    pub tag: String,
    pub engine: Engine,
    pub active: bool,
    pub comment: Option<String>,
    pub created_at: String,
}

impl From<VersionInfo> for VersionOut {
    fn from(v: VersionInfo) -> Self {
        Self {
            tag: v.tag,
            engine: v.engine,
            active: v.active,
            comment: v.comment,
            created_at: v.created_at.to_rfc3339(),
        }
    }
}

impl From<Template> for TemplateOut {
    fn from(t: Template) -> Self {
        Self {
            id: t.id.to_string(),
            active_version: t.active().map(|v| v.tag.clone()),
            name: t.name,
            description: t.description,
            versions: t.versions.into_iter().map(Into::into).collect(),
            created_at: t.created_at.to_rfc3339(),
            updated_at: t.updated_at.to_rfc3339(),
        }
    }
}

/// A version's source.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionIn {
    /// `mjml` (rendered to HTML when saved) or `html`.
    pub engine: Engine,
    /// MJML or HTML with Handlebars variables (`{{name}}`); at most 512 KiB.
    pub content: String,
    /// The text part; derived from each copy's HTML when absent.
    pub text: Option<String>,
    /// The subject, with variables; a send may give its own.
    pub subject: Option<String>,
    /// Values for variables a send or a contact may leave out (at most 64 KiB).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub defaults: Map<String, Value>,
    /// Letters, digits, `-`, `_`, `.`; `v1`, `v2`, ... when absent.
    pub tag: Option<String>,
    pub comment: Option<String>,
    /// Make this the active version (the first version always is).
    #[serde(default)]
    pub active: bool,
}

impl From<VersionIn> for VersionRequest {
    fn from(v: VersionIn) -> Self {
        VersionRequest {
            tag: v.tag,
            comment: v.comment,
            active: v.active,
            source: Source {
                engine: v.engine,
                content: v.content,
                text: v.text,
                subject: v.subject,
                defaults: v.defaults,
            },
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    /// Letters, digits, `-`, `_`, `.`, at most 100; kept in lower case.
    pub name: String,
    pub description: Option<String>,
    /// The first version.
    pub version: VersionIn,
}

/// A template the path names and that does not exist is a 404 (a body's field is a 422).
fn named_in_path(e: kuvert_admin::AdminError) -> ApiError {
    match e {
        kuvert_admin::AdminError::Render(kuvert_submit::AcceptError::UnknownTemplate {
            version: None,
            ..
        }) => ApiError::not_found("template"),
        e => e.into(),
    }
}

fn description(d: Option<String>) -> Result<Option<String>, ApiError> {
    match d {
        Some(d) if d.len() > 1000 => Err(ApiError::invalid(
            "description",
            "a description is at most 1000 bytes",
        )),
        d => Ok(d),
    }
}

/// The account's templates, by name.
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses((status = 200, body = Vec<TemplateOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<TemplateOut>>, ApiError> {
    let all = state.store.templates(&auth.account_id).await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

/// Creates a template with its first version (compiled and checked: MJML, Handlebars).
#[utoipa::path(post, path = "/v1/templates", tag = "templates", request_body = TemplateIn,
    responses((status = 201, body = TemplateOut), (status = 409, body = ErrorBody),
        (status = 422, description = "A name, or the MJML or Handlebars of the version, is invalid", body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<TemplateIn>,
) -> Result<(StatusCode, Json<TemplateOut>), ApiError> {
    let description = description(req.description)?;
    let t = templates::create_template(
        &state.store,
        &auth.account_id,
        &req.name,
        description.as_deref(),
        req.version.into(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(t.into())))
}

/// A template and its versions.
#[utoipa::path(get, path = "/v1/templates/{name}", tag = "templates", params(("name" = String, Path)),
    responses((status = 200, body = TemplateOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
) -> Result<Json<TemplateOut>, ApiError> {
    let t = state
        .store
        .template(&auth.account_id, &name.to_ascii_lowercase())
        .await?;
    Ok(Json(t.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplatePatch {
    pub description: Option<String>,
}

/// Changes a template's description.
#[utoipa::path(patch, path = "/v1/templates/{name}", tag = "templates", params(("name" = String, Path)),
    request_body = TemplatePatch,
    responses((status = 200, body = TemplateOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<TemplatePatch>,
) -> Result<Json<TemplateOut>, ApiError> {
    let description = description(req.description)?;
    let t = state
        .store
        .update_template(
            &auth.account_id,
            &name.to_ascii_lowercase(),
            description.as_deref(),
        )
        .await?;
    Ok(Json(t.into()))
}

/// Deletes a template with every version.
#[utoipa::path(delete, path = "/v1/templates/{name}", tag = "templates", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_template(&auth.account_id, &name.to_ascii_lowercase())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a version (compiled and checked); it becomes active if asked.
#[utoipa::path(post, path = "/v1/templates/{name}/versions", tag = "templates",
    params(("name" = String, Path)), request_body = VersionIn,
    responses((status = 201, body = TemplateOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn add_version(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<VersionIn>,
) -> Result<(StatusCode, Json<TemplateOut>), ApiError> {
    let t = templates::add_version(&state.store, &auth.account_id, &name, req.into()).await?;
    Ok((StatusCode::CREATED, Json(t.into())))
}

#[derive(Serialize, ToSchema)]
pub struct VersionContentOut {
    #[serde(flatten)]
    pub info: VersionOut,
    pub content: String,
    pub text: Option<String>,
    pub subject: Option<String>,
    #[schema(value_type = Object)]
    pub defaults: Map<String, Value>,
    /// The HTML the content compiled to (for MJML), with its variables.
    pub html: String,
}

/// A version with its source and compiled HTML.
#[utoipa::path(get, path = "/v1/templates/{name}/versions/{tag}", tag = "templates",
    params(("name" = String, Path), ("tag" = String, Path)),
    responses((status = 200, body = VersionContentOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get_version(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path((name, tag)): Path<(String, String)>,
) -> Result<Json<VersionContentOut>, ApiError> {
    let v = state
        .store
        .template_version(
            &auth.account_id,
            &name.to_ascii_lowercase(),
            Some(&tag.to_ascii_lowercase()),
        )
        .await?;
    let c = v.compiled;
    Ok(Json(VersionContentOut {
        info: v.info.into(),
        content: c.source.content,
        text: c.source.text,
        subject: c.source.subject,
        defaults: c.source.defaults,
        html: c.html,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionPatch {
    /// `true` makes this the active version (and no other).
    #[serde(default)]
    pub active: bool,
    /// A new comment; `""` removes it.
    pub comment: Option<String>,
}

/// Activates a version, or changes its comment. Content does not change: a new content is a
/// new version, so a send always has what was previewed.
#[utoipa::path(patch, path = "/v1/templates/{name}/versions/{tag}", tag = "templates",
    params(("name" = String, Path), ("tag" = String, Path)), request_body = VersionPatch,
    responses((status = 200, body = TemplateOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn update_version(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path((name, tag)): Path<(String, String)>,
    ApiJson(req): ApiJson<VersionPatch>,
) -> Result<Json<TemplateOut>, ApiError> {
    let t = state
        .store
        .update_template_version(
            &auth.account_id,
            &name.to_ascii_lowercase(),
            &tag.to_ascii_lowercase(),
            req.active,
            req.comment
                .as_deref()
                .map(|c| Some(c).filter(|c| !c.is_empty())),
        )
        .await?;
    Ok(Json(t.into()))
}

/// Deletes a version that is not the active one.
#[utoipa::path(delete, path = "/v1/templates/{name}/versions/{tag}", tag = "templates",
    params(("name" = String, Path), ("tag" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "The version is the active one", body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn remove_version(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path((name, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_template_version(
            &auth.account_id,
            &name.to_ascii_lowercase(),
            &tag.to_ascii_lowercase(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    /// A version's tag; the active version when absent.
    pub version: Option<String>,
    /// Sample data. A variable the template names and this lacks is an error.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewOut {
    pub version: String,
    pub subject: Option<String>,
    pub html: String,
    pub text: String,
    /// The variables the version names (besides `unsubscribe_url`).
    pub variables: Vec<String>,
}

/// Renders a version with sample data.
#[utoipa::path(post, path = "/v1/templates/{name}/preview", tag = "templates",
    params(("name" = String, Path)), request_body = PreviewIn,
    responses((status = 200, body = PreviewOut), (status = 404, body = ErrorBody),
        (status = 422, description = "A variable has no value, or the data makes the template fail", body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn preview(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PreviewIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let using = TemplateUse {
        name: name.to_ascii_lowercase(),
        version: req.version,
        variables: req.variables,
    };
    let p = templates::preview(&state.acceptor, &auth.account_id, &using)
        .await
        .map_err(named_in_path)?;
    Ok(Json(PreviewOut {
        version: p.tag,
        subject: p.rendered.subject,
        html: p.rendered.html,
        text: p.rendered.text,
        variables: p.variables,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSendIn {
    /// A verified sending domain's address.
    pub from: String,
    /// 1 to 10 addresses.
    pub to: Vec<String>,
    /// The version's subject when absent.
    pub subject: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

/// Sends a version, filled with the variables given, to test addresses (tagged `test`, with
/// an unsubscribe link as campaign copies have).
#[utoipa::path(post, path = "/v1/templates/{name}/test", tag = "templates",
    params(("name" = String, Path)), request_body = TestSendIn,
    responses((status = 202, body = SendResponse), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn test_send(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<TestSendIn>,
) -> Result<(StatusCode, Json<SendResponse>), ApiError> {
    let from = mailbox("from".into(), &req.from)?;
    let to = mailboxes("to", &req.to)?;
    let using = TemplateUse {
        name: name.to_ascii_lowercase(),
        version: req.version,
        variables: req.variables,
    };
    let accepted = templates::test_send(
        &state.acceptor,
        &auth.account_id,
        &using,
        from,
        to,
        req.subject,
    )
    .await
    .map_err(named_in_path)?;
    Ok((StatusCode::ACCEPTED, Json(accepted.into())))
}
