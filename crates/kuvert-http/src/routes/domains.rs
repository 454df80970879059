use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_admin::dkim::NewKey;
use kuvert_core::domain::{
    DkimAlgorithm, DkimKey, DkimKeyState, DnsRecord, DomainState, RecordProblem, RecordPurpose,
    RecordType,
};
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

/// One of the domain's DKIM keys.
#[derive(Serialize, ToSchema)]
pub struct DkimKeyOut {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// `pending`: publish its record, then verify; `active`: it signs; `retiring`: replaced,
    /// keep its record published until `retire_at`.
    pub state: DkimKeyState,
    pub created_at: String,
    pub active_at: Option<String>,
    pub retire_at: Option<String>,
}

impl From<DkimKey> for DkimKeyOut {
    fn from(k: DkimKey) -> Self {
        Self {
            selector: k.selector,
            algorithm: k.algorithm,
            state: k.state,
            created_at: k.created_at.to_rfc3339(),
            active_at: k.active_at.map(|t| t.to_rfc3339()),
            retire_at: k.retire_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DomainOut {
    pub name: String,
    pub state: DomainState,
    /// The selector of the RSA key that signs.
    pub dkim_selector: String,
    /// Required records the last check (a verification, or the daily re-check) did not
    /// find. A missing DKIM record stops the domain's mail; the others are shown while it
    /// goes on.
    pub problems: Vec<RecordProblem>,
    /// Advised records the last check did not find, or found wanting: DMARC (one record
    /// with a policy; `aspf=s` leaves DMARC to DKIM alone). They stop nothing.
    pub advice: Vec<RecordProblem>,
    pub dkim_keys: Vec<DkimKeyOut>,
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

fn domain_out(d: Domain, keys: Vec<DkimKey>, records: Vec<RecordOut>) -> DomainOut {
    let dkim_selector = keys
        .iter()
        .find(|k| k.algorithm == DkimAlgorithm::Rsa && k.state == DkimKeyState::Active)
        .map(|k| k.selector.clone())
        .unwrap_or_default();
    DomainOut {
        state: d.state(),
        name: d.name,
        dkim_selector,
        problems: d.problems,
        advice: d.advice,
        dkim_keys: keys.into_iter().map(Into::into).collect(),
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

async fn with_records(state: &AppState, d: Domain) -> Result<DomainOut, ApiError> {
    let keys = state.store.dkim_keys(&d.id).await?;
    let records = kuvert_core::domain::dns_records(&d.name, &keys, &state.domain_settings)
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(domain_out(d, keys, records))
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
    let mut out = Vec::new();
    for d in state.store.list_domains(&auth.account_id).await? {
        out.push(with_records(&state, d).await?);
    }
    Ok(Json(out))
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
    Ok((
        StatusCode::CREATED,
        Json(with_records(&state, domain).await?),
    ))
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
    Ok(Json(with_records(&state, d).await?))
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
    Ok(Json(with_records(&state, d).await?))
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
    let keys = state.store.dkim_keys(&d.id).await?;
    Ok(Json(domain_out(d, keys, records)))
}

/// Which key to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyIn {
    pub algorithm: DkimAlgorithm,
}

/// Which key to replace; RSA when left out.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DkimRotateIn {
    #[serde(default)]
    pub algorithm: Option<DkimAlgorithm>,
}

/// Adds a DKIM key of an algorithm the domain has none of (Ed25519 beside RSA, RFC 8463). It
/// is `pending`: publish its record and verify; from then on messages carry its signature
/// beside the others.
#[utoipa::path(post, path = "/v1/domains/{name}/dkim-keys", tag = "domains", params(("name" = String, Path)),
    request_body = DkimKeyIn,
    responses((status = 201, body = DomainOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn add_key(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<DkimKeyIn>,
) -> Result<(StatusCode, Json<DomainOut>), ApiError> {
    new_key(&state, &auth.account_id, &name, req.algorithm, NewKey::Add).await
}

/// Replaces the domain's DKIM key of an algorithm (RSA when the body is empty). The new key
/// is `pending` and signs nothing until verification finds its record; then it signs and the
/// old key is `retiring`, listed until `retire_at`. No message is signed with a key whose
/// record is not published, and none goes out unsigned.
#[utoipa::path(post, path = "/v1/domains/{name}/dkim-keys/rotate", tag = "domains", params(("name" = String, Path)),
    request_body(content = Option<DkimRotateIn>),
    responses((status = 201, body = DomainOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn rotate_key(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<DomainOut>), ApiError> {
    // No body, and `null`, are the same as `{}`.
    let text = body.trim_ascii();
    let algorithm = if text.is_empty() || text == b"null" {
        None
    } else {
        crate::extract::from_json::<DkimRotateIn>(&body)?.algorithm
    };
    let algorithm = algorithm.unwrap_or(DkimAlgorithm::Rsa);
    new_key(&state, &auth.account_id, &name, algorithm, NewKey::Rotate).await
}

async fn new_key(
    state: &AppState,
    account: &kuvert_core::id::AccountId,
    name: &str,
    algorithm: DkimAlgorithm,
    what: NewKey,
) -> Result<(StatusCode, Json<DomainOut>), ApiError> {
    let d = state.store.account_domain(account, name).await?;
    kuvert_admin::dkim::new_key(&state.store, &d, algorithm, what, &state.domain_settings).await?;
    let d = state.store.account_domain(account, name).await?;
    Ok((StatusCode::CREATED, Json(with_records(state, d).await?)))
}
