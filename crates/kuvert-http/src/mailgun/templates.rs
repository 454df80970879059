//! `/v3/{domain}/templates`: Mailgun's stored templates and their versions onto Kuvert's
//! (`kuvert_admin::templates`, Handlebars as at Mailgun). Kuvert keeps templates per account:
//! every domain of the account shows the same ones. A version's content never changes (a new
//! content is a new version, so that a send has what was previewed): a `PUT` of `template`
//! is refused.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use kuvert_admin::templates::{self, VersionRequest};
use kuvert_store::{Template, VersionInfo};
use kuvert_template::{Engine, Source};
use serde_json::{Map, Value, json};

use super::form::Form;
use super::{MgError, MgFull};
use crate::AppState;
use crate::error::ApiError;

fn admin(e: kuvert_admin::AdminError) -> MgError {
    match e {
        kuvert_admin::AdminError::Render(kuvert_submit::AcceptError::UnknownTemplate {
            version: None,
            ..
        }) => not_found(),
        e => ApiError::from(e).into(),
    }
}

fn not_found() -> MgError {
    MgError::new(axum::http::StatusCode::NOT_FOUND, "template not found")
}

/// A store error, with Mailgun's 404 text for a template or version that is not there.
fn store(e: kuvert_store::StoreError) -> MgError {
    match e {
        kuvert_store::StoreError::NotFound("template") => not_found(),
        kuvert_store::StoreError::NotFound(_) => {
            MgError::new(axum::http::StatusCode::NOT_FOUND, "version not found")
        }
        e => ApiError::from(e).into(),
    }
}

/// Only the fields named; another is refused by name.
fn only(form: &Form, known: &[&str]) -> Result<(), MgError> {
    match form
        .fields
        .iter()
        .find(|f| !known.contains(&f.name.as_str()))
    {
        Some(f) => Err(MgError::bad_request(format!(
            "'{}' is not a parameter of this route",
            f.name
        ))),
        None => Ok(()),
    }
}

fn version_json(v: &VersionInfo) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tag".into(), v.tag.clone().into());
    m.insert("engine".into(), "handlebars".into());
    m.insert("mjml".into(), "".into());
    m.insert("createdAt".into(), super::date(v.created_at).into());
    m.insert(
        "comment".into(),
        v.comment.clone().unwrap_or_default().into(),
    );
    m.insert("active".into(), v.active.into());
    m.insert("id".into(), v.tag.clone().into());
    m
}

fn template_json(t: &Template) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), t.name.clone().into());
    m.insert(
        "description".into(),
        t.description.clone().unwrap_or_default().into(),
    );
    m.insert("createdAt".into(), super::date(t.created_at).into());
    m.insert("createdBy".into(), "".into());
    m.insert("id".into(), t.id.to_string().into());
    m
}

/// A version with its content (`template`), and `headers` holding its subject.
async fn with_content(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    name: &str,
    tag: Option<&str>,
) -> Result<Map<String, Value>, MgError> {
    let v = state
        .store
        .template_version(&auth.account_id, name, tag)
        .await
        .map_err(store)?;
    let mut out = version_json(&v.info);
    let c = v.compiled;
    if c.source.engine == Engine::Mjml {
        out.insert("mjml".into(), c.source.content.clone().into());
        out.insert("template".into(), c.html.into());
    } else {
        out.insert("template".into(), c.source.content.into());
    }
    if let Some(s) = c.source.subject {
        out.insert("headers".into(), json!({ "Subject": s }));
    }
    Ok(out)
}

/// A version's source from Mailgun's fields: `template`, `engine` (only `handlebars`),
/// `headers` (only `Subject`).
fn source(form: &Form) -> Result<Source, MgError> {
    let content = form
        .one("template")?
        .ok_or_else(|| MgError::bad_request("'template' parameter is missing"))?;
    match form.one("engine")? {
        None => {}
        Some(e) if e.eq_ignore_ascii_case("handlebars") => {}
        Some(e) => {
            return Err(MgError::unsupported(
                &format!("engine={e}"),
                "templates are Handlebars",
            ));
        }
    }
    let mut subject = None;
    if let Some(h) = form.one("headers")? {
        let Ok(Value::Object(h)) = serde_json::from_str::<Value>(h) else {
            return Err(MgError::bad_request("headers must be a JSON object"));
        };
        for (k, v) in h {
            if k.eq_ignore_ascii_case("subject") {
                let Value::String(v) = v else {
                    return Err(MgError::bad_request("headers.Subject must be a string"));
                };
                subject = Some(v);
            } else {
                return Err(MgError::unsupported(
                    &format!("headers.{k}"),
                    "a template keeps its subject only: the sender and reply-to come with each send",
                ));
            }
        }
    }
    Ok(Source {
        engine: Engine::Html,
        content: content.to_owned(),
        text: None,
        subject,
        defaults: Map::new(),
    })
}

fn comment(form: &Form) -> Result<Option<String>, MgError> {
    Ok(form
        .one("comment")?
        .filter(|c| !c.is_empty())
        .map(str::to_owned))
}

/// `POST /v3/{domain}/templates`: a template with its first version when `template` is
/// given. Kuvert keeps no template without a version, so `template` is required.
pub async fn create(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(domain): Path<String>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    only(
        &form,
        &[
            "name",
            "description",
            "template",
            "tag",
            "engine",
            "comment",
            "headers",
        ],
    )?;
    let name = form
        .one("name")?
        .ok_or_else(|| MgError::bad_request("'name' parameter is missing"))?;
    if form.one("description")?.is_some_and(|d| d.len() > 1000) {
        return Err(MgError::bad_request("description: at most 1000 bytes"));
    }
    let t = templates::create_template(
        &state.store,
        &auth.account_id,
        name,
        form.one("description")?,
        VersionRequest {
            tag: form.one("tag")?.map(str::to_ascii_lowercase),
            comment: comment(&form)?,
            active: true,
            source: source(&form)?,
        },
    )
    .await
    .map_err(admin)?;
    let mut out = template_json(&t);
    if let Some(v) = t.active() {
        out.insert("version".into(), Value::Object(version_json(v)));
    }
    Ok(Json(
        json!({"template": out, "message": "template has been stored"}),
    ))
}

/// `GET /v3/{domain}/templates`: by name, `limit` a page (default 10), `p` the name the
/// page starts after (`page=next`), as Mailgun pages them.
pub async fn list(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(domain): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let limit = super::limit(&params, 10, 1000)? as usize;
    let after = super::page_after(&params, "p")?;
    let all = state
        .store
        .templates(&auth.account_id)
        .await
        .map_err(store)?;
    let items: Vec<Value> = all
        .iter()
        .filter(|t| after.is_none_or(|a| t.name.as_str() > a))
        .take(limit)
        .map(|t| Value::Object(template_json(t)))
        .collect();
    let base = format!("{}/v3/{domain}/templates", super::base_url(&headers));
    let last = items
        .last()
        .and_then(|t| t["name"].as_str())
        .unwrap_or(after.unwrap_or(""));
    Ok(Json(json!({
        "items": items,
        // Only forward paging is served: every link but `next` names the first page.
        "paging": {
            "first": format!("{base}?limit={limit}"),
            "last": format!("{base}?limit={limit}"),
            "next": format!("{base}?page=next&p={last}&limit={limit}"),
            "previous": format!("{base}?limit={limit}"),
        },
    })))
}

/// `GET /v3/{domain}/templates/{name}`, with the active version's content when
/// `active=yes`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, name)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let name = name.to_ascii_lowercase();
    let t = state
        .store
        .template(&auth.account_id, &name)
        .await
        .map_err(store)?;
    let mut out = template_json(&t);
    if params
        .first("active")
        .is_some_and(|a| a.eq_ignore_ascii_case("yes"))
    {
        let v = with_content(&state, &auth, &name, None).await?;
        out.insert("version".into(), Value::Object(v));
    }
    Ok(Json(json!({ "template": out })))
}

/// `PUT /v3/{domain}/templates/{name}`: its description.
pub async fn update(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, name)): Path<(String, String)>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    only(&form, &["description"])?;
    let description = form.one("description")?;
    if description.is_some_and(|d| d.len() > 1000) {
        return Err(MgError::bad_request("description: at most 1000 bytes"));
    }
    let t = state
        .store
        .update_template(&auth.account_id, &name.to_ascii_lowercase(), description)
        .await
        .map_err(store)?;
    Ok(Json(
        json!({"message": "template has been updated", "template": {"name": t.name}}),
    ))
}

/// `DELETE /v3/{domain}/templates/{name}`.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let name = name.to_ascii_lowercase();
    state
        .store
        .delete_template(&auth.account_id, &name)
        .await
        .map_err(store)?;
    Ok(Json(
        json!({"message": "template has been deleted", "template": {"name": name}}),
    ))
}

/// `GET /v3/{domain}/templates/{name}/versions`: every version, newest first.
pub async fn versions(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let t = state
        .store
        .template(&auth.account_id, &name.to_ascii_lowercase())
        .await
        .map_err(store)?;
    let mut out = template_json(&t);
    out.insert(
        "versions".into(),
        t.versions
            .iter()
            .map(|v| Value::Object(version_json(v)))
            .collect(),
    );
    let base = format!(
        "{}/v3/{domain}/templates/{}/versions",
        super::base_url(&headers),
        t.name
    );
    // A template has at most 40 versions: one page holds them all.
    Ok(Json(json!({
        "template": out,
        "paging": {"first": base, "last": base, "next": base, "previous": base},
    })))
}

/// `POST /v3/{domain}/templates/{name}/versions`: a new version, active if `active=yes`.
pub async fn version_create(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, name)): Path<(String, String)>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    only(
        &form,
        &["template", "tag", "engine", "comment", "active", "headers"],
    )?;
    let active = match form.one("active")? {
        None => false,
        Some(a) => super::messages::yes_no("active", a, false)?,
    };
    let tag = form
        .one("tag")?
        .ok_or_else(|| MgError::bad_request("'tag' parameter is missing"))?
        .to_ascii_lowercase();
    let t = templates::add_version(
        &state.store,
        &auth.account_id,
        &name,
        VersionRequest {
            tag: Some(tag.clone()),
            comment: comment(&form)?,
            active,
            source: source(&form)?,
        },
    )
    .await
    .map_err(admin)?;
    let mut out = template_json(&t);
    if let Some(v) = t.versions.iter().find(|v| v.tag == tag) {
        out.insert("version".into(), Value::Object(version_json(v)));
    }
    Ok(Json(json!({
        "message": "new version of the template has been stored",
        "template": out,
    })))
}

/// `GET /v3/{domain}/templates/{name}/versions/{tag}`, with its content.
pub async fn version_get(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, name, tag)): Path<(String, String, String)>,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let name = name.to_ascii_lowercase();
    let t = state
        .store
        .template(&auth.account_id, &name)
        .await
        .map_err(store)?;
    let mut out = template_json(&t);
    let v = with_content(&state, &auth, &name, Some(&tag.to_ascii_lowercase())).await?;
    out.insert("version".into(), Value::Object(v));
    Ok(Json(json!({ "template": out })))
}

/// `PUT /v3/{domain}/templates/{name}/versions/{tag}`: its comment, or make it the active
/// one. Its content stays.
pub async fn version_update(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, name, tag)): Path<(String, String, String)>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    for field in ["template", "headers", "engine"] {
        if form.fields.iter().any(|f| f.name == field) {
            return Err(MgError::unsupported(
                field,
                "a version's content never changes: add a new version (and make it active)",
            ));
        }
    }
    only(&form, &["comment", "active"])?;
    let activate = match form.one("active")? {
        None => false,
        Some(a) => super::messages::yes_no("active", a, false)?,
    };
    let tag = tag.to_ascii_lowercase();
    state
        .store
        .update_template_version(
            &auth.account_id,
            &name.to_ascii_lowercase(),
            &tag,
            activate,
            form.one("comment")?
                .map(|c| Some(c).filter(|c| !c.is_empty())),
        )
        .await
        .map_err(store)?;
    Ok(Json(json!({
        "message": "version has been updated",
        "template": {"name": name.to_ascii_lowercase(), "version": {"tag": tag}},
    })))
}

/// `DELETE /v3/{domain}/templates/{name}/versions/{tag}` (not the active one).
pub async fn version_remove(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, name, tag)): Path<(String, String, String)>,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let (name, tag) = (name.to_ascii_lowercase(), tag.to_ascii_lowercase());
    state
        .store
        .delete_template_version(&auth.account_id, &name, &tag)
        .await
        .map_err(store)?;
    Ok(Json(json!({
        "message": "version has been deleted",
        "template": {"name": name, "version": {"tag": tag}},
    })))
}
