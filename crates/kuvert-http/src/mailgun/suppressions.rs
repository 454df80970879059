//! Mailgun's suppression tables (`/v3/{domain}/bounces`, `unsubscribes`, `complaints`) over
//! Kuvert's one suppression list: each table is the entries of one reason. Kuvert's list is
//! the account's, so every domain of the account shows the same entries; an entry keeps its
//! address, reason and time (a bounce's code and error are not kept: it reads back as 550).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use kuvert_core::EmailAddress;
use kuvert_core::event::SuppressionReason;
use kuvert_store::Suppression;
use serde_json::{Map, Value, json};

use super::form::Form;
use super::{MgError, MgFull};
use crate::AppState;

/// Records one add takes, as Mailgun.
pub const MAX_RECORDS: usize = 1000;
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A table of Mailgun's and the reason it is in Kuvert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Bounces,
    Unsubscribes,
    Complaints,
}

impl Table {
    fn parse(kind: &str) -> Result<Self, MgError> {
        match kind {
            "bounces" => Ok(Self::Bounces),
            "unsubscribes" => Ok(Self::Unsubscribes),
            "complaints" => Ok(Self::Complaints),
            "whitelists" => Err(MgError::unsupported(
                "whitelists",
                "Kuvert has no allow list: an address that bounced stays suppressed until it is removed",
            )),
            _ => Err(MgError::new(StatusCode::NOT_FOUND, "Not found")),
        }
    }

    fn reason(self) -> SuppressionReason {
        match self {
            Self::Bounces => SuppressionReason::Bounce,
            Self::Unsubscribes => SuppressionReason::Unsubscribe,
            Self::Complaints => SuppressionReason::Complaint,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bounces => "bounces",
            Self::Unsubscribes => "unsubscribes",
            Self::Complaints => "complaints",
        }
    }

    fn not_found(self) -> MgError {
        MgError::new(
            StatusCode::NOT_FOUND,
            match self {
                Self::Bounces => "Address not found in bounces table",
                Self::Unsubscribes => "Address not found in unsubscribers table",
                Self::Complaints => "No spam complaints found for this address",
            },
        )
    }

    fn item(self, s: &Suppression) -> Value {
        let created_at = super::date(s.created_at);
        let address = s.address.clone().unwrap_or_default();
        match self {
            Self::Bounces => {
                json!({"address": address, "code": "550", "error": s.reason.as_str(), "created_at": created_at})
            }
            Self::Unsubscribes => {
                json!({"address": address, "tags": ["*"], "created_at": created_at})
            }
            Self::Complaints => json!({"address": address, "created_at": created_at}),
        }
    }
}

fn address(v: &str) -> Result<EmailAddress, MgError> {
    EmailAddress::parse(v)
        .map_err(|e| MgError::bad_request(format!("address: {v:?} is not valid: {e}")))
}

/// `GET /v3/{domain}/{kind}`: newest first; `paging.next` carries Kuvert's position in `p`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, kind)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, MgError> {
    let domain = super::account_domain(&state, &auth, &domain).await?;
    let table = Table::parse(&kind)?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    let limit = super::limit(&params, DEFAULT_LIMIT, MAX_LIMIT)?;
    if params.first("term").is_some() {
        return Err(MgError::unsupported(
            "term",
            "the suppression tables are listed whole",
        ));
    }
    // `page=next` with Kuvert's position in `p`; `first` (or none) starts over. Going back is
    // not offered: `previous` and `last` name the first page.
    let after = match params.first("page") {
        Some("next") => params.first("p"),
        _ => None,
    };
    // Kuvert's position: a time and a keyed hash. Anything else was not made here, and would
    // start over silently (a client following it would loop).
    if let Some(p) = after {
        let made_here = p.split_once('.').is_some_and(|(t, h)| {
            !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_digit())
                && h.bytes().all(|b| b.is_ascii_hexdigit())
                && p.len() <= 128
        });
        if !made_here {
            return Err(MgError::bad_request(
                "p: the page position is not one this server gave out",
            ));
        }
    }
    let page = state
        .store
        .list_suppressions(&auth.account_id, Some(table.reason()), after, limit)
        .await
        .map_err(crate::ApiError::from)?;
    let base = format!(
        "{}/v3/{}/{}",
        super::base_url(&headers),
        domain.name,
        table.name()
    );
    let first = format!("{base}?page=first&limit={limit}");
    // After the last page, a position before every entry: the next page reads empty, and
    // the libraries stop there.
    let next = format!(
        "{base}?page=next&p={}&limit={limit}",
        page.next.as_deref().unwrap_or("0.")
    );
    Ok(Json(json!({
        "items": page.items.iter().map(|s| table.item(s)).collect::<Vec<_>>(),
        "paging": {"first": first, "last": first, "next": next, "previous": first},
    })))
}

/// `GET /v3/{domain}/{kind}/{address}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, kind, addr)): Path<(String, String, String)>,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let table = Table::parse(&kind)?;
    let addr = address(&addr)?;
    match state
        .store
        .suppression(&auth.account_id, addr.as_str())
        .await
    {
        Ok(s) if s.reason == table.reason() => Ok(Json(table.item(&s))),
        Ok(_) | Err(kuvert_store::StoreError::NotFound(_)) => Err(table.not_found()),
        Err(e) => Err(crate::ApiError::from(e).into()),
    }
}

/// What an add carries: one record as a form, or a JSON object or array of them.
pub struct Records(pub Vec<Map<String, Value>>);

impl FromRequest<Arc<AppState>> for Records {
    type Rejection = MgError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, MgError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
        if !json {
            let form = Form::from_request(req, state).await?;
            let mut record = Map::new();
            for name in ["address", "code", "error", "tag", "created_at"] {
                if let Some(v) = form.one(name)? {
                    record.insert(name.to_owned(), Value::String(v.to_owned()));
                }
            }
            if let Some(f) = form.fields.iter().find(|f| !record.contains_key(&f.name)) {
                return Err(MgError::bad_request(format!(
                    "'{}' is not a parameter of this route",
                    f.name
                )));
            }
            return Ok(Self(vec![record]));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| MgError::from(crate::ApiError::from(e)))?;
        let records = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m),
                    _ => Err(MgError::bad_request("each record must be a JSON object")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Ok(Value::Object(m)) => vec![m],
            _ => {
                return Err(MgError::bad_request(
                    "the body must be a JSON object or an array of them",
                ));
            }
        };
        if records.len() > MAX_RECORDS {
            return Err(MgError::bad_request(format!(
                "at most {MAX_RECORDS} records a request"
            )));
        }
        Ok(Self(records))
    }
}

/// The address of one record, checked against what Kuvert keeps of it.
fn record_address(table: Table, r: &Map<String, Value>) -> Result<EmailAddress, MgError> {
    for (name, v) in r {
        match (name.as_str(), v) {
            ("address", _) => {}
            // Kuvert keeps no code or message of a bounce: a refusal it would not keep is
            // taken only as Mailgun's default.
            ("code", Value::String(c)) if c == "550" => {}
            ("code", Value::Number(n)) if n.as_u64() == Some(550) => {}
            ("error", Value::String(e)) if e.is_empty() => {}
            ("tag", Value::String(t)) if t == "*" && table == Table::Unsubscribes => {}
            ("tags", Value::Array(t))
                if table == Table::Unsubscribes && t.iter().all(|t| t == "*") => {}
            (name @ ("code" | "error"), _) if table == Table::Bounces => {
                return Err(MgError::unsupported(
                    name,
                    "a bounce is kept without its code or message (they read back as 550)",
                ));
            }
            (name @ ("tag" | "tags"), _) if table == Table::Unsubscribes => {
                return Err(MgError::unsupported(
                    name,
                    "an unsubscribe holds for every tag ('*'); lists have their own unsubscribes",
                ));
            }
            ("created_at", _) => {
                return Err(MgError::unsupported(
                    "created_at",
                    "an entry's time is when it was added",
                ));
            }
            (other, _) => {
                return Err(MgError::bad_request(format!(
                    "'{other}' is not a field of {}",
                    table.name()
                )));
            }
        }
    }
    match r.get("address") {
        Some(Value::String(a)) => address(a),
        _ => Err(MgError::bad_request("'address' parameter is missing")),
    }
}

/// Writes checked records to the account's list, one by one.
async fn write(
    state: &AppState,
    auth: &kuvert_store::KeyAuth,
    table: Table,
    addresses: &[EmailAddress],
) -> Result<(), MgError> {
    for a in addresses {
        state
            .store
            .add_suppression(&auth.account_id, a.as_str(), table.reason())
            .await
            .map_err(crate::ApiError::from)?;
    }
    Ok(())
}

/// `POST /v3/{domain}/{kind}`: one record as a form, or many as JSON.
pub async fn add(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, kind)): Path<(String, String)>,
    Records(records): Records,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let table = Table::parse(&kind)?;
    // Every record is checked before any is written: a bad one adds nothing.
    let addresses = records
        .iter()
        .map(|r| record_address(table, r))
        .collect::<Result<Vec<_>, _>>()?;
    write(&state, &auth, table, &addresses).await?;
    let what = table.name();
    Ok(Json(match addresses.as_slice() {
        [one] => json!({
            "message": format!("Address has been added to the {what} table"),
            "address": one.as_str(),
        }),
        many => json!({
            "message": format!("{} addresses have been added to the {what} table", many.len()),
        }),
    }))
}

/// `DELETE /v3/{domain}/{kind}/{address}`.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, kind, addr)): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let table = Table::parse(&kind)?;
    let params = super::form::urlencoded(uri.query().unwrap_or_default().as_bytes())?;
    if params.first("tag").is_some_and(|t| t != "*") {
        // An unsubscribe holds for every tag: one tag cannot be taken out of it.
        return Err(MgError::unsupported(
            "tag",
            "an unsubscribe holds for every tag ('*'); remove it whole",
        ));
    }
    let addr = address(&addr)?;
    match state
        .store
        .remove_suppression_of(&auth.account_id, addr.as_str(), Some(table.reason()))
        .await
    {
        Ok(()) => {}
        Err(kuvert_store::StoreError::NotFound(_)) => return Err(table.not_found()),
        Err(e) => return Err(crate::ApiError::from(e).into()),
    }
    let message = match table {
        Table::Bounces => "Bounced address has been removed",
        Table::Unsubscribes => "Unsubscribe event has been removed",
        Table::Complaints => "Spam complaint has been removed",
    };
    Ok(Json(json!({"message": message, "address": addr.as_str()})))
}

/// `DELETE /v3/{domain}/{kind}`: the whole table (erased addresses stay blocked).
pub async fn clear(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, kind)): Path<(String, String)>,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let table = Table::parse(&kind)?;
    state
        .store
        .clear_suppressions(&auth.account_id, table.reason())
        .await
        .map_err(crate::ApiError::from)?;
    // Kuvert's list is the account's: the answer says so rather than "for this domain".
    let message = match table {
        Table::Bounces => "Bounced addresses have been removed for every domain of the account",
        Table::Unsubscribes => {
            "Unsubscribe addresses have been removed for every domain of the account"
        }
        Table::Complaints => {
            "Complaint addresses have been removed for every domain of the account"
        }
    };
    Ok(Json(json!({"message": message})))
}

/// Rows one CSV import takes at most (the body is bounded at 1 MiB besides).
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// `POST /v3/{domain}/{kind}/import`: a CSV file (`file`) of records with a header row
/// (`address`, and the table's other columns), each checked as an added record is, all before
/// any is written. Mailgun takes the file and works through it later; here it is done when
/// the answer comes.
pub async fn import(
    State(state): State<Arc<AppState>>,
    MgFull(auth): MgFull,
    Path((domain, kind)): Path<(String, String)>,
    form: Form,
) -> Result<Json<Value>, MgError> {
    super::account_domain(&state, &auth, &domain).await?;
    let table = Table::parse(&kind)?;
    if let Some(f) = form.fields.iter().find(|f| f.name != "file") {
        return Err(MgError::bad_request(format!(
            "'{}' is not a parameter of this route",
            f.name
        )));
    }
    let mut files = form.files("file");
    let (Some((_, _, csv)), None) = (files.next(), files.next()) else {
        return Err(MgError::bad_request(
            "one CSV file is expected as 'file' in a multipart/form-data request",
        ));
    };
    let records = csv_records(csv)?;
    let addresses = records
        .iter()
        .map(|r| record_address(table, r))
        .collect::<Result<Vec<_>, _>>()?;
    write(&state, &auth, table, &addresses).await?;
    Ok(Json(json!({"message": "file uploaded successfully"})))
}

/// The records of a CSV file with a header row; an empty cell is no value.
fn csv_records(csv: &[u8]) -> Result<Vec<Map<String, Value>>, MgError> {
    let mut header: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let mut too_many = false;
    let mut each = |n: u64, fields: &[&str]| {
        if n == 0 {
            header = fields
                .iter()
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            return;
        }
        if records.len() >= MAX_IMPORT_ROWS {
            too_many = true;
            return;
        }
        let record: Map<String, Value> = header
            .iter()
            .zip(fields)
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), Value::String(v.trim().to_owned())))
            .collect();
        if !record.is_empty() {
            records.push(record);
        }
    };
    let mut reader = kuvert_admin::contacts::csv::Records::new();
    reader
        .feed(csv, &mut each)
        .and_then(|()| reader.finish(&mut each))
        .map_err(|e| MgError::bad_request(format!("file: {e}")))?;
    if too_many {
        return Err(MgError::bad_request(format!(
            "file: at most {MAX_IMPORT_ROWS} rows an import"
        )));
    }
    Ok(records)
}
