use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::EmailAddress;
use kuvert_core::event::SuppressionReason;
use kuvert_store::Suppression;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ApiJson, ApiQuery, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct SuppressionOut {
    /// Null once the address was erased; its keyed hash still blocks it.
    pub address: Option<String>,
    pub reason: SuppressionReason,
    pub created_at: String,
}

impl From<Suppression> for SuppressionOut {
    fn from(s: Suppression) -> Self {
        Self {
            address: s.address,
            reason: s.reason,
            created_at: s.created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionList {
    pub items: Vec<SuppressionOut>,
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionQuery {
    #[param(min_length = 1)]
    pub reason: Option<String>,
    #[param(minimum = 1, maximum = 300)]
    pub limit: Option<u32>,
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionIn {
    #[schema(pattern = "^[a-z0-9_+-]{1,64}@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$")]
    pub address: String,
    /// Default `manual`.
    #[schema(pattern = "^(bounce|unsubscribe|complaint|manual)$")]
    pub reason: Option<String>,
}

fn reason(field: &str, r: Option<&str>) -> Result<Option<SuppressionReason>, ApiError> {
    r.map(|r| r.parse().map_err(|e| ApiError::invalid(field, e)))
        .transpose()
}

/// The account's suppression list, newest first.
#[utoipa::path(get, path = "/v1/suppressions", tag = "suppressions", params(SuppressionQuery),
    responses((status = 200, body = SuppressionList), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiQuery(q): ApiQuery<SuppressionQuery>,
) -> Result<Json<SuppressionList>, ApiError> {
    let page = state
        .store
        .list_suppressions(
            &auth.account_id,
            reason("reason", q.reason.as_deref())?,
            q.cursor.as_deref(),
            super::limit(kuvert_core::page::LISTS, q.limit)?,
        )
        .await?;
    Ok(Json(SuppressionList {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// Adds an address (later sends to it are dropped).
#[utoipa::path(post, path = "/v1/suppressions", tag = "suppressions", request_body = SuppressionIn,
    responses((status = 201, body = SuppressionOut), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<SuppressionIn>,
) -> Result<(StatusCode, Json<SuppressionOut>), ApiError> {
    let address = EmailAddress::parse(&req.address).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidAddress,
            format!("{:?}: {e}", req.address),
        )
        .field("address")
    })?;
    let reason = reason("reason", req.reason.as_deref())?.unwrap_or(SuppressionReason::Manual);
    let s = state
        .store
        .add_suppression(&auth.account_id, address.as_str(), reason)
        .await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// Removes an address from the list.
#[utoipa::path(delete, path = "/v1/suppressions/{address}", tag = "suppressions",
    params(("address" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .remove_suppression(&auth.account_id, &address)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
