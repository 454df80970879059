//! Mailgun's webhook registrations (`/v3/domains/{domain}/webhooks`) over Kuvert's
//! endpoints: each URL of a Mailgun webhook id is an endpoint of its own, in Mailgun's format
//! (`kuvert_webhooks::mailgun`), for that domain's events only, signed with the account's
//! Mailgun signing key (`GET /v5/accounts/http_signing_key`), as Mailgun's receivers expect.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::event::EventType;
use kuvert_core::webhook::WebhookFormat;
use kuvert_store::{Domain, NewWebhook, Webhook};
use serde_json::{Value, json};

use super::form::Form;
use super::{MgError, MgFull};
use crate::AppState;

/// URLs one webhook id takes, as Mailgun.
pub const MAX_URLS: usize = 3;

/// Mailgun's webhook ids and the event types each stands for.
const IDS: &[(&str, &[EventType])] = &[
    ("accepted", &[EventType::Accepted]),
    ("delivered", &[EventType::Delivered]),
    ("opened", &[EventType::Opened]),
    ("clicked", &[EventType::Clicked]),
    ("unsubscribed", &[EventType::Unsubscribed]),
    ("complained", &[EventType::Complained]),
    (
        "permanent_fail",
        &[EventType::Bounced, EventType::Failed, EventType::Dropped],
    ),
    ("temporary_fail", &[EventType::Deferred]),
];

fn id_types(id: &str) -> Result<(&'static str, &'static [EventType]), MgError> {
    // mailgun.js names the unsubscribe webhook `unsubscribe`.
    let id = if id == "unsubscribe" {
        "unsubscribed"
    } else {
        id
    };
    IDS.iter()
        .find(|(name, _)| *name == id)
        .copied()
        .ok_or_else(|| {
            MgError::bad_request(format!(
                "{id:?} is not a webhook id ({})",
                IDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ))
        })
}

/// The Mailgun id of an endpoint registered through this API.
fn id_of(w: &Webhook) -> Option<&'static str> {
    let mut events = w.events.clone();
    events.sort_unstable();
    IDS.iter()
        .find(|(_, types)| {
            let mut t = types.to_vec();
            t.sort_unstable();
            t == events
        })
        .map(|(name, _)| *name)
}

/// The domain's Mailgun endpoints, by id.
async fn registered(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    domain: &Domain,
) -> Result<BTreeMap<&'static str, Vec<Webhook>>, MgError> {
    let mut out: BTreeMap<&'static str, Vec<Webhook>> = BTreeMap::new();
    for w in state
        .store
        .list_webhooks(&auth.account_id)
        .await
        .map_err(crate::ApiError::from)?
    {
        if w.format == WebhookFormat::Mailgun
            && w.domain_id.as_ref() == Some(&domain.id)
            && let Some(id) = id_of(&w)
        {
            out.entry(id).or_default().push(w);
        }
    }
    Ok(out)
}

/// The endpoints of one Mailgun id of the domain, or Mailgun's 404.
async fn registered_id(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    domain: &Domain,
    id: &str,
) -> Result<Vec<Webhook>, MgError> {
    registered(state, auth, domain)
        .await?
        .remove(id)
        .ok_or_else(|| MgError::new(StatusCode::NOT_FOUND, "Webhook not found"))
}

/// Removes endpoints (and what they had not received yet).
async fn delete(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    hooks: impl Iterator<Item = &Webhook>,
) -> Result<(), MgError> {
    for w in hooks {
        state
            .store
            .delete_webhook(&auth.account_id, w.id.as_str())
            .await
            .map_err(crate::ApiError::from)?;
    }
    Ok(())
}

fn urls(hooks: &[Webhook]) -> Value {
    json!({"urls": hooks.iter().map(|w| w.url.clone()).collect::<Vec<_>>()})
}

/// The `url` fields of a form: one to three, each an endpoint Kuvert may call.
async fn form_urls(state: &AppState, form: &Form) -> Result<Vec<String>, MgError> {
    let urls: Vec<String> = form.texts("url").map(|u| u.trim().to_owned()).collect();
    if urls.is_empty() {
        return Err(MgError::bad_request("'url' parameter is missing"));
    }
    if urls.len() > MAX_URLS {
        return Err(MgError::bad_request(format!(
            "at most {MAX_URLS} urls a webhook"
        )));
    }
    for u in &urls {
        kuvert_webhooks::check_url(u, &state.dns, state.allow_private_webhooks)
            .await
            .map_err(|e| MgError::bad_request(format!("url: {e}")))?;
    }
    if let Some(f) = form
        .fields
        .iter()
        .find(|f| f.name != "url" && f.name != "id")
    {
        return Err(MgError::bad_request(format!(
            "'{}' is not a parameter of this route",
            f.name
        )));
    }
    Ok(urls)
}

async fn add_urls(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    domain: &Domain,
    types: &[EventType],
    urls: &[String],
) -> Result<(), MgError> {
    let key = state.store.mailgun_signing_key(&auth.account_id);
    for url in urls {
        state
            .store
            .register_webhook(
                &auth.account_id,
                NewWebhook {
                    url,
                    events: types,
                    signing_key: &key,
                    format: WebhookFormat::Mailgun,
                    domain_id: Some(&domain.id),
                },
            )
            .await
            .map_err(crate::ApiError::from)?;
    }
    Ok(())
}

/// `GET /v3/domains/{domain}/webhooks`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(domain): Path<String>,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    let hooks = registered(&state, &auth, &domain).await?;
    let webhooks: serde_json::Map<String, Value> = hooks
        .iter()
        .map(|(id, hooks)| ((*id).to_owned(), urls(hooks)))
        .collect();
    Ok(Json(json!({"webhooks": webhooks})))
}

/// `GET /v3/domains/{domain}/webhooks/{id}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, id)): Path<(String, String)>,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    let (id, _) = id_types(&id)?;
    let hooks = registered_id(&state, &auth, &domain, id).await?;
    Ok(Json(json!({"webhook": urls(&hooks)})))
}

/// `POST /v3/domains/{domain}/webhooks`: `id` and one to three `url`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(domain): Path<String>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    let id = form
        .one("id")?
        .ok_or_else(|| MgError::bad_request("'id' parameter is missing"))?;
    let (id, types) = id_types(id)?;
    let new = form_urls(&state, &form).await?;
    if registered(&state, &auth, &domain).await?.contains_key(id) {
        return Err(MgError::bad_request("Webhook already exists"));
    }
    add_urls(&state, &auth, &domain, types, &new).await?;
    Ok(Json(json!({
        "message": "Webhook has been created",
        "webhook": {"urls": new},
    })))
}

/// `PUT /v3/domains/{domain}/webhooks/{id}`: the id's URLs become the ones given. An URL
/// kept keeps its endpoint (and what waits for it).
pub async fn update(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, id)): Path<(String, String)>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    let (id, types) = id_types(&id)?;
    let wanted = form_urls(&state, &form).await?;
    let old = registered_id(&state, &auth, &domain, id).await?;
    delete(
        &state,
        &auth,
        old.iter().filter(|w| !wanted.contains(&w.url)),
    )
    .await?;
    let added: Vec<String> = wanted
        .iter()
        .filter(|u| !old.iter().any(|w| &&w.url == u))
        .cloned()
        .collect();
    add_urls(&state, &auth, &domain, types, &added).await?;
    Ok(Json(json!({
        "message": "Webhook has been updated",
        "webhook": {"urls": wanted},
    })))
}

/// `DELETE /v3/domains/{domain}/webhooks/{id}`.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, id)): Path<(String, String)>,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    let (id, _) = id_types(&id)?;
    let old = registered_id(&state, &auth, &domain, id).await?;
    delete(&state, &auth, old.iter()).await?;
    Ok(Json(json!({
        "message": "Webhook has been deleted",
        "webhook": urls(&old),
    })))
}

/// `GET /v5/accounts/http_signing_key`: the key Mailgun-format endpoints are signed with.
pub async fn signing_key(State(state): State<Arc<AppState>>, MgFull(auth): MgFull) -> Json<Value> {
    Json(json!({"http_signing_key": state.store.mailgun_signing_key(&auth.account_id)}))
}
