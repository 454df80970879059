//! Mail kept by capture mode (`[delivery] mode = "capture"`, the default of `serve --dev`):
//! what would have been sent, DKIM signature and return path included.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, FullAccess};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaptureQuery {
    /// 1 to 300; default 100.
    #[param(minimum = 1, maximum = 300)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CapturedOut {
    pub message_id: String,
    /// The envelope sender: the VERP return path.
    pub mail_from: String,
    /// The envelope recipients of this transaction.
    pub recipients: Vec<String>,
    /// The message exactly as it would have been sent.
    pub mime: String,
    pub captured_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct CaptureList {
    /// Newest first.
    pub items: Vec<CapturedOut>,
    pub next: Option<String>,
}

/// Captured mail of the account, newest first.
#[utoipa::path(get, path = "/v1/capture", tag = "sending", params(CaptureQuery),
    responses((status = 200, body = CaptureList), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiQuery(q): ApiQuery<CaptureQuery>,
) -> Result<Json<CaptureList>, ApiError> {
    let limit = super::limit(kuvert_core::page::LISTS, q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "not a cursor of this list"))
        })
        .transpose()?;
    let items = state
        .store
        .list_captures(&auth.account_id, before, limit)
        .await?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|c| c.seq.to_string()))
        .flatten();
    Ok(Json(CaptureList {
        items: items
            .into_iter()
            .map(|c| CapturedOut {
                message_id: c.message_id.to_string(),
                mail_from: c.mail_from,
                recipients: c.recipients,
                mime: String::from_utf8_lossy(&c.mime).into_owned(),
                captured_at: c.created_at.to_rfc3339(),
            })
            .collect(),
        next,
    }))
}
