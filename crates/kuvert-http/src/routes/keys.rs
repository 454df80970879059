use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::apikey::Scope;
use kuvert_store::ApiKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub scope: Scope,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for KeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            scope: k.scope,
            created_at: k.created_at.to_rfc3339(),
            last_used_at: k.last_used_at.map(|t| t.to_rfc3339()),
            revoked_at: k.revoked_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct NewKeyOut {
    #[serde(flatten)]
    pub key: KeyOut,
    /// The key itself. Shown this once: Kuvert keeps only its hash.
    pub secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    #[serde(default)]
    pub name: String,
    /// `full` (default) or `send`.
    #[schema(pattern = "^(full|send)$")]
    pub scope: Option<String>,
}

/// The account's API keys (never the secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = Vec<KeyOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<KeyOut>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_keys(&auth.account_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Creates a key; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeyIn,
    responses((status = 201, body = NewKeyOut), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<KeyIn>,
) -> Result<(StatusCode, Json<NewKeyOut>), ApiError> {
    let scope = match req.scope.as_deref() {
        None => Scope::Full,
        Some(s) => s.parse().map_err(|e| ApiError::invalid("scope", e))?,
    };
    let (key, secret) =
        kuvert_admin::create_key(&state.store, &auth.account_id, &req.name, scope).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKeyOut {
            key: key.into(),
            secret,
        }),
    ))
}

/// Revokes a key at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<Json<KeyOut>, ApiError> {
    Ok(Json(
        state.store.revoke_key(&auth.account_id, &id).await?.into(),
    ))
}
