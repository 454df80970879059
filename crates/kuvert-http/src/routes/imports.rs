//! Contact imports: a CSV upload that runs as a job, watched by its counters, paused for
//! review when columns look sensitive or are no defined property, and its error report.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use futures_util::StreamExt;
use kuvert_admin::contacts::import::Upload;
use kuvert_core::contact::{ImportMode, ImportState};
use kuvert_core::id::ListId;
use kuvert_store::Import;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ApiJson, ApiQuery, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct ImportOut {
    pub id: String,
    pub list_id: Option<String>,
    pub mode: ImportMode,
    pub state: ImportState,
    /// Data rows in the file (known once the scan is done).
    pub total: u64,
    /// Rows worked through so far.
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    /// Rows left alone: already there, or refused for a reason in the error report
    /// (erased, suppressed, unsubscribed).
    pub skipped: u64,
    /// Rows refused (in the error report).
    pub failed: u64,
    /// Columns that hold the import in `review`: `sensitive` ones (samples masked) and
    /// `unknown_column`s that are no defined property.
    #[schema(value_type = Vec<Object>)]
    pub findings: serde_json::Value,
    /// Columns left out at the account's choice.
    pub dropped: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Import> for ImportOut {
    fn from(i: Import) -> Self {
        Self {
            id: i.id.to_string(),
            list_id: i.list_id.map(|l| l.to_string()),
            mode: i.mode,
            state: i.state,
            total: i.total,
            processed: i.processed,
            created: i.created,
            updated: i.updated,
            skipped: i.skipped,
            failed: i.failed,
            findings: i.findings,
            dropped: i.dropped,
            error: i.error,
            created_at: i.created_at.to_rfc3339(),
            updated_at: i.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The list to subscribe the rows' contacts to (or unsubscribe them from).
    #[param(min_length = 1)]
    pub list: Option<String>,
    /// `add` (the default), `update` or `unsubscribe` (which needs a list).
    #[param(pattern = "^(add|update|unsubscribe)$")]
    pub mode: Option<String>,
    /// The wording the contacts agreed to (or its version), recorded with each consent;
    /// the list's own when left out.
    #[param(min_length = 1, max_length = 1000)]
    pub consent_text: Option<String>,
}

/// Starts an import of a CSV file (the body, `text/csv`): a header row with an address
/// column (`email`), optionally `name`, and a column per defined property. It runs in the
/// background: watch it at `GET /v1/imports/{id}`.
#[utoipa::path(post, path = "/v1/imports", tag = "contacts", params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "the CSV file"),
    responses((status = 202, body = ImportOut), (status = 404, body = ErrorBody, description = "no such list"), (status = 413, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<ImportOut>), ApiError> {
    let mode = match q.mode.as_deref() {
        None => ImportMode::Add,
        Some(m) => m.parse().map_err(|e| ApiError::invalid("mode", e))?,
    };
    if mode == ImportMode::Unsubscribe && q.list.is_none() {
        return Err(ApiError::invalid(
            "list",
            "an unsubscribe import names its list",
        ));
    }
    if q.consent_text.as_ref().is_some_and(|t| t.len() > 1000) {
        return Err(ApiError::invalid("consent_text", "at most 1,000 bytes"));
    }
    let account = &auth.account_id;
    let list = q.list.map(ListId::from_string);
    let id = state
        .store
        .create_import(account, list.as_ref(), mode, q.consent_text.as_deref())
        .await?;
    let mut upload = Upload::new(&state.store, account.clone(), id, state.max_import_bytes);
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let step = match piece {
            Ok(bytes) => upload.push(&bytes).await,
            Err(e) => Err(kuvert_admin::AdminError::Import(format!(
                "the upload broke off: {e}"
            ))),
        };
        if let Err(e) = step {
            let too_large =
                matches!(&e, kuvert_admin::AdminError::Import(m) if m.contains("larger"));
            upload.abandon(&e.to_string()).await;
            return Err(if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    e.to_string(),
                )
            } else {
                e.into()
            });
        }
    }
    let id = upload.finish().await?;
    state.imports.notify_one();
    let import = state.store.import(account, id.as_str()).await?;
    Ok((StatusCode::ACCEPTED, Json(import.into())))
}

/// The account's imports, newest first (the last 100).
#[utoipa::path(get, path = "/v1/imports", tag = "contacts",
    responses((status = 200, body = Vec<ImportOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<ImportOut>>, ApiError> {
    Ok(Json(
        state
            .store
            .imports(&auth.account_id, 100)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// An import and its progress.
#[utoipa::path(get, path = "/v1/imports/{id}", tag = "contacts", params(("id" = String, Path)),
    responses((status = 200, body = ImportOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<Json<ImportOut>, ApiError> {
    Ok(Json(
        state.store.import(&auth.account_id, &id).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmIn {
    /// Columns to leave out. Every `unknown_column` finding must be among them; a
    /// `sensitive` column left in is imported as the account confirms.
    #[serde(default)]
    pub drop_columns: Vec<String>,
}

/// Lets an import in review run, leaving out the columns named.
#[utoipa::path(post, path = "/v1/imports/{id}/confirm", tag = "contacts",
    params(("id" = String, Path)), request_body = ConfirmIn,
    responses((status = 200, body = ImportOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ConfirmIn>,
) -> Result<Json<ImportOut>, ApiError> {
    let account = &auth.account_id;
    let import = state.store.import(account, &id).await?;
    if import.state != ImportState::Review {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ImportState,
            format!("the import is {}, not in review", import.state),
        ));
    }
    // Confirming accepts the sensitive-looking columns kept; unknown ones must be dropped.
    let review =
        kuvert_admin::contacts::import::Review::of(&import.findings, &req.drop_columns, true);
    if let Some(column) = review.unanswered.first() {
        return Err(ApiError::invalid(
            "drop_columns",
            format!("{column}: drop it, or define the property and import again"),
        ));
    }
    let dropped = review.dropped;
    state.store.confirm_import(account, &id, &dropped).await?;
    state.imports.notify_one();
    Ok(Json(state.store.import(account, &id).await?.into()))
}

/// Cancels an import that has not finished (rows already written stay).
#[utoipa::path(delete, path = "/v1/imports/{id}", tag = "contacts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the import has finished")),
    security(("api_key" = []), ("basic" = [])))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let account = &auth.account_id;
    state.store.import(account, &id).await?;
    state
        .store
        .cancel_import(account, &id)
        .await
        .map_err(|e| match e {
            kuvert_store::StoreError::NotFound(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::ImportState,
                "the import has finished",
            ),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The error report as CSV: `row,column,reason` for every row refused or skipped with a
/// reason (row 1 is the first after the header). It names no value of the file.
#[utoipa::path(get, path = "/v1/imports/{id}/errors", tag = "contacts", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv", description = "row,column,reason"), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn errors(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let account = auth.account_id.clone();
    state.store.import(&account, &id).await?;
    let store = state.store.clone();
    let name = format!("{id}-errors.csv");
    Ok(super::streamed(
        "text/csv; charset=utf-8",
        &name,
        move |mut sink| async move {
            use kuvert_admin::contacts::csv::write_record;
            use kuvert_admin::export::ExportSink;
            let done = async {
                let mut buf = Vec::new();
                write_record(&mut buf, &["row", "column", "reason"]);
                let mut after = 0;
                loop {
                    let page = store.import_errors(&account, &id, after, 1000).await?;
                    let Some(last) = page.last() else { break };
                    after = last.row_number;
                    for e in &page {
                        write_record(&mut buf, &[&e.row_number.to_string(), &e.column, &e.reason]);
                    }
                    sink.write(&buf).await?;
                    buf.clear();
                }
                sink.write(&buf).await
            }
            .await;
            (sink, done)
        },
    ))
}
