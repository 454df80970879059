//! Contacts, their properties and lists; the export; erasure; address validation.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::EmailAddress;
use kuvert_core::contact::{
    ConsentAction, ConsentMethod, ContactStatus, PropertyKind, PropertyValue, SubscriptionStatus,
    property_name_ok,
};
use kuvert_core::id::{AccountId, ListId};
use kuvert_core::sensitive::SensitiveKind;
use kuvert_core::validate::Validation;
use kuvert_store::{ConsentInput, Contact, ContactPatch, List, NewContact};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{address, text_field};
use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ApiJson, ApiQuery, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct SubscriptionOut {
    pub list_id: String,
    pub status: SubscriptionStatus,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConsentOut {
    pub list_id: String,
    pub action: ConsentAction,
    pub method: ConsentMethod,
    /// The wording agreed to (or its version).
    pub consent_text: Option<String>,
    /// Where consent came from (an IP address), when the account records it.
    pub source: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EngagementOut {
    pub last_sent_at: Option<String>,
    pub last_opened_at: Option<String>,
    pub last_clicked_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactOut {
    pub id: String,
    pub address: String,
    pub name: Option<String>,
    pub status: ContactStatus,
    /// Values by property name, typed as the property is defined.
    #[schema(value_type = Object)]
    pub properties: serde_json::Value,
    pub engagement: EngagementOut,
    pub subscriptions: Vec<SubscriptionOut>,
    pub consent: Vec<ConsentOut>,
    pub created_at: String,
    pub updated_at: String,
    /// Values that look like data no one should upload (card numbers, national ids,
    /// health data): kept, but the account should not hold them. Samples are masked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<SensitiveWarning>,
}

#[derive(Serialize, ToSchema)]
pub struct SensitiveWarning {
    pub property: String,
    pub kind: SensitiveKind,
    /// The value masked.
    pub sample: String,
}

fn time(t: kuvert_core::Timestamp) -> String {
    t.to_rfc3339()
}

impl From<Contact> for ContactOut {
    fn from(c: Contact) -> Self {
        Self {
            properties: serde_json::to_value(&c.properties).unwrap_or_default(),
            id: c.id.to_string(),
            address: c.address,
            name: c.name,
            status: c.status,
            engagement: EngagementOut {
                last_sent_at: c.engagement.last_sent_at.map(time),
                last_opened_at: c.engagement.last_opened_at.map(time),
                last_clicked_at: c.engagement.last_clicked_at.map(time),
            },
            subscriptions: c
                .subscriptions
                .into_iter()
                .map(|s| SubscriptionOut {
                    list_id: s.list_id.to_string(),
                    status: s.status,
                    updated_at: time(s.updated_at),
                })
                .collect(),
            consent: c
                .consent
                .into_iter()
                .map(|r| ConsentOut {
                    list_id: r.list_id.to_string(),
                    action: r.action,
                    method: r.method,
                    consent_text: r.consent_text,
                    source: r.source,
                    created_at: time(r.created_at),
                })
                .collect(),
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
            warnings: Vec::new(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ContactList {
    pub items: Vec<ContactOut>,
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Only contacts with a membership of this list.
    #[param(min_length = 1)]
    pub list: Option<String>,
    #[param(min_length = 1)]
    pub status: Option<String>,
    /// The contact with exactly this address (addresses are sealed: there is no partial
    /// search).
    #[param(min_length = 1)]
    pub address: Option<String>,
    #[param(minimum = 1, maximum = 300)]
    pub limit: Option<u32>,
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// The account's contacts in creation order, or the one with an address.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts", params(ContactQuery),
    responses((status = 200, body = ContactList), (status = 404, body = ErrorBody, description = "no such list")),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> Result<Json<ContactList>, ApiError> {
    let limit = super::limit(kuvert_core::page::LISTS, q.limit)?;
    if let Some(address) = &q.address {
        let items = match state.store.contact(&auth.account_id, address).await {
            Ok(c) => vec![c.into()],
            Err(kuvert_store::StoreError::NotFound(_)) => vec![],
            Err(e) => return Err(e.into()),
        };
        return Ok(Json(ContactList { items, next: None }));
    }
    let status = q
        .status
        .as_deref()
        .map(|s| s.parse::<ContactStatus>())
        .transpose()
        .map_err(|e| ApiError::invalid("status", e))?;
    let page = state
        .store
        .list_contacts(
            &auth.account_id,
            q.list.as_deref(),
            status,
            q.cursor.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(ContactList {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    #[schema(pattern = "^[a-z0-9_+-]{1,64}@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$")]
    pub address: String,
    #[schema(max_length = 1000)]
    pub name: Option<String>,
    /// Values of defined properties.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// Lists to subscribe the contact to (ids), with consent recorded. On a double opt-in
    /// list the subscription is `pending` until the contact follows the link of a
    /// confirmation mail, unless `preconfirmed`.
    #[serde(default)]
    pub lists: Vec<String>,
    /// The contact has confirmed already (elsewhere): no confirmation mail.
    #[serde(default)]
    pub preconfirmed: bool,
    /// The wording the contact agreed to (or its version); the list's own when left out.
    #[schema(max_length = 1000)]
    pub consent_text: Option<String>,
    /// Where consent came from (an IP address), if the account records it.
    #[schema(max_length = 100)]
    pub consent_source: Option<String>,
}

/// Reads property values by their definitions; a warning for each that looks sensitive.
pub(crate) async fn properties(
    state: &AppState,
    account: &AccountId,
    given: serde_json::Map<String, serde_json::Value>,
) -> Result<(Vec<(String, Option<PropertyValue>)>, Vec<SensitiveWarning>), ApiError> {
    let kinds = state.store.contact_properties(account).await?;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (name, value) in given {
        let field = format!("properties.{name}");
        let kind = kinds.get(&name).ok_or_else(|| {
            ApiError::invalid(
                &field,
                format!("no property {name:?} is defined (POST /v1/contact-properties)"),
            )
        })?;
        let v = PropertyValue::from_json(*kind, &value)
            .map_err(|e| ApiError::invalid(&field, e.to_string()))?;
        if let Some(text) = v.as_ref().and_then(PropertyValue::as_text)
            && let Some((kind, sample)) = kuvert_core::sensitive::check_value(text)
        {
            warnings.push(SensitiveWarning {
                property: name.clone(),
                kind,
                sample,
            });
        }
        out.push((name, v));
    }
    Ok((out, warnings))
}

fn list_ids(field: &str, ids: Vec<String>) -> Result<Vec<ListId>, ApiError> {
    if ids.len() > 100 {
        return Err(ApiError::invalid(field, "at most 100 lists at once"));
    }
    Ok(ids.into_iter().map(ListId::from_string).collect())
}

/// Splits lists to subscribe to into those subscribed at once and the double opt-in ones,
/// whose subscriptions wait for a confirmation.
pub(crate) async fn by_opt_in(
    state: &AppState,
    account: &AccountId,
    ids: Vec<ListId>,
    preconfirmed: bool,
) -> Result<(Vec<ListId>, Vec<List>), ApiError> {
    if preconfirmed {
        return Ok((ids, Vec::new()));
    }
    let mut now = Vec::new();
    let mut confirm = Vec::new();
    for id in ids {
        let list = state.store.list_settings(account, id.as_str()).await?;
        if list.settings.double_opt_in {
            confirm.push(list);
        } else {
            now.push(id);
        }
    }
    Ok((now, confirm))
}

/// Asks for the confirmation of each double opt-in subscription.
pub(crate) async fn ask_all(
    state: &AppState,
    account: &AccountId,
    address: &EmailAddress,
    lists: &[List],
) -> Result<(), ApiError> {
    for list in lists {
        let asked = state.optin.ask(account, list, address, None, false).await?;
        if let kuvert_store::OptInRequest::Refused(reason) = asked {
            return Err(
                kuvert_store::StoreError::Refused(kuvert_store::refusal_reason(reason)).into(),
            );
        }
    }
    Ok(())
}

/// Adds a contact, subscribed to the lists named with consent recorded. An erased or
/// suppressed address is refused (`address_refused`).
#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = ContactIn,
    responses((status = 201, body = ContactOut), (status = 404, body = ErrorBody, description = "no such list"), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<ContactIn>,
) -> Result<(StatusCode, Json<ContactOut>), ApiError> {
    let address = address("address", &req.address)?;
    let name = text_field("name", req.name, kuvert_core::contact::MAX_VALUE_LEN)?;
    let consent_text = text_field("consent_text", req.consent_text, 1000)?;
    let source = text_field("consent_source", req.consent_source, 100)?;
    let (props, warnings) = properties(&state, &auth.account_id, req.properties).await?;
    let (lists, confirm) = by_opt_in(
        &state,
        &auth.account_id,
        list_ids("lists", req.lists)?,
        req.preconfirmed,
    )
    .await?;
    let contact = state
        .store
        .create_contact(
            &auth.account_id,
            NewContact {
                address: address.clone(),
                name,
                properties: props
                    .into_iter()
                    .filter_map(|(n, v)| v.map(|v| (n, v)))
                    .collect(),
                lists,
                consent: ConsentInput {
                    method: ConsentMethod::Api,
                    text: consent_text,
                    source,
                },
            },
        )
        .await?;
    let contact = if confirm.is_empty() {
        contact
    } else {
        ask_all(&state, &auth.account_id, &address, &confirm).await?;
        state
            .store
            .contact(&auth.account_id, contact.id.as_str())
            .await?
    };
    let mut out = ContactOut::from(contact);
    out.warnings = warnings;
    Ok((StatusCode::CREATED, Json(out)))
}

/// A contact by id or by address, with its subscriptions and consent records.
#[utoipa::path(get, path = "/v1/contacts/{contact}", tag = "contacts",
    params(("contact" = String, Path, description = "id or address")),
    responses((status = 200, body = ContactOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(contact): Path<String>,
) -> Result<Json<ContactOut>, ApiError> {
    Ok(Json(
        state
            .store
            .contact(&auth.account_id, &contact)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchIn {
    /// `""` clears it.
    #[schema(max_length = 1000)]
    pub name: Option<String>,
    /// Values to set; `null` removes one.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// `active` or `unsubscribed` (from all of the account's mail).
    pub status: Option<ContactStatus>,
    /// Lists to subscribe to (consent recorded); a double opt-in list's subscription waits
    /// for its confirmation, unless `preconfirmed`.
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub preconfirmed: bool,
    /// Lists to leave (withdrawal recorded).
    #[serde(default)]
    pub unsubscribe: Vec<String>,
    #[schema(max_length = 1000)]
    pub consent_text: Option<String>,
    #[schema(max_length = 100)]
    pub consent_source: Option<String>,
}

/// Changes a contact; what is left out stays.
#[utoipa::path(patch, path = "/v1/contacts/{contact}", tag = "contacts",
    params(("contact" = String, Path, description = "id or address")),
    request_body = ContactPatchIn,
    responses((status = 200, body = ContactOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(contact): Path<String>,
    ApiJson(req): ApiJson<ContactPatchIn>,
) -> Result<Json<ContactOut>, ApiError> {
    if let Some(s) = req.status
        && !matches!(s, ContactStatus::Active | ContactStatus::Unsubscribed)
    {
        return Err(ApiError::invalid(
            "status",
            "status is set to active or unsubscribed; bounced and complained come from reports, erased from an erasure",
        ));
    }
    let name = match req.name {
        None => None,
        Some(n) => Some(text_field(
            "name",
            Some(n),
            kuvert_core::contact::MAX_VALUE_LEN,
        )?),
    };
    let (props, warnings) = properties(&state, &auth.account_id, req.properties).await?;
    let consent = ConsentInput {
        method: ConsentMethod::Api,
        text: text_field("consent_text", req.consent_text, 1000)?,
        source: text_field("consent_source", req.consent_source, 100)?,
    };
    let (subscribe, confirm) = by_opt_in(
        &state,
        &auth.account_id,
        list_ids("subscribe", req.subscribe)?,
        req.preconfirmed,
    )
    .await?;
    if !confirm.is_empty() {
        let current = state.store.contact(&auth.account_id, &contact).await?;
        if !req.status.unwrap_or(current.status).mailable() {
            return Err(kuvert_store::StoreError::Refused(
                "the contact is not active: it cannot be subscribed",
            )
            .into());
        }
    }
    let updated = state
        .store
        .update_contact(
            &auth.account_id,
            &contact,
            ContactPatch {
                name,
                properties: props,
                status: req.status,
                subscribe,
                unsubscribe: list_ids("unsubscribe", req.unsubscribe)?,
                consent: Some(consent),
            },
        )
        .await?;
    let updated = if confirm.is_empty() {
        updated
    } else {
        let address = address("address", &updated.address)?;
        ask_all(&state, &auth.account_id, &address, &confirm).await?;
        state
            .store
            .contact(&auth.account_id, updated.id.as_str())
            .await?
    };
    let mut out = ContactOut::from(updated);
    out.warnings = warnings;
    Ok(Json(out))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Erase: every personal datum of the address in the account goes (contact, its
    /// recipients and events, message copies naming it), and only a keyed hash stays on
    /// the suppression list, so it is not mailed or imported again.
    pub erase: Option<bool>,
}

/// Deletes a contact, or erases its address from the account (`erase=true`; an address
/// that is no contact is erased too).
#[utoipa::path(delete, path = "/v1/contacts/{contact}", tag = "contacts",
    params(("contact" = String, Path, description = "id or address"), DeleteQuery),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(contact): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    if q.erase != Some(true) {
        state
            .store
            .delete_contact(&auth.account_id, &contact)
            .await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let address = if kuvert_core::id::ContactId::looks_like(&contact) {
        state
            .store
            .contact(&auth.account_id, &contact)
            .await?
            .address
    } else {
        address("contact", &contact)?.as_str().to_owned()
    };
    let by = format!("API key {}", auth.key_id);
    kuvert_admin::contacts::erase(&state.store, &auth.account_id, &address, &by).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteIn {
    /// Every contact of this list (leave out `addresses`).
    pub list: Option<String>,
    /// These addresses (at most 10,000; leave out `list`).
    pub addresses: Option<Vec<String>>,
    /// Erase rather than delete (see `DELETE /v1/contacts/{contact}`).
    #[serde(default)]
    pub erase: bool,
}

#[derive(Serialize, ToSchema)]
pub struct BulkDeleteOut {
    pub deleted: u64,
}

/// Deletes or erases contacts in bulk: a list's, or those of a set of addresses.
#[utoipa::path(post, path = "/v1/contacts/delete", tag = "contacts", request_body = BulkDeleteIn,
    responses((status = 200, body = BulkDeleteOut), (status = 404, body = ErrorBody, description = "no such list")),
    security(("api_key" = []), ("basic" = [])))]
pub async fn bulk_delete(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<BulkDeleteIn>,
) -> Result<Json<BulkDeleteOut>, ApiError> {
    let by = format!("API key {}", auth.key_id);
    let account = &auth.account_id;
    let deleted = match (req.list, req.addresses) {
        (Some(list), None) => {
            state.store.list(account, &list).await?;
            kuvert_admin::contacts::delete_all(&state.store, account, Some(&list), req.erase, &by)
                .await?
        }
        (None, Some(addresses)) => {
            if addresses.len() > 10_000 {
                return Err(ApiError::invalid(
                    "addresses",
                    "at most 10,000 addresses at once",
                ));
            }
            let parsed = addresses
                .iter()
                .enumerate()
                .map(|(i, a)| address(&format!("addresses[{i}]"), a))
                .collect::<Result<Vec<_>, _>>()?;
            let mut n = 0;
            for a in &parsed {
                if req.erase {
                    kuvert_admin::contacts::erase(&state.store, account, a.as_str(), &by).await?;
                    n += 1;
                } else {
                    match state.store.delete_contact(account, a.as_str()).await {
                        Ok(()) => n += 1,
                        Err(kuvert_store::StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            n
        }
        _ => {
            return Err(ApiError::invalid(
                "list",
                "name either a list or addresses, not both",
            ));
        }
    };
    Ok(Json(BulkDeleteOut { deleted }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this list's contacts.
    #[param(min_length = 1)]
    pub list: Option<String>,
    /// `csv` (the default) or `json`.
    #[param(pattern = "^(csv|json)$")]
    pub format: Option<String>,
}

/// Every contact (of a list, or of the account) with properties, subscriptions and consent
/// records, streamed: CSV with a column per property, or a JSON array.
#[utoipa::path(get, path = "/v1/contacts/export", tag = "contacts", params(ExportQuery),
    responses((status = 200, description = "the contacts: CSV, or with format=json a JSON array",
            content((String = "text/csv"), (Vec<ContactOut> = "application/json"))),
        (status = 404, body = ErrorBody, description = "no such list")),
    security(("api_key" = []), ("basic" = [])))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<axum::response::Response, ApiError> {
    use kuvert_admin::contacts::Format;
    let format = match q.format.as_deref() {
        None | Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some(_) => return Err(ApiError::invalid("format", "format is csv or json")),
    };
    if let Some(list) = &q.list {
        state.store.list(&auth.account_id, list).await?;
    }
    let (store, account, list) = (state.store.clone(), auth.account_id.clone(), q.list);
    let (content_type, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "contacts.csv"),
        Format::Json => ("application/json", "contacts.json"),
    };
    Ok(super::streamed(
        content_type,
        name,
        move |mut sink| async move {
            let done = kuvert_admin::contacts::export(
                &store,
                &account,
                list.as_deref(),
                format,
                &mut sink,
            )
            .await;
            (sink, done)
        },
    ))
}

// ---- properties ----

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyDef {
    /// 1–64 of a–z, 0–9 and `_`, starting with a letter.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$")]
    pub name: String,
    pub kind: PropertyKind,
}

/// The properties the account defines for its contacts.
#[utoipa::path(get, path = "/v1/contact-properties", tag = "contacts",
    responses((status = 200, body = Vec<PropertyDef>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn properties_list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<PropertyDef>>, ApiError> {
    let mut defs: Vec<PropertyDef> = state
        .store
        .contact_properties(&auth.account_id)
        .await?
        .into_iter()
        .map(|(name, kind)| PropertyDef { name, kind })
        .collect();
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(defs))
}

/// Defines a property (at most 100 an account).
#[utoipa::path(post, path = "/v1/contact-properties", tag = "contacts", request_body = PropertyDef,
    responses((status = 201, body = PropertyDef), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn properties_create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<PropertyDef>,
) -> Result<(StatusCode, Json<PropertyDef>), ApiError> {
    if !property_name_ok(&req.name) {
        return Err(ApiError::invalid(
            "name",
            "a property's name is 1-64 of a-z, 0-9 and _, starting with a letter, and not a contact's own field",
        ));
    }
    state
        .store
        .define_property(&auth.account_id, &req.name, req.kind)
        .await?;
    Ok((StatusCode::CREATED, Json(req)))
}

/// Removes a property's definition.
#[utoipa::path(delete, path = "/v1/contact-properties/{name}", tag = "contacts",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn properties_delete(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_property(&auth.account_id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- lists ----

#[derive(Serialize, ToSchema)]
pub struct ListOut {
    pub id: String,
    pub name: String,
    pub double_opt_in: bool,
    pub consent_text: Option<String>,
    pub public_form: bool,
    pub confirm_from: Option<String>,
    pub record_source: bool,
    /// Where the list's subscribe form posts (it takes posts when `public_form` is on).
    pub form_url: String,
    /// Contacts subscribed now.
    pub subscribed: u64,
    pub created_at: String,
}

fn list_out(state: &AppState, l: List) -> ListOut {
    ListOut {
        form_url: state.optin.form_url(&l.id),
        id: l.id.to_string(),
        name: l.settings.name,
        double_opt_in: l.settings.double_opt_in,
        consent_text: l.settings.consent_text,
        public_form: l.settings.public_form,
        confirm_from: l.settings.confirm_from,
        record_source: l.settings.record_source,
        subscribed: l.subscribed,
        created_at: time(l.created_at),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIn {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// New subscribers confirm by the link of a mail before they are subscribed (the API
    /// can skip it for a contact with `preconfirmed`).
    #[serde(default)]
    pub double_opt_in: bool,
    /// The wording subscribers agree to (or its version), recorded with each consent.
    #[schema(max_length = 1000)]
    pub consent_text: Option<String>,
    /// The public subscribe form (`POST /f/{list}`) takes subscribers; needs double opt-in.
    #[serde(default)]
    pub public_form: bool,
    /// The sender of the confirmation mail, on a domain of the account; needed with double
    /// opt-in.
    #[schema(max_length = 320)]
    pub confirm_from: Option<String>,
    /// A consent given through the form records the address it came from.
    #[serde(default)]
    pub record_source: bool,
}

/// Reads a list's settings, refusing what cannot work: a form without double opt-in (anyone
/// could put anyone on the list), double opt-in without a sender on the account's domain.
/// Consent given or withdrawn through an API call, with no wording or source: what the
/// compatible APIs record.
pub(crate) fn api_consent() -> ConsentInput {
    ConsentInput {
        method: ConsentMethod::Api,
        text: None,
        source: None,
    }
}

impl ListIn {
    /// A list of this name and nothing else: what the compatible APIs make.
    pub(crate) fn named(name: String) -> Self {
        Self {
            name,
            double_opt_in: false,
            consent_text: None,
            public_form: false,
            confirm_from: None,
            record_source: false,
        }
    }
}

pub(crate) async fn list_settings(
    state: &AppState,
    account: &AccountId,
    req: ListIn,
) -> Result<kuvert_store::ListSettings, ApiError> {
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name", "a list's name is 1 to 200 bytes"));
    }
    // It goes into the subject of the confirmation mail.
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "a list's name holds no control characters",
        ));
    }
    if req.public_form && !req.double_opt_in {
        return Err(ApiError::invalid(
            "public_form",
            "a public form needs double_opt_in: without a confirmation anyone could subscribe anyone",
        ));
    }
    let confirm_from = text_field("confirm_from", req.confirm_from, 320)?;
    if let Some(from) = &confirm_from {
        let mailbox = kuvert_core::Mailbox::parse(from).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidAddress,
                format!("{from:?}: {e}"),
            )
            .field("confirm_from")
        })?;
        let domain = mailbox.address.domain().to_owned();
        let owned = match state.store.domain(&domain).await {
            Ok(d) => d.account_id == *account,
            Err(kuvert_store::StoreError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if !owned {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::UnknownDomain,
                format!("{domain} is not a domain of this account"),
            )
            .field("confirm_from"));
        }
    } else if req.double_opt_in {
        return Err(ApiError::invalid(
            "confirm_from",
            "a double opt-in list needs confirm_from, the sender of its confirmation mail",
        ));
    }
    Ok(kuvert_store::ListSettings {
        name,
        double_opt_in: req.double_opt_in,
        consent_text: text_field("consent_text", req.consent_text, 1000)?,
        public_form: req.public_form,
        confirm_from,
        record_source: req.record_source,
    })
}

/// The account's lists.
#[utoipa::path(get, path = "/v1/lists", tag = "contacts",
    responses((status = 200, body = Vec<ListOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn lists(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<ListOut>>, ApiError> {
    Ok(Json(
        state
            .store
            .lists(&auth.account_id)
            .await?
            .into_iter()
            .map(|l| list_out(&state, l))
            .collect(),
    ))
}

/// Creates a list.
#[utoipa::path(post, path = "/v1/lists", tag = "contacts", request_body = ListIn,
    responses((status = 201, body = ListOut), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list_create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<ListIn>,
) -> Result<(StatusCode, Json<ListOut>), ApiError> {
    let settings = list_settings(&state, &auth.account_id, req).await?;
    let list = state.store.create_list(&auth.account_id, settings).await?;
    Ok((StatusCode::CREATED, Json(list_out(&state, list))))
}

/// A list.
#[utoipa::path(get, path = "/v1/lists/{id}", tag = "contacts", params(("id" = String, Path)),
    responses((status = 200, body = ListOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list_get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<Json<ListOut>, ApiError> {
    let list = state.store.list(&auth.account_id, &id).await?;
    Ok(Json(list_out(&state, list)))
}

/// Changes a list's settings (all of them, as in `POST /v1/lists`).
#[utoipa::path(put, path = "/v1/lists/{id}", tag = "contacts", params(("id" = String, Path)), request_body = ListIn,
    responses((status = 200, body = ListOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list_update(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ListIn>,
) -> Result<Json<ListOut>, ApiError> {
    let settings = list_settings(&state, &auth.account_id, req).await?;
    let list = state
        .store
        .update_list(&auth.account_id, &id, settings)
        .await?;
    Ok(Json(list_out(&state, list)))
}

/// Deletes a list and its memberships (consent records stay with their contacts).
#[utoipa::path(delete, path = "/v1/lists/{id}", tag = "contacts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list_delete(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_list(&auth.account_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- validation ----

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ValidateQuery {
    #[param(min_length = 1, max_length = 320)]
    pub address: String,
}

/// Validates an address: syntax (RFC 5321, UTF-8 as RFC 6531 allows), whether its domain
/// takes mail (MX, else A/AAAA; a null MX takes none), role and disposable addresses, and a
/// suggestion for a likely typo of a common provider.
#[utoipa::path(get, path = "/v1/addresses/validate", tag = "contacts", params(ValidateQuery),
    responses((status = 200, body = Validation)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn validate(
    State(state): State<Arc<AppState>>,
    FullAccess(_auth): FullAccess,
    ApiQuery(q): ApiQuery<ValidateQuery>,
) -> Result<Json<Validation>, ApiError> {
    if q.address.len() > 320 {
        return Err(ApiError::invalid(
            "address",
            "an address is at most 320 bytes",
        ));
    }
    Ok(Json(
        kuvert_admin::contacts::validate(&state.dns, &q.address, &state.disposable_domains).await,
    ))
}
