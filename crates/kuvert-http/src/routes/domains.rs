use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::domain::{DnsRecord, DomainState, RecordPurpose, RecordType};
use kuvert_core::tracking::DomainTracking;
use kuvert_store::Domain;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct RecordOut {
    pub purpose: RecordPurpose,
    #[serde(rename = "type")]
    pub record_type: RecordType,
    pub name: String,
    pub value: String,
    /// Required records must be in place before the domain can send.
    pub required: bool,
    /// After a verification: whether DNS holds this record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// After a verification: what DNS answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<DnsRecord> for RecordOut {
    fn from(r: DnsRecord) -> Self {
        Self {
            purpose: r.purpose,
            record_type: r.record_type,
            name: r.name,
            value: r.value,
            required: r.required,
            ok: None,
            found: None,
            error: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DomainOut {
    pub name: String,
    pub state: DomainState,
    pub dkim_selector: String,
    pub verified_at: Option<String>,
    pub checked_at: Option<String>,
    pub created_at: String,
    pub tracking: DomainTrackingIo,
    pub records: Vec<RecordOut>,
}

/// A domain's tracking defaults; `null` leaves the choice to the account's settings.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainTrackingIo {
    #[serde(default)]
    pub opens: Option<bool>,
    #[serde(default)]
    pub clicks: Option<bool>,
}

fn domain_out(d: Domain, records: Vec<RecordOut>) -> DomainOut {
    DomainOut {
        state: d.state(),
        name: d.name,
        dkim_selector: d.selector,
        verified_at: d.verified_at.map(|t| t.to_rfc3339()),
        checked_at: d.checked_at.map(|t| t.to_rfc3339()),
        created_at: d.created_at.to_rfc3339(),
        tracking: DomainTrackingIo {
            opens: d.tracking.opens,
            clicks: d.tracking.clicks,
        },
        records,
    }
}

fn with_records(state: &AppState, d: Domain) -> DomainOut {
    let records = kuvert_admin::records(&d, &state.domain_settings)
        .into_iter()
        .map(Into::into)
        .collect();
    domain_out(d, records)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainIn {
    #[schema(
        pattern = "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$",
        max_length = 253
    )]
    pub name: String,
}

/// The account's sending domains.
#[utoipa::path(get, path = "/v1/domains", tag = "domains", responses((status = 200, body = Vec<DomainOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<DomainOut>>, ApiError> {
    let domains = state.store.list_domains(&auth.account_id).await?;
    Ok(Json(
        domains
            .into_iter()
            .map(|d| with_records(&state, d))
            .collect(),
    ))
}

/// Adds a sending domain with a new DKIM key; answers with the DNS records to publish.
#[utoipa::path(post, path = "/v1/domains", tag = "domains", request_body = DomainIn,
    responses((status = 201, body = DomainOut), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<DomainIn>,
) -> Result<(StatusCode, Json<DomainOut>), ApiError> {
    let plan = state.store.account_state(&auth.account_id).await?.plan;
    let (domain, _) = kuvert_admin::add_domain_within(
        &state.store,
        &auth.account_id,
        &req.name,
        &state.domain_settings,
        false,
        Some(state.acceptor.plan_limits(plan).max_domains),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(with_records(&state, domain))))
}

/// One domain and its records.
#[utoipa::path(get, path = "/v1/domains/{name}", tag = "domains", params(("name" = String, Path)),
    responses((status = 200, body = DomainOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
) -> Result<Json<DomainOut>, ApiError> {
    let d = state.store.account_domain(&auth.account_id, &name).await?;
    Ok(Json(with_records(&state, d)))
}

/// Sets the domain's tracking defaults (a field left out or `null` follows the account).
#[utoipa::path(put, path = "/v1/domains/{name}/tracking", tag = "domains", params(("name" = String, Path)),
    request_body = DomainTrackingIo,
    responses((status = 200, body = DomainOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn set_tracking(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
    ApiJson(t): ApiJson<DomainTrackingIo>,
) -> Result<Json<DomainOut>, ApiError> {
    let d = state
        .store
        .set_domain_tracking(
            &auth.account_id,
            &name,
            DomainTracking {
                opens: t.opens,
                clicks: t.clicks,
            },
        )
        .await?;
    Ok(Json(with_records(&state, d)))
}

/// Removes a domain; it can no longer send.
#[utoipa::path(delete, path = "/v1/domains/{name}", tag = "domains", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_domain(&auth.account_id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Looks the domain's records up in DNS; the domain is verified when every required one is there.
#[utoipa::path(post, path = "/v1/domains/{name}/verify", tag = "domains", params(("name" = String, Path)),
    responses((status = 200, body = DomainOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn verify(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
) -> Result<Json<DomainOut>, ApiError> {
    let d = state.store.account_domain(&auth.account_id, &name).await?;
    let (d, checks) =
        kuvert_admin::verify_domain(&state.store, &state.dns, &d, &state.domain_settings, false)
            .await?;
    let records = checks
        .into_iter()
        .map(|c| RecordOut {
            ok: Some(c.ok),
            found: Some(c.found),
            error: c.error,
            ..c.record.into()
        })
        .collect();
    Ok(Json(domain_out(d, records)))
}
