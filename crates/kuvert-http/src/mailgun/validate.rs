//! `GET`/`POST /v4/address/validate`: Mailgun's single-address validation onto Kuvert's
//! (`kuvert_admin::contacts::validate`: syntax, the domain's mail servers in DNS, role,
//! disposable and typo checks). Kuvert does not ask the mailbox's provider whether the mailbox
//! exists: `provider_lookup=true` is refused, and `result` says what DNS and the address tell.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use kuvert_core::validate::{MailDomain, Validation};
use serde_json::{Value, json};

use super::form::Form;
use super::{MgError, MgFull};
use crate::AppState;

/// Mailgun's answer for one of Kuvert's validations.
pub fn answer(v: &Validation) -> Value {
    let checks = v.checks.as_ref();
    let role = checks.is_some_and(|c| c.role);
    let disposable = checks.is_some_and(|c| c.disposable);
    let mut reason = Vec::new();
    let (result, risk) = if !v.valid_syntax {
        reason.push("failed_syntax_check");
        ("undeliverable", "high")
    } else {
        match v.mail_domain {
            Some(MailDomain::Accepts) if disposable => ("do_not_send", "high"),
            Some(MailDomain::Accepts) if role => ("deliverable", "medium"),
            Some(MailDomain::Accepts) => ("deliverable", "low"),
            Some(MailDomain::Unknown) | None => {
                reason.push("unknown_provider");
                ("unknown", "unknown")
            }
            Some(MailDomain::DoesNotExist) => {
                reason.push("domain_does_not_exist");
                ("undeliverable", "high")
            }
            Some(MailDomain::NoMailServer | MailDomain::NullMx) => {
                reason.push("no_mx");
                ("undeliverable", "high")
            }
        }
    };
    if disposable {
        reason.push("mailbox_is_disposable_address");
    }
    if role {
        reason.push("mailbox_is_role_address");
    }
    json!({
        "address": v.address,
        "is_disposable_address": disposable,
        "is_role_address": role,
        "reason": reason,
        "result": result,
        "risk": risk,
        "did_you_mean": checks.and_then(|c| c.suggestion.clone()),
    })
}

async fn validate(state: &AppState, params: &Form) -> Result<Json<Value>, MgError> {
    for f in &params.fields {
        match f.name.as_str() {
            "address" => {}
            "provider_lookup" if params.first("provider_lookup") == Some("false") => {}
            "provider_lookup" => {
                return Err(MgError::unsupported(
                    "provider_lookup",
                    "Kuvert does not ask mailbox providers whether a mailbox exists; send provider_lookup=false",
                ));
            }
            other => {
                return Err(MgError::bad_request(format!(
                    "'{other}' is not a parameter of this route"
                )));
            }
        }
    }
    let address = params
        .one("address")?
        .ok_or_else(|| MgError::bad_request("'address' parameter is missing"))?;
    if address.len() > 320 {
        return Err(MgError::bad_request("address: at most 320 bytes"));
    }
    let v = kuvert_admin::contacts::validate(&state.dns, address, &state.disposable_domains).await;
    Ok(Json(answer(&v)))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    MgFull(_auth): MgFull,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    validate(&state, &params).await
}

pub async fn post(
    State(state): State<Arc<AppState>>,
    MgFull(_auth): MgFull,
    form: Form,
) -> Result<Json<Value>, MgError> {
    validate(&state, &form).await
}
