//! Mailjet's contacts, lists and contact properties onto Kuvert's: `contactslist`, `contact`,
//! `contactdata`, `contactmetadata` and `contactslist/{id}/managecontact`. Ids are Kuvert's
//! (`lst_...`, `con_...`), which Mailjet's libraries carry as they get them; a property's id
//! is its name.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::contact::{ContactStatus, PropertyKind, PropertyValue, SubscriptionStatus};
use kuvert_core::id::ListId;
use kuvert_store::{Contact, ContactPatch, List, NewContact};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Listed, MjError, MjFull, MjQuery, one};
use crate::AppState;
use crate::error::ApiError;
use crate::routes::contacts as v1;

/// A JSON object body with only the properties named (matched as written, as Mailjet does).
fn body(bytes: &[u8], known: &[&str]) -> Result<Map<String, Value>, MjError> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(MjError::bad_request("the body is not a JSON object"));
    };
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(MjError::bad_request(format!(
            "Invalid json input: property \"{k}\" is not supported by this server"
        )));
    }
    Ok(m)
}

fn text<'a>(m: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, MjError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(MjError::bad_request(format!(
            "{name}: a string is expected"
        ))),
    }
}

// ---- contactslist ----

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListOut {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    /// Mailjet's list address: here the list's id.
    pub address: String,
    pub is_deleted: bool,
    pub subscriber_count: u64,
    pub created_at: String,
}

fn list_out(l: List) -> ListOut {
    ListOut {
        address: l.id.to_string(),
        id: l.id.to_string(),
        name: l.settings.name,
        is_deleted: false,
        subscriber_count: l.subscribed,
        created_at: super::time(l.created_at),
    }
}

pub async fn lists(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    q: MjQuery,
) -> Result<Json<Listed<ListOut>>, MjError> {
    q.only(&["name"])?;
    let paging = q.paging()?;
    let all: Vec<ListOut> = state
        .store
        .lists(&auth.account_id)
        .await?
        .into_iter()
        .filter(|l| q.get("name").is_none_or(|n| l.settings.name == n))
        .map(list_out)
        .collect();
    Ok(paging.page(all))
}

pub async fn list_create(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<ListOut>>), MjError> {
    let m = body(&bytes, &["Name", "IsDeleted"])?;
    if m.get("IsDeleted").is_some_and(|d| d != &Value::Bool(false)) {
        return Err(MjError::unsupported(
            "IsDeleted",
            "a list is deleted by DELETE",
        ));
    }
    let name = text(&m, "Name")?.ok_or_else(|| MjError::bad_request("Name is required"))?;
    let settings =
        v1::list_settings(&state, &auth.account_id, v1::ListIn::named(name.to_owned())).await?;
    let list = state.store.create_list(&auth.account_id, settings).await?;
    Ok((StatusCode::CREATED, one(list_out(list))))
}

pub async fn list_get(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<Json<Listed<ListOut>>, MjError> {
    Ok(one(list_out(
        state.store.list(&auth.account_id, &id).await?,
    )))
}

pub async fn list_delete(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<StatusCode, MjError> {
    state.store.delete_list(&auth.account_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- contact ----

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContactOut {
    #[serde(rename = "ID")]
    pub id: String,
    pub email: String,
    pub name: String,
    pub is_excluded_from_campaigns: bool,
    pub is_opt_in_pending: bool,
    pub is_spam_complaining: bool,
    pub created_at: String,
    pub last_update_at: String,
    pub last_activity_at: String,
}

fn contact_out(c: &Contact) -> ContactOut {
    let last = [
        c.engagement.last_sent_at,
        c.engagement.last_opened_at,
        c.engagement.last_clicked_at,
    ]
    .into_iter()
    .flatten()
    .max();
    ContactOut {
        id: c.id.to_string(),
        email: c.address.clone(),
        name: c.name.clone().unwrap_or_default(),
        is_excluded_from_campaigns: !c.status.mailable(),
        is_opt_in_pending: c
            .subscriptions
            .iter()
            .any(|s| s.status == SubscriptionStatus::Pending),
        is_spam_complaining: c.status == ContactStatus::Complained,
        created_at: super::time(c.created_at),
        last_update_at: super::time(c.updated_at),
        last_activity_at: last.map(super::time).unwrap_or_default(),
    }
}

/// The contacts, of one list (`ContactsList`) or all, in the order they were added.
pub async fn contacts(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    q: MjQuery,
) -> Result<Json<Listed<ContactOut>>, MjError> {
    q.only(&["contactslist"])?;
    let paging = q.paging()?;
    if paging.count_only {
        return Err(MjError::unsupported(
            "countOnly",
            "contacts are not counted; page through them",
        ));
    }
    // Kuvert pages contacts by position: walk to the offset, a bounded number of rows.
    let mut items = Vec::new();
    let mut skip = paging.offset as usize;
    let mut after: Option<String> = None;
    loop {
        let page = state
            .store
            .list_contacts(
                &auth.account_id,
                q.get("contactslist"),
                None,
                after.as_deref(),
                500,
            )
            .await?;
        for c in &page.items {
            if skip > 0 {
                skip -= 1;
            } else if items.len() < paging.limit as usize {
                items.push(contact_out(c));
            }
        }
        match page.next {
            Some(n) if items.len() < paging.limit as usize => after = Some(n),
            _ => break,
        }
    }
    let n = items.len();
    Ok(Json(Listed {
        count: n,
        data: items,
        total: n,
    }))
}

pub async fn contact_create(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<ContactOut>>), MjError> {
    let m = body(&bytes, &["Email", "Name", "IsExcludedFromCampaigns"])?;
    if m.get("IsExcludedFromCampaigns")
        .is_some_and(|d| d != &Value::Bool(false))
    {
        return Err(MjError::unsupported(
            "IsExcludedFromCampaigns",
            "a contact leaves campaigns by unsubscribing (contact status unsubscribed, or a suppression)",
        ));
    }
    let email = text(&m, "Email")?.ok_or_else(|| MjError::bad_request("Email is required"))?;
    let contact = create(&state, &auth.account_id, email, text(&m, "Name")?, vec![]).await?;
    Ok((StatusCode::CREATED, one(contact_out(&contact))))
}

/// Adds a contact as `/v1/contacts` does (consent recorded as given through the API).
async fn create(
    state: &AppState,
    account: &kuvert_core::id::AccountId,
    email: &str,
    name: Option<&str>,
    lists: Vec<ListId>,
) -> Result<Contact, MjError> {
    let address = crate::routes::address("Email", email)?;
    let name = crate::routes::text_field(
        "Name",
        name.filter(|n| !n.is_empty()).map(str::to_owned),
        kuvert_core::contact::MAX_VALUE_LEN,
    )?;
    let (now, confirm) = v1::by_opt_in(state, account, lists, false).await?;
    let contact = state
        .store
        .create_contact(
            account,
            NewContact {
                address: address.clone(),
                name,
                properties: Default::default(),
                lists: now,
                consent: v1::api_consent(),
            },
        )
        .await?;
    if confirm.is_empty() {
        return Ok(contact);
    }
    v1::ask_all(state, account, &address, &confirm).await?;
    Ok(state.store.contact(account, contact.id.as_str()).await?)
}

pub async fn contact_get(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<Json<Listed<ContactOut>>, MjError> {
    let c = state.store.contact(&auth.account_id, &id).await?;
    Ok(one(contact_out(&c)))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContactListOut {
    #[serde(rename = "ListID")]
    pub list_id: String,
    pub is_unsub: bool,
    pub is_active: bool,
    pub subscribed_at: String,
}

/// `contact/{id}/getcontactslists`: the lists the contact is on.
pub async fn contact_lists(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<Json<Listed<ContactListOut>>, MjError> {
    let c = state.store.contact(&auth.account_id, &id).await?;
    let all: Vec<ContactListOut> = c
        .subscriptions
        .iter()
        .map(|s| ContactListOut {
            list_id: s.list_id.to_string(),
            is_unsub: s.status == SubscriptionStatus::Unsubscribed,
            is_active: s.status == SubscriptionStatus::Subscribed,
            subscribed_at: super::time(s.updated_at),
        })
        .collect();
    let n = all.len();
    Ok(Json(Listed {
        count: n,
        data: all,
        total: n,
    }))
}

// ---- contactdata ----

#[derive(Serialize)]
pub struct DataItem {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Value")]
    pub value: String,
}

#[derive(Serialize)]
pub struct ContactDataOut {
    #[serde(rename = "ContactID")]
    pub contact_id: String,
    #[serde(rename = "Data")]
    pub data: Vec<DataItem>,
    #[serde(rename = "ID")]
    pub id: String,
}

/// A value as Mailjet writes contact data: a string.
fn value_text(v: &PropertyValue) -> String {
    match v {
        PropertyValue::String(s) => s.clone(),
        PropertyValue::Integer(i) => i.to_string(),
        PropertyValue::Decimal(f) => f.to_string(),
        PropertyValue::Boolean(b) => b.to_string(),
        PropertyValue::DateTime(t) => t.to_rfc3339(),
    }
}

fn data_out(c: &Contact) -> ContactDataOut {
    ContactDataOut {
        contact_id: c.id.to_string(),
        id: c.id.to_string(),
        data: c
            .properties
            .iter()
            .map(|(name, v)| DataItem {
                name: name.clone(),
                value: value_text(v),
            })
            .collect(),
    }
}

pub async fn data_get(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<Json<Listed<ContactDataOut>>, MjError> {
    let c = state.store.contact(&auth.account_id, &id).await?;
    Ok(one(data_out(&c)))
}

/// `{"Data": [{"Name", "Value"}]}` as a map of property values (a `null` or empty value
/// removes one).
fn data_items(v: Option<&Value>) -> Result<Map<String, Value>, MjError> {
    let mut out = Map::new();
    let Some(Value::Array(items)) = v else {
        return Err(MjError::bad_request(
            "Data: an array of {Name, Value} is expected",
        ));
    };
    for item in items {
        let (Some(Value::String(name)), value) = (item.get("Name"), item.get("Value")) else {
            return Err(MjError::bad_request("Data: each item has a Name"));
        };
        let value = match value {
            Some(Value::String(s)) if s.is_empty() => Value::Null,
            Some(v) => v.clone(),
            None => Value::Null,
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

pub async fn data_put(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Listed<ContactDataOut>>, MjError> {
    let m = body(&bytes, &["Data"])?;
    let given = data_items(m.get("Data"))?;
    let c = set_properties(&state, &auth.account_id, &id, given, vec![], vec![]).await?;
    Ok(one(data_out(&c)))
}

/// Sets properties and subscriptions as `PATCH /v1/contacts/{id}` does.
async fn set_properties(
    state: &AppState,
    account: &kuvert_core::id::AccountId,
    id: &str,
    given: Map<String, Value>,
    subscribe: Vec<ListId>,
    unsubscribe: Vec<ListId>,
) -> Result<Contact, MjError> {
    let (properties, _warnings) = v1::properties(state, account, given).await?;
    let (subscribe, confirm) = v1::by_opt_in(state, account, subscribe, false).await?;
    let updated = state
        .store
        .update_contact(
            account,
            id,
            ContactPatch {
                properties,
                subscribe,
                unsubscribe,
                consent: Some(v1::api_consent()),
                ..ContactPatch::default()
            },
        )
        .await?;
    if confirm.is_empty() {
        return Ok(updated);
    }
    let address = crate::routes::address("Email", &updated.address)?;
    v1::ask_all(state, account, &address, &confirm).await?;
    Ok(state.store.contact(account, updated.id.as_str()).await?)
}

// ---- contactmetadata ----

#[derive(Serialize)]
pub struct MetadataOut {
    /// The property's name: Kuvert names properties, Mailjet numbers them.
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Datatype")]
    pub datatype: &'static str,
    #[serde(rename = "NameSpace")]
    pub namespace: &'static str,
}

fn datatype(kind: PropertyKind) -> &'static str {
    match kind {
        PropertyKind::String => "str",
        PropertyKind::Integer => "int",
        PropertyKind::Decimal => "float",
        PropertyKind::Boolean => "bool",
        PropertyKind::DateTime => "datetime",
    }
}

pub async fn metadata(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    q: MjQuery,
) -> Result<Json<Listed<MetadataOut>>, MjError> {
    q.only(&[])?;
    let paging = q.paging()?;
    let mut all: Vec<MetadataOut> = state
        .store
        .contact_properties(&auth.account_id)
        .await?
        .into_iter()
        .map(|(name, kind)| MetadataOut {
            id: name.clone(),
            name,
            datatype: datatype(kind),
            namespace: "static",
        })
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(paging.page(all))
}

pub async fn metadata_create(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<MetadataOut>>), MjError> {
    let m = body(&bytes, &["Name", "Datatype", "NameSpace"])?;
    let name = text(&m, "Name")?.ok_or_else(|| MjError::bad_request("Name is required"))?;
    let kind = match text(&m, "Datatype")? {
        Some("str") => PropertyKind::String,
        Some("int") => PropertyKind::Integer,
        Some("float") => PropertyKind::Decimal,
        Some("bool") => PropertyKind::Boolean,
        Some("datetime") => PropertyKind::DateTime,
        _ => {
            return Err(MjError::bad_request(
                "Datatype: one of str, int, float, bool, datetime",
            ));
        }
    };
    match text(&m, "NameSpace")? {
        None | Some("static") => {}
        Some(_) => {
            return Err(MjError::unsupported(
                "NameSpace",
                "only static properties (Kuvert keeps no historic ones)",
            ));
        }
    }
    let (_, Json(def)) = v1::properties_create(
        State(state),
        crate::extract::FullAccess(auth),
        crate::extract::ApiJson(v1::PropertyDef {
            name: name.to_owned(),
            kind,
        }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        one(MetadataOut {
            id: def.name.clone(),
            name: def.name,
            datatype: datatype(def.kind),
            namespace: "static",
        }),
    ))
}

// ---- managecontact ----

#[derive(Serialize)]
pub struct ManagedOut {
    #[serde(rename = "ContactID")]
    pub contact_id: String,
    #[serde(rename = "Email")]
    pub email: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Properties")]
    pub properties: Map<String, Value>,
}

/// `contactslist/{id}/managecontact`: `addforce` and `addnoforce` add the address (a new
/// contact if need be) to the list with its properties, `addnoforce` leaving one who left
/// the list off it; `unsub` and `remove` take it off the list (both record the withdrawal:
/// Kuvert keeps a membership that ended, for the proof of consent).
pub async fn manage_contact(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(list_id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<ManagedOut>>), MjError> {
    let m = body(&bytes, &["Email", "Name", "Action", "Properties"])?;
    let email = text(&m, "Email")?.ok_or_else(|| MjError::bad_request("Email is required"))?;
    let action = text(&m, "Action")?.ok_or_else(|| MjError::bad_request("Action is required"))?;
    let properties = match m.get("Properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(MjError::bad_request("Properties: an object is expected")),
    };
    let contact = manage(
        &state,
        &auth.account_id,
        &list_id,
        email,
        text(&m, "Name")?,
        action,
        properties.clone(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        one(ManagedOut {
            contact_id: contact.id.to_string(),
            email: contact.address.clone(),
            action: action.to_ascii_lowercase(),
            name: contact.name.clone().unwrap_or_default(),
            properties,
        }),
    ))
}

/// One of Mailjet's list actions on one address, as `PATCH /v1/contacts` would do it.
async fn manage(
    state: &AppState,
    account: &kuvert_core::id::AccountId,
    list_id: &str,
    email: &str,
    name: Option<&str>,
    action: &str,
    properties: Map<String, Value>,
) -> Result<Contact, MjError> {
    let list = state.store.list(account, list_id).await?;
    let action = action.to_ascii_lowercase();
    let existing = match state.store.contact(account, email).await {
        Ok(c) => Some(c),
        Err(kuvert_store::StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let lists = vec![list.id.clone()];
    match (action.as_str(), existing) {
        ("addforce" | "addnoforce", None) => {
            let c = create(state, account, email, name, lists).await?;
            set_properties(state, account, c.id.as_str(), properties, vec![], vec![]).await
        }
        ("addforce" | "addnoforce", Some(c)) => {
            let left = c
                .subscriptions
                .iter()
                .any(|s| s.list_id == list.id && s.status == SubscriptionStatus::Unsubscribed);
            let subscribe = if action == "addnoforce" && left {
                vec![]
            } else {
                lists
            };
            set_properties(state, account, c.id.as_str(), properties, subscribe, vec![]).await
        }
        ("unsub" | "remove", Some(c)) => {
            set_properties(state, account, c.id.as_str(), properties, vec![], lists).await
        }
        ("unsub" | "remove", None) => Err(MjError::not_found()),
        _ => Err(MjError::bad_request(
            "Action: one of addforce, addnoforce, remove, unsub",
        )),
    }
}

/// `contact/{id}/managecontactslists`: several lists' actions for one contact, all checked
/// before the first is carried out.
pub async fn manage_lists(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<Value>>), MjError> {
    let m = body(&bytes, &["ContactsLists"])?;
    let Some(Value::Array(items)) = m.get("ContactsLists") else {
        return Err(MjError::bad_request(
            "ContactsLists: an array of {ListID, Action}",
        ));
    };
    if items.len() > 100 {
        return Err(MjError::bad_request("ContactsLists: at most 100 at once"));
    }
    let contact = state.store.contact(&auth.account_id, &id).await?;
    let mut actions = Vec::with_capacity(items.len());
    for item in items {
        let list = item.get("ListID").and_then(|l| match l {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let action = item.get("Action").and_then(Value::as_str);
        let (Some(list), Some(action)) = (list, action) else {
            return Err(MjError::bad_request(
                "ContactsLists: each item has a ListID and an Action",
            ));
        };
        if !["addforce", "addnoforce", "remove", "unsub"]
            .contains(&action.to_ascii_lowercase().as_str())
        {
            return Err(MjError::bad_request(
                "Action: one of addforce, addnoforce, remove, unsub",
            ));
        }
        state.store.list(&auth.account_id, &list).await?;
        actions.push((list, action.to_owned()));
    }
    for (list, action) in &actions {
        manage(
            &state,
            &auth.account_id,
            list,
            &contact.address,
            None,
            action,
            Map::new(),
        )
        .await?;
    }
    Ok((
        StatusCode::CREATED,
        one(serde_json::json!({"ContactsLists": items})),
    ))
}

/// `DELETE /v4/contacts/{id}`: Mailjet's GDPR deletion, which here is Kuvert's erasure: the
/// contact and every personal datum of its address go, and a keyed hash keeps the address
/// from being mailed or imported again.
pub async fn erase(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
) -> Result<StatusCode, MjError> {
    v1::remove(
        State(state),
        crate::extract::FullAccess(auth),
        Path(id),
        crate::extract::ApiQuery(v1::DeleteQuery { erase: Some(true) }),
    )
    .await?;
    Ok(StatusCode::OK)
}

/// `PUT /v3/REST/contactslist/{id}`: its name.
pub async fn list_update(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Listed<ListOut>>, MjError> {
    let m = body(&bytes, &["Name", "IsDeleted"])?;
    if m.get("IsDeleted").is_some_and(|d| d != &Value::Bool(false)) {
        return Err(MjError::unsupported(
            "IsDeleted",
            "a list is deleted by DELETE",
        ));
    }
    let current = state.store.list_settings(&auth.account_id, &id).await?;
    let name = text(&m, "Name")?
        .unwrap_or(&current.settings.name)
        .to_owned();
    let settings = v1::list_settings(
        &state,
        &auth.account_id,
        v1::ListIn {
            name,
            double_opt_in: current.settings.double_opt_in,
            consent_text: current.settings.consent_text.clone(),
            public_form: current.settings.public_form,
            confirm_from: current.settings.confirm_from.clone(),
            record_source: current.settings.record_source,
        },
    )
    .await?;
    state
        .store
        .update_list(&auth.account_id, &id, settings)
        .await?;
    Ok(one(list_out(
        state.store.list(&auth.account_id, &id).await?,
    )))
}

// ---- managemanycontacts ----

/// Contacts one `managemanycontacts` job takes at most.
pub const MAX_JOB_CONTACTS: usize = 10_000;

/// `contactslist/{id}/managemanycontacts`: an asynchronous job, as Mailjet's, which here is
/// one of Kuvert's imports (`/v1/imports`: the same scan for sensitive values, the same
/// batches, consent recorded the same way). `addforce` is an `update` import (existing
/// contacts take the given name and properties), `addnoforce` an `add` import, `unsub` and
/// `remove` an `unsubscribe` import. The job's id is the import's.
pub async fn manage_many(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path(list_id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Listed<Value>>), MjError> {
    use kuvert_core::contact::ImportMode;
    let m = body(&bytes, &["Action", "Contacts"])?;
    let list = state.store.list(&auth.account_id, &list_id).await?;
    let mode = match text(&m, "Action")?.map(str::to_ascii_lowercase).as_deref() {
        Some("addforce") => ImportMode::Update,
        Some("addnoforce") => ImportMode::Add,
        Some("unsub" | "remove") => ImportMode::Unsubscribe,
        _ => {
            return Err(MjError::bad_request(
                "Action: one of addforce, addnoforce, remove, unsub",
            ));
        }
    };
    let Some(Value::Array(contacts)) = m.get("Contacts") else {
        return Err(MjError::bad_request("Contacts: an array of contacts"));
    };
    if contacts.is_empty() || contacts.len() > MAX_JOB_CONTACTS {
        return Err(MjError::bad_request(format!(
            "Contacts: 1 to {MAX_JOB_CONTACTS} a job"
        )));
    }
    let csv = job_csv(contacts)?;
    let id = state
        .store
        .create_import(&auth.account_id, Some(&list.id), mode, None)
        .await?;
    let mut upload = kuvert_admin::contacts::import::Upload::new(
        &state.store,
        auth.account_id.clone(),
        id,
        state.max_import_bytes,
    );
    if let Err(e) = upload.push(&csv).await {
        upload.abandon(&e.to_string()).await;
        return Err(ApiError::from(e).into());
    }
    let id = upload.finish().await.map_err(ApiError::from)?;
    state.imports.notify_one();
    Ok((
        StatusCode::CREATED,
        one(serde_json::json!({ "JobID": id.to_string() })),
    ))
}

/// The job's contacts as the CSV an import reads: `email`, `name`, then every property any
/// contact gives (values as text, read by each property's type).
fn job_csv(contacts: &[Value]) -> Result<Vec<u8>, MjError> {
    let mut columns: Vec<String> = Vec::new();
    for (i, c) in contacts.iter().enumerate() {
        let Value::Object(c) = c else {
            return Err(MjError::bad_request(format!("Contacts[{i}]: an object")));
        };
        if let Some(k) = c.keys().find(|k| {
            !["Email", "Name", "IsExcludedFromCampaigns", "Properties"].contains(&k.as_str())
        }) {
            return Err(MjError::unsupported(
                &format!("Contacts[{i}].{k}"),
                "not a property of a contact",
            ));
        }
        if c.get("IsExcludedFromCampaigns")
            .is_some_and(|d| d != &Value::Bool(false))
        {
            return Err(MjError::unsupported(
                "IsExcludedFromCampaigns",
                "a contact leaves campaigns by unsubscribing (contact status unsubscribed, or a suppression)",
            ));
        }
        match c.get("Properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(p)) => {
                for k in p.keys() {
                    // The import reads headers without regard to case: names that differ
                    // only in case would be one column twice.
                    if k.trim().is_empty()
                        || columns.iter().any(|c| c != k && c.eq_ignore_ascii_case(k))
                    {
                        return Err(MjError::bad_request(format!(
                            "Contacts[{i}].Properties: {k:?} is empty or differs from another name only in case"
                        )));
                    }
                    if !columns.contains(k) {
                        if columns.len() >= kuvert_core::contact::MAX_PROPERTIES {
                            return Err(MjError::bad_request("Properties: too many names"));
                        }
                        columns.push(k.clone());
                    }
                }
            }
            Some(_) => {
                return Err(MjError::bad_request(format!(
                    "Contacts[{i}].Properties: an object"
                )));
            }
        }
    }
    let cell = |v: Option<&Value>| -> String {
        match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    };
    let mut out = Vec::new();
    let header: Vec<&str> = ["email", "name"]
        .into_iter()
        .chain(columns.iter().map(String::as_str))
        .collect();
    kuvert_admin::contacts::csv::write_record_exact(&mut out, &header);
    for c in contacts {
        let email = c.get("Email").and_then(Value::as_str).unwrap_or_default();
        if email.is_empty() {
            return Err(MjError::bad_request("Contacts: each has an Email"));
        }
        let mut row = vec![email.to_owned(), cell(c.get("Name"))];
        for k in &columns {
            row.push(cell(c.get("Properties").and_then(|p| p.get(k))));
        }
        let row: Vec<&str> = row.iter().map(String::as_str).collect();
        kuvert_admin::contacts::csv::write_record_exact(&mut out, &row);
    }
    Ok(out)
}

/// `contactslist/{id}/managemanycontacts/{job}`: where the job is.
pub async fn manage_many_job(
    State(state): State<Arc<AppState>>,
    MjFull(auth): MjFull,
    Path((list_id, job)): Path<(String, String)>,
) -> Result<Json<Listed<Value>>, MjError> {
    use kuvert_core::contact::{ImportMode, ImportState};
    let import = state.store.import(&auth.account_id, &job).await?;
    if import.list_id.as_ref().map(ToString::to_string) != Some(list_id.clone()) {
        return Err(MjError::not_found());
    }
    let status = match import.state {
        ImportState::Done => "Completed",
        ImportState::Failed | ImportState::Cancelled => "Error",
        _ => "In Progress",
    };
    let error = match import.state {
        ImportState::Review => format!(
            "the job waits for its review (sensitive-looking values or unknown properties): POST /v1/imports/{}/confirm",
            import.id
        ),
        _ => import.error.clone().unwrap_or_default(),
    };
    let action = match import.mode {
        ImportMode::Update => "addforce",
        ImportMode::Add => "addnoforce",
        ImportMode::Unsubscribe => "unsub",
    };
    Ok(one(serde_json::json!({
        "ContactsLists": [{"ListID": list_id, "Action": action}],
        "Count": import.processed,
        "Error": error,
        "ErrorFile": "",
        "JobStart": super::time(import.created_at),
        "JobEnd": if import.state.finished() { super::time(import.updated_at) } else { String::new() },
        "Status": status,
    })))
}
