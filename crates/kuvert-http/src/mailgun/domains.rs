//! Mailgun's domains (`/v4/domains` and `/v3/domains`: the Python library uses v3 where
//! mailgun.js uses v4, with the same shapes) over Kuvert's sending domains: the same
//! `add_domain_within`, `verify_domain` and records as `/v1/domains`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use kuvert_core::domain::{DnsRecord, DomainState, RecordType};
use kuvert_store::Domain;
use serde_json::{Value, json};

use super::form::Form;
use super::{MgError, MgFull};
use crate::AppState;

/// A record in Mailgun's shape; `valid` as the last check found it.
fn record(r: &DnsRecord, valid: Option<bool>) -> Value {
    let mut v = json!({
        "record_type": r.record_type.as_str(),
        "name": r.name,
        "value": r.value,
        "valid": match valid {
            Some(true) => "valid",
            Some(false) => "invalid",
            None => "unknown",
        },
        "cached": [],
    });
    // Kuvert's MX records (the return path) are written `10 host`.
    if r.record_type == RecordType::Mx
        && let Some((priority, host)) = r.value.split_once(' ')
    {
        v["priority"] = priority.into();
        v["value"] = host.into();
    }
    v
}

fn domain_json(d: &Domain) -> Value {
    let state = d.state();
    json!({
        "id": d.id.to_string(),
        "name": d.name,
        "created_at": super::date(d.created_at),
        "state": if state == DomainState::Unverified { "unverified" } else { "active" },
        "type": if state == DomainState::Sandbox { "sandbox" } else { "custom" },
        "is_disabled": false,
        "require_tls": false,
        "skip_verification": false,
        "smtp_login": "",
        "spam_action": "disabled",
        "wildcard": false,
        "web_prefix": "",
        "web_scheme": "https",
        "use_automatic_sender_security": false,
    })
}

/// The domain with its records, split as Mailgun does: MX records are the receiving ones.
async fn with_records(
    state: &AppState,
    d: &Domain,
    checked: Option<Vec<(DnsRecord, bool)>>,
) -> Result<Value, MgError> {
    let records: Vec<(DnsRecord, Option<bool>)> = match checked {
        Some(c) => c.into_iter().map(|(r, ok)| (r, Some(ok))).collect(),
        None => kuvert_admin::records(&state.store, d, &state.domain_settings)
            .await
            .map_err(crate::ApiError::from)?
            .into_iter()
            .map(|r| (r, None))
            .collect(),
    };
    let (receiving, sending): (Vec<_>, Vec<_>) = records
        .iter()
        .partition(|(r, _)| r.record_type == RecordType::Mx);
    Ok(json!({
        "domain": domain_json(d),
        "receiving_dns_records": receiving.iter().map(|(r, ok)| record(r, *ok)).collect::<Vec<_>>(),
        "sending_dns_records": sending.iter().map(|(r, ok)| record(r, *ok)).collect::<Vec<_>>(),
    }))
}

/// `GET /v4/domains` (and `/v3/domains`): the account's domains, `skip` and `limit` applied.
pub async fn list(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let limit = super::limit(&params, 100, 1000)?;
    let skip = match params.first("skip") {
        None => 0,
        Some(s) => s
            .trim()
            .parse::<usize>()
            .map_err(|_| MgError::bad_request("skip: must be a number"))?,
    };
    let domains = state
        .store
        .list_domains(&auth.account_id)
        .await
        .map_err(crate::ApiError::from)?;
    let items: Vec<Value> = domains
        .iter()
        .skip(skip)
        .take(limit as usize)
        .map(domain_json)
        .collect();
    Ok(Json(json!({"items": items, "total_count": domains.len()})))
}

/// `GET /v4/domains/{name}` (and v3).
pub async fn get(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(name): Path<String>,
) -> Result<Json<Value>, MgError> {
    let d = super::account_domain(&state, &auth, &name).await?;
    Ok(Json(with_records(&state, &d, None).await?))
}

/// `POST /v4/domains` (and v3): a new sending domain, with the records to publish.
pub async fn create(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    form: Form,
) -> Result<(StatusCode, Json<Value>), MgError> {
    let mut name = None;
    for f in &form.fields {
        let value = match &f.value {
            super::form::FieldValue::Text(t) => t.trim(),
            super::form::FieldValue::File { .. } => {
                return Err(MgError::bad_request(format!(
                    "'{}' is not a file field",
                    f.name
                )));
            }
        };
        match (f.name.as_str(), value.to_ascii_lowercase().as_str()) {
            ("name", _) => name = Some(value),
            // Options Mailgun has whose default is what Kuvert does.
            (
                "wildcard"
                | "force_dkim_authority"
                | "force_root_dkim_host"
                | "encrypt_incoming_message"
                | "use_automatic_sender_security",
                "false" | "no",
            )
            | ("spam_action", "disabled") => {}
            (other, _) => {
                return Err(MgError::unsupported(
                    other,
                    "a domain is created with its name alone (DKIM keys, IP pools and tracking are set with kuvert domain)",
                ));
            }
        }
    }
    let name = name.ok_or_else(|| MgError::bad_request("'name' parameter is missing"))?;
    let plan = state
        .store
        .account_state(&auth.account_id)
        .await
        .map_err(crate::ApiError::from)?
        .plan;
    let (domain, _) = kuvert_admin::add_domain_within(
        &state.store,
        &auth.account_id,
        name,
        &state.domain_settings,
        false,
        Some(state.acceptor.plan_limits(plan).max_domains),
    )
    .await
    .map_err(crate::ApiError::from)?;
    let mut out = with_records(&state, &domain, None).await?;
    out["message"] = "Domain has been created".into();
    Ok((StatusCode::OK, Json(out)))
}

/// `PUT /v4/domains/{name}/verify` (and v3): the records checked in DNS now.
pub async fn verify(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(name): Path<String>,
) -> Result<Json<Value>, MgError> {
    let d = super::account_domain(&state, &auth, &name).await?;
    let (d, checks) =
        kuvert_admin::verify_domain(&state.store, &state.dns, &d, &state.domain_settings, false)
            .await
            .map_err(crate::ApiError::from)?;
    let checked = checks.into_iter().map(|c| (c.record, c.ok)).collect();
    let mut out = with_records(&state, &d, Some(checked)).await?;
    out["message"] = "Domain DNS records have been updated".into();
    Ok(Json(out))
}

/// `DELETE /v3/domains/{name}` (and v4).
pub async fn remove(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(name): Path<String>,
) -> Result<Json<Value>, MgError> {
    let d = super::account_domain(&state, &auth, &name).await?;
    state
        .store
        .delete_domain(&auth.account_id, &d.name)
        .await
        .map_err(crate::ApiError::from)?;
    Ok(Json(json!({"message": "Domain has been deleted"})))
}
