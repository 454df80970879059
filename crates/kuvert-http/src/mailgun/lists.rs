//! `/v3/lists`: Mailgun's mailing lists and their members onto Kuvert's lists and contacts.
//! A Mailgun list is named by an address; here that address is the Kuvert list's name. A
//! member is a contact with a subscription to the list (consent recorded as given through
//! the API, as `/v1/contacts` records it); its `vars` are the contact's properties, each
//! defined first. Mail to a list's address is not expanded: campaigns send to lists.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use kuvert_core::contact::SubscriptionStatus;
use kuvert_store::{Contact, ContactPatch, List, NewContact};
use serde_json::{Map, Value, json};

use super::form::Form;
use super::{MgError, MgFull};
use crate::AppState;
use crate::error::ApiError;
use crate::routes::contacts as v1;

fn list_json(l: &List) -> Value {
    json!({
        "address": l.settings.name,
        "name": "",
        "description": "",
        "access_level": "readonly",
        "reply_preference": "list",
        "members_count": l.subscribed,
        "created_at": super::date(l.created_at),
    })
}

fn list_not_found() -> MgError {
    MgError::new(StatusCode::NOT_FOUND, "Mailing list not found")
}

fn member_not_found() -> MgError {
    MgError::new(StatusCode::NOT_FOUND, "Member not found")
}

/// The account's list whose address (Kuvert name) is `address`.
async fn by_address(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    address: &str,
) -> Result<List, MgError> {
    let address = address.to_ascii_lowercase();
    state
        .store
        .lists(&auth.account_id)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .find(|l| l.settings.name == address)
        .ok_or_else(list_not_found)
}

/// A list's fields: only its address is kept, and what Kuvert's lists are (read-only,
/// replies to the list) taken as they are.
fn check_list_form(form: &Form, known: &[&str]) -> Result<(), MgError> {
    for f in &form.fields {
        let value = form.first(&f.name).unwrap_or_default();
        match f.name.as_str() {
            n if known.contains(&n) => {}
            "access_level" if value == "readonly" => {}
            "reply_preference" if value == "list" => {}
            "name" | "description" if value.is_empty() => {}
            "name" | "description" => {
                return Err(MgError::unsupported(
                    &f.name,
                    "a Kuvert list keeps its address (its name) only",
                ));
            }
            "access_level" | "reply_preference" => {
                return Err(MgError::unsupported(
                    &f.name,
                    "lists send campaigns; they are not discussion lists (readonly, replies to the list)",
                ));
            }
            other => {
                return Err(MgError::bad_request(format!(
                    "'{other}' is not a parameter of this route"
                )));
            }
        }
    }
    Ok(())
}

fn list_address(form: &Form) -> Result<String, MgError> {
    let address = form
        .one("address")?
        .ok_or_else(|| MgError::bad_request("'address' parameter is missing"))?;
    Ok(kuvert_core::EmailAddress::parse(address)
        .map_err(|e| MgError::bad_request(format!("address: {e}")))?
        .normalized())
}

/// `POST /v3/lists`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    form: Form,
) -> Result<Json<Value>, MgError> {
    check_list_form(&form, &["address"])?;
    let address = list_address(&form)?;
    let settings = v1::list_settings(&state, &auth.account_id, v1::ListIn::named(address)).await?;
    let list = state
        .store
        .create_list(&auth.account_id, settings)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(
        json!({"list": list_json(&list), "message": "Mailing list has been created"}),
    ))
}

/// `GET /v3/lists/pages`: by address, `limit` a page (default 100), `page=next` with
/// `address` the last one seen.
pub async fn pages(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let limit = super::limit(&params, 100, 1000)? as usize;
    let after = super::page_after(&params, "address")?;
    let mut all = state
        .store
        .lists(&auth.account_id)
        .await
        .map_err(ApiError::from)?;
    all.sort_by(|a, b| a.settings.name.cmp(&b.settings.name));
    let items: Vec<Value> = all
        .iter()
        .filter(|l| after.is_none_or(|a| l.settings.name.as_str() > a))
        .take(limit)
        .map(list_json)
        .collect();
    Ok(Json(json!({
        "items": items,
        "paging": paging(
            &format!("{}/v3/lists/pages", super::base_url(&headers)),
            items.last().and_then(|i| i["address"].as_str()).unwrap_or(after.unwrap_or("")),
            limit,
        ),
    })))
}

/// Mailgun's `paging` over items keyed by `address`.
fn paging(base: &str, last: &str, limit: usize) -> Value {
    // Only forward paging is served: every link but `next` names the first page.
    let first = format!("{base}?page=first&limit={limit}");
    json!({
        "first": first,
        "last": first,
        "next": format!("{base}?page=next&address={}&limit={limit}", encode(last)),
        "previous": first,
    })
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(address): Path<String>,
) -> Result<Json<Value>, MgError> {
    let list = by_address(&state, &auth, &address).await?;
    Ok(Json(json!({ "list": list_json(&list) })))
}

/// `PUT /v3/lists/{address}`: a new address.
pub async fn update(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(address): Path<String>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    check_list_form(&form, &["address"])?;
    let list = by_address(&state, &auth, &address).await?;
    let mut settings = list.settings.clone();
    if form.first("address").is_some() {
        settings.name = list_address(&form)?;
    }
    let list = state
        .store
        .update_list(&auth.account_id, list.id.as_str(), settings)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(
        json!({"list": list_json(&list), "message": "Mailing list has been updated"}),
    ))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(address): Path<String>,
) -> Result<Json<Value>, MgError> {
    let list = by_address(&state, &auth, &address).await?;
    state
        .store
        .delete_list(&auth.account_id, list.id.as_str())
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({
        "address": list.settings.name,
        "message": "Mailing list has been removed",
    })))
}

// ---- members ----

fn member_json(c: &Contact, list: &List) -> Value {
    let vars: Map<String, Value> = c
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    json!({
        "address": c.address,
        "name": c.name.clone().unwrap_or_default(),
        "subscribed": c.subscriptions.iter().any(|s| s.list_id == list.id && s.status == SubscriptionStatus::Subscribed),
        "vars": vars,
    })
}

/// The contact of `address` if it is on the list (in any state).
async fn member(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    list: &List,
    address: &str,
) -> Result<Option<Contact>, MgError> {
    match state.store.contact(&auth.account_id, address).await {
        Ok(c) if c.subscriptions.iter().any(|s| s.list_id == list.id) => Ok(Some(c)),
        Ok(_) | Err(kuvert_store::StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(ApiError::from(e).into()),
    }
}

/// A member's fields: `name`, `vars` (a JSON object of defined properties), `subscribed`.
struct MemberFields {
    name: Option<String>,
    vars: Map<String, Value>,
    subscribed: Option<bool>,
}

fn member_fields(form: &Form, known: &[&str]) -> Result<MemberFields, MgError> {
    if let Some(f) = form
        .fields
        .iter()
        .find(|f| !known.contains(&f.name.as_str()))
    {
        return Err(MgError::bad_request(format!(
            "'{}' is not a parameter of this route",
            f.name
        )));
    }
    let vars = match form.one("vars")? {
        None => Map::new(),
        Some(v) => match serde_json::from_str::<Value>(v) {
            Ok(Value::Object(m)) => m,
            _ => return Err(MgError::bad_request("vars must be a JSON object")),
        },
    };
    Ok(MemberFields {
        name: form.one("name")?.map(str::to_owned),
        vars,
        subscribed: form
            .one("subscribed")?
            .map(|s| super::messages::yes_no("subscribed", s, false))
            .transpose()?,
    })
}

/// Applies a member's fields to its contact (as `PATCH /v1/contacts` does).
async fn apply(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    list: &List,
    contact: &Contact,
    fields: MemberFields,
) -> Result<Contact, MgError> {
    let (properties, _) = v1::properties(state, &auth.account_id, fields.vars).await?;
    let lists = vec![list.id.clone()];
    let (subscribe, unsubscribe) = match fields.subscribed {
        Some(true) => (lists, vec![]),
        Some(false) => (vec![], lists),
        None => (vec![], vec![]),
    };
    // A double opt-in list's subscription waits for its confirmation, as `/v1` makes it.
    let (subscribe, confirm) = v1::by_opt_in(state, &auth.account_id, subscribe, false).await?;
    let name = match fields.name {
        None => None,
        Some(n) => Some(crate::routes::text_field(
            "name",
            Some(n).filter(|n| !n.is_empty()),
            kuvert_core::contact::MAX_VALUE_LEN,
        )?),
    };
    let updated = state
        .store
        .update_contact(
            &auth.account_id,
            contact.id.as_str(),
            ContactPatch {
                name,
                properties,
                subscribe,
                unsubscribe,
                consent: Some(v1::api_consent()),
                ..ContactPatch::default()
            },
        )
        .await
        .map_err(ApiError::from)?;
    if confirm.is_empty() {
        return Ok(updated);
    }
    let address = crate::routes::address("address", &updated.address)?;
    v1::ask_all(state, &auth.account_id, &address, &confirm).await?;
    Ok(state
        .store
        .contact(&auth.account_id, updated.id.as_str())
        .await
        .map_err(ApiError::from)?)
}

/// `POST /v3/lists/{address}/members`: adds a member (a new contact if need be), or with
/// `upsert=yes` updates one already there.
pub async fn member_add(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(list_address): Path<String>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    let list = by_address(&state, &auth, &list_address).await?;
    let upsert = form
        .one("upsert")?
        .map(|u| super::messages::yes_no("upsert", u, false))
        .transpose()?
        .unwrap_or(false);
    let address = form
        .one("address")?
        .ok_or_else(|| MgError::bad_request("'address' parameter is missing"))?;
    let address = crate::routes::address("address", address)?;
    let mut fields = member_fields(&form, &["address", "name", "vars", "subscribed", "upsert"])?;
    let existing = member(&state, &auth, &list, address.as_str()).await?;
    if existing.is_some() && !upsert {
        return Err(MgError::bad_request(format!(
            "Address already exists '{address}'"
        )));
    }
    if existing.is_none() && fields.subscribed == Some(false) {
        // A membership starts with consent given: an address that never subscribed has no
        // place on a list.
        return Err(MgError::unsupported(
            "subscribed=no",
            "a new member is one who subscribed; to keep an address from mail, add it to unsubscribes",
        ));
    }
    if existing.is_none() {
        // A new member subscribes; an upsert of one already there changes only what it gives.
        fields.subscribed = Some(fields.subscribed.unwrap_or(true));
    }
    let contact = match state
        .store
        .contact(&auth.account_id, address.as_str())
        .await
    {
        Ok(c) => c,
        Err(kuvert_store::StoreError::NotFound(_)) => state
            .store
            .create_contact(
                &auth.account_id,
                NewContact {
                    address: address.clone(),
                    name: None,
                    properties: Default::default(),
                    lists: vec![],
                    consent: v1::api_consent(),
                },
            )
            .await
            .map_err(ApiError::from)?,
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let contact = apply(&state, &auth, &list, &contact, fields).await?;
    let list = by_address(&state, &auth, &list_address).await?;
    Ok(Json(json!({
        "member": member_json(&contact, &list),
        "message": "Mailing list member has been created",
    })))
}

/// `GET /v3/lists/{address}/members/pages`: by position, `limit` (default 100), `page=next`
/// with `address` the last one seen; `subscribed=yes|no` filters.
pub async fn member_pages(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path(list_address): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    let list = by_address(&state, &auth, &list_address).await?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let limit = super::limit(&params, 100, 1000)?;
    let subscribed = params
        .first("subscribed")
        .map(|s| super::messages::yes_no("subscribed", s, false))
        .transpose()?;
    // Kuvert pages contacts by id; the page's last address is looked up to its contact.
    let mut after = match super::page_after(&params, "address")? {
        None => None,
        Some(a) => match state.store.contact(&auth.account_id, a).await {
            Ok(c) => Some(c.id.to_string()),
            Err(kuvert_store::StoreError::NotFound(_)) => {
                return Err(MgError::bad_request("address: not a member of this list"));
            }
            Err(e) => return Err(ApiError::from(e).into()),
        },
    };
    // With a `subscribed` filter, pages are read on until one is filled or the list ends
    // (at most ten pages a request), so that a page is empty only at the end.
    let mut items: Vec<Value> = Vec::new();
    let mut last = String::new();
    for _ in 0..10 {
        let page = state
            .store
            .list_contacts(
                &auth.account_id,
                Some(list.id.as_str()),
                None,
                after.as_deref(),
                limit,
            )
            .await
            .map_err(ApiError::from)?;
        for c in &page.items {
            if items.len() == limit as usize {
                break;
            }
            let m = member_json(c, &list);
            last.clone_from(&c.address);
            after = Some(c.id.to_string());
            if subscribed.is_none_or(|s| m["subscribed"] == s) {
                items.push(m);
            }
        }
        if page.next.is_none() || items.len() == limit as usize {
            break;
        }
    }
    let base = format!(
        "{}/v3/lists/{}/members/pages",
        super::base_url(&headers),
        encode(&list.settings.name)
    );
    let paging = paging(&base, &last, limit as usize);
    Ok(Json(json!({ "items": items, "paging": paging })))
}

pub async fn member_get(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((list_address, address)): Path<(String, String)>,
) -> Result<Json<Value>, MgError> {
    let list = by_address(&state, &auth, &list_address).await?;
    let c = member(&state, &auth, &list, &address)
        .await?
        .ok_or_else(member_not_found)?;
    Ok(Json(json!({ "member": member_json(&c, &list) })))
}

/// `PUT /v3/lists/{address}/members/{member}`: its name, vars, subscription.
pub async fn member_update(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((list_address, address)): Path<(String, String)>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    let list = by_address(&state, &auth, &list_address).await?;
    let c = member(&state, &auth, &list, &address)
        .await?
        .ok_or_else(member_not_found)?;
    if form
        .first("address")
        .is_some_and(|a| !a.eq_ignore_ascii_case(&c.address))
    {
        return Err(MgError::unsupported(
            "address",
            "a member's address stays: remove it and add the new one",
        ));
    }
    let fields = member_fields(&form, &["address", "name", "vars", "subscribed"])?;
    let c = apply(&state, &auth, &list, &c, fields).await?;
    Ok(Json(json!({
        "member": member_json(&c, &list),
        "message": "Mailing list member has been updated",
    })))
}

/// `DELETE /v3/lists/{address}/members/{member}`: the member leaves the list (its withdrawal
/// of consent recorded); the contact stays, unsubscribed from it.
pub async fn member_remove(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((list_address, address)): Path<(String, String)>,
) -> Result<Json<Value>, MgError> {
    let list = by_address(&state, &auth, &list_address).await?;
    let c = member(&state, &auth, &list, &address)
        .await?
        .ok_or_else(member_not_found)?;
    state
        .store
        .update_contact(
            &auth.account_id,
            c.id.as_str(),
            ContactPatch {
                unsubscribe: vec![list.id.clone()],
                consent: Some(v1::api_consent()),
                ..ContactPatch::default()
            },
        )
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({
        "member": {"address": c.address},
        "message": "Mailing list member has been deleted",
    })))
}
