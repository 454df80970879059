//! `/v3/{domain}/tags`: Mailgun's tags onto Kuvert's counters per tag (the rollups
//! `/v1/stats?tag=` reads). Kuvert counts tags per account, so every domain of the account
//! shows the same ones; a tag is known once something was counted under it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use kuvert_store::TagSeen;
use serde_json::{Value, json};

use super::form::Form;
use super::{MgError, MgFull};
use crate::AppState;
use crate::error::ApiError;

fn tag_json(t: &TagSeen) -> Value {
    json!({
        "tag": t.tag,
        "description": "",
        "first-seen": super::date(t.first_seen),
        "last-seen": super::date(t.last_seen),
    })
}

fn store(e: kuvert_store::StoreError) -> MgError {
    match e {
        kuvert_store::StoreError::NotFound(_) => {
            MgError::new(StatusCode::NOT_FOUND, "tag not found")
        }
        e => ApiError::from(e).into(),
    }
}

/// `GET /v3/{domain}/tags`: by name, `limit` (default 100), `page=next` with `tag` the last
/// one seen (as mailgun.js and the Python library follow `paging`).
pub async fn list(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(domain): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let limit = super::limit(&params, 100, 1000)?;
    let after = super::page_after(&params, "tag")?;
    let tags = state
        .store
        .tags(&auth.account_id, after, limit)
        .await
        .map_err(store)?;
    let base = format!("{}/v3/{domain}/tags", super::base_url(&headers));
    let last = tags.last().map_or(after.unwrap_or(""), |t| t.tag.as_str());
    let encode = |t: &str| form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
    Ok(Json(json!({
        "items": tags.iter().map(tag_json).collect::<Vec<_>>(),
        // Only forward paging is served: every link but `next` names the first page.
        "paging": {
            "first": format!("{base}?page=first&limit={limit}"),
            "last": format!("{base}?page=first&limit={limit}"),
            "next": format!("{base}?page=next&tag={}&limit={limit}", encode(last)),
            "previous": format!("{base}?page=first&limit={limit}"),
        },
    })))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, tag)): Path<(String, String)>,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let t = state
        .store
        .tag(&auth.account_id, &tag)
        .await
        .map_err(store)?;
    Ok(Json(tag_json(&t)))
}

/// `PUT /v3/{domain}/tags/{tag}`: a tag's description, which Kuvert does not keep.
pub async fn update(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, _tag)): Path<(String, String)>,
    _form: Form,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    Err(MgError::unsupported(
        "description",
        "Kuvert keeps no description of a tag",
    ))
}

/// `DELETE /v3/{domain}/tags/{tag}`: the tag's counters go; messages keep their tags.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, tag)): Path<(String, String)>,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    state
        .store
        .delete_tag(&auth.account_id, &tag)
        .await
        .map_err(store)?;
    Ok(Json(json!({"message": "Tag deleted"})))
}

/// `GET /v3/{domain}/tags/{tag}/stats`: the tag's counters, as `stats/total` shows a
/// domain's.
pub async fn stats(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, tag)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    state
        .store
        .tag(&auth.account_id, &tag)
        .await
        .map_err(store)?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let (start, end, resolution, stats) =
        super::stats::series(&state, &auth, &params, None, Some(tag.clone())).await?;
    Ok(Json(json!({
        "tag": tag,
        "description": "",
        "start": start,
        "end": end,
        "resolution": resolution,
        "stats": stats,
    })))
}
