//! Segments: saved filters over contacts, with their count and a preview.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::segment::Filter;
use kuvert_store::Segment;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::contacts::ContactOut;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct SegmentOut {
    pub id: String,
    pub name: String,
    pub filter: Filter,
    /// Contacts the filter selects now.
    pub count: u64,
    pub created_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentIn {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub filter: Filter,
}

async fn out(
    state: &AppState,
    account: &kuvert_core::id::AccountId,
    s: Segment,
) -> Result<SegmentOut, ApiError> {
    let count = state.store.segment_count(account, &s.filter).await?;
    Ok(SegmentOut {
        id: s.id.to_string(),
        name: s.name,
        filter: s.filter,
        count,
        created_at: s.created_at.to_rfc3339(),
    })
}

/// The account's segments with their counts.
#[utoipa::path(get, path = "/v1/segments", tag = "contacts",
    responses((status = 200, body = Vec<SegmentOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<SegmentOut>>, ApiError> {
    let mut items = Vec::new();
    for s in state.store.segments(&auth.account_id).await? {
        items.push(out(&state, &auth.account_id, s).await?);
    }
    Ok(Json(items))
}

/// Saves a filter as a segment (it must fit the account's properties).
#[utoipa::path(post, path = "/v1/segments", tag = "contacts", request_body = SegmentIn,
    responses((status = 201, body = SegmentOut), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<SegmentIn>,
) -> Result<(StatusCode, Json<SegmentOut>), ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid(
            "name",
            "a segment's name is 1 to 200 bytes",
        ));
    }
    let s = state
        .store
        .create_segment(&auth.account_id, name, &req.filter)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(out(&state, &auth.account_id, s).await?),
    ))
}

/// A segment and its count.
#[utoipa::path(get, path = "/v1/segments/{id}", tag = "contacts", params(("id" = String, Path)),
    responses((status = 200, body = SegmentOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<Json<SegmentOut>, ApiError> {
    let s = state.store.segment(&auth.account_id, &id).await?;
    Ok(Json(out(&state, &auth.account_id, s).await?))
}

/// Deletes a segment.
#[utoipa::path(delete, path = "/v1/segments/{id}", tag = "contacts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_segment(&auth.account_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// At most 100; 20 by default.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The first contacts a segment selects.
#[utoipa::path(get, path = "/v1/segments/{id}/contacts", tag = "contacts",
    params(("id" = String, Path), PreviewQuery),
    responses((status = 200, body = Vec<ContactOut>), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn preview(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> Result<Json<Vec<ContactOut>>, ApiError> {
    let limit = match q.limit {
        None => 20,
        Some(n) if (1..=100).contains(&n) => n,
        Some(_) => return Err(ApiError::invalid("limit", "limit is 1 to 100")),
    };
    let s = state.store.segment(&auth.account_id, &id).await?;
    let contacts = state
        .store
        .segment_preview(&auth.account_id, &s.filter, limit)
        .await?;
    Ok(Json(contacts.into_iter().map(Into::into).collect()))
}
