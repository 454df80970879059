//! Contacts, their properties, lists, subscriptions and consent records. A contact's
//! address, name and properties are sealed; the address is found by a keyed hash under the
//! account's own key (`AccountKey::lookup`). Property values that segments filter on are
//! copied into `contact_values`: numbers in clear, text as a keyed hash.

use std::collections::HashMap;
use std::sync::Arc;

use kuvert_core::Timestamp;
use kuvert_core::contact::{
    ConsentAction, ConsentMethod, ContactStatus, MAX_PROPERTIES, Properties, PropertyKind,
    PropertyValue, SubscriptionStatus,
};
use kuvert_core::event::SuppressionReason;
use kuvert_core::id::{AccountId, ContactId, ListId};
use sqlx::{Any, FromRow, Transaction};

use crate::accounts::parse_column;
use crate::seal::AccountKey;
use crate::sql::{insert_rows, placeholders};
use crate::{Result, Store, StoreError};

/// A list of an account.
#[derive(Clone, Debug, PartialEq)]
pub struct List {
    pub id: ListId,
    pub settings: ListSettings,
    pub subscribed: u64,
    pub created_at: Timestamp,
}

/// What an account sets on a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListSettings {
    pub name: String,
    /// Subscribers confirm by the link of a confirmation mail; until then they are
    /// `pending`.
    pub double_opt_in: bool,
    /// The wording (or version) of the consent subscribers give, recorded with each.
    pub consent_text: Option<String>,
    /// The public subscribe form takes subscribers (always with double opt-in).
    pub public_form: bool,
    /// The sender of the confirmation mail, on one of the account's domains.
    pub confirm_from: Option<String>,
    /// A consent given by the form records the address it came from.
    pub record_source: bool,
}

impl ListSettings {
    /// A plain list: no double opt-in, no form.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }
}

/// A contact as the API shows it, with its subscriptions and consent records.
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    pub id: ContactId,
    pub address: String,
    pub name: Option<String>,
    pub properties: Properties,
    pub status: ContactStatus,
    pub engagement: EngagementSummary,
    pub subscriptions: Vec<Subscription>,
    pub consent: Vec<ConsentRecord>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngagementSummary {
    pub last_sent_at: Option<Timestamp>,
    pub last_opened_at: Option<Timestamp>,
    pub last_clicked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    pub list_id: ListId,
    pub status: SubscriptionStatus,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConsentRecord {
    pub list_id: ListId,
    pub action: ConsentAction,
    pub method: ConsentMethod,
    pub consent_text: Option<String>,
    /// The address the consent came from, when the account records it.
    pub source: Option<String>,
    pub created_at: Timestamp,
}

/// How consent came with a subscription.
#[derive(Clone, Debug)]
pub struct ConsentInput {
    pub method: ConsentMethod,
    /// The wording; the list's own when `None`.
    pub text: Option<String>,
    pub source: Option<String>,
}

/// A contact to create.
#[derive(Clone, Debug)]
pub struct NewContact {
    pub address: kuvert_core::EmailAddress,
    pub name: Option<String>,
    pub properties: Properties,
    pub lists: Vec<ListId>,
    pub consent: ConsentInput,
}

/// What a PATCH changes: `None` leaves a field, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct ContactPatch {
    pub name: Option<Option<String>>,
    pub properties: Vec<(String, Option<PropertyValue>)>,
    pub status: Option<ContactStatus>,
    pub subscribe: Vec<ListId>,
    pub unsubscribe: Vec<ListId>,
    pub consent: Option<ConsentInput>,
}

pub struct ContactPage {
    pub items: Vec<Contact>,
    pub next: Option<String>,
}

/// What an erasure removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Erasure {
    pub contacts: u64,
    pub recipients: u64,
    pub events: u64,
    pub messages: u64,
    pub captures: u64,
}

/// Why an address cannot become (or stay) a mailable contact.
pub fn refusal_reason(reason: SuppressionReason) -> &'static str {
    match reason {
        SuppressionReason::Erased => "the address was erased at its owner's request",
        SuppressionReason::Bounce => "the address is suppressed: it bounced",
        SuppressionReason::Complaint => "the address is suppressed: it complained",
        SuppressionReason::Unsubscribe => "the address is suppressed: it unsubscribed",
        SuppressionReason::Manual => "the address is suppressed by the account",
    }
}

#[derive(FromRow)]
struct ListRow {
    id: String,
    name: String,
    double_opt_in: i64,
    consent_text: Option<String>,
    public_form: i64,
    confirm_from: Option<String>,
    record_source: i64,
    subscribed: i64,
    created_at: i64,
}

impl ListRow {
    fn parse(self) -> List {
        List {
            id: ListId::from_string(self.id),
            settings: ListSettings {
                name: self.name,
                double_opt_in: self.double_opt_in != 0,
                consent_text: self.consent_text,
                public_form: self.public_form != 0,
                confirm_from: self.confirm_from,
                record_source: self.record_source != 0,
            },
            subscribed: self.subscribed.max(0) as u64,
            created_at: Timestamp(self.created_at),
        }
    }
}

const LIST_OWN_COLUMNS: &str = "l.id, l.name, l.double_opt_in, l.consent_text, l.public_form, l.confirm_from, l.record_source, l.created_at";

const LIST_COUNT: &str = "(SELECT COUNT(*) FROM subscriptions s WHERE s.list_id = l.id AND s.status = 'subscribed') AS subscribed";

#[derive(FromRow)]
pub(crate) struct ContactRow {
    pub(crate) id: String,
    address: Vec<u8>,
    name: Option<Vec<u8>>,
    properties: Option<Vec<u8>>,
    status: String,
    last_sent_at: Option<i64>,
    last_opened_at: Option<i64>,
    last_clicked_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const CONTACT_COLUMNS: &str = "id, address, name, properties, status, last_sent_at, last_opened_at, last_clicked_at, created_at, updated_at";

#[derive(FromRow)]
struct SubscriptionRow {
    contact_id: String,
    list_id: String,
    status: String,
    updated_at: i64,
}

#[derive(FromRow)]
struct ConsentRow {
    contact_id: String,
    list_id: String,
    action: String,
    method: String,
    consent_text: Option<String>,
    source: Option<Vec<u8>>,
    created_at: i64,
}

#[derive(FromRow)]
struct PropertyRow {
    name: String,
    kind: String,
}

/// Seals a contact's properties as one JSON object.
pub(crate) fn seal_properties(key: &AccountKey, props: &Properties) -> Option<Vec<u8>> {
    (!props.is_empty()).then(|| key.seal(&serde_json::to_vec(props).expect("properties serialise")))
}

/// Opens a contact's properties, reading each by its defined kind (a property whose
/// definition is gone is dropped).
pub(crate) fn open_properties(
    key: &AccountKey,
    sealed: Option<Vec<u8>>,
    kinds: &HashMap<String, PropertyKind>,
) -> Result<Properties> {
    let Some(sealed) = sealed else {
        return Ok(Properties::new());
    };
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&key.open(&sealed)?)
            .map_err(|e| StoreError::Sealing(format!("properties: {e}")))?;
    let mut props = Properties::new();
    for (name, value) in map {
        if let Some(kind) = kinds.get(&name)
            && let Ok(Some(v)) = PropertyValue::from_json(*kind, &value)
        {
            props.insert(name, v);
        }
    }
    Ok(props)
}

/// A property value as `contact_values` keeps it for segments: a number in clear, or text
/// as a keyed hash.
#[derive(Clone, Debug)]
pub(crate) struct IndexedValue {
    pub(crate) name: String,
    pub(crate) num: Option<f64>,
    pub(crate) text: Option<String>,
}

impl IndexedValue {
    pub(crate) fn of(key: &AccountKey, name: &str, v: &PropertyValue) -> Self {
        let (num, text) = match v.as_text() {
            Some(t) => (None, Some(key.lookup(t))),
            None => (v.number(), None),
        };
        Self {
            name: name.to_owned(),
            num,
            text,
        }
    }

    /// Every value of a contact's properties.
    pub(crate) fn all(key: &AccountKey, props: &Properties) -> Vec<Self> {
        props.iter().map(|(n, v)| Self::of(key, n, v)).collect()
    }
}

impl ContactRow {
    fn open(
        self,
        key: &AccountKey,
        kinds: &HashMap<String, PropertyKind>,
        subscriptions: Vec<Subscription>,
        consent: Vec<ConsentRecord>,
    ) -> Result<Contact> {
        Ok(Contact {
            id: ContactId::from_string(self.id),
            address: key.open_string(&self.address)?,
            name: key.open_opt(self.name)?,
            properties: open_properties(key, self.properties, kinds)?,
            status: parse_column(&self.status)?,
            engagement: EngagementSummary {
                last_sent_at: self.last_sent_at.map(Timestamp),
                last_opened_at: self.last_opened_at.map(Timestamp),
                last_clicked_at: self.last_clicked_at.map(Timestamp),
            },
            subscriptions,
            consent,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

/// A consent record to insert.
pub(crate) struct ConsentInsert<'a> {
    pub(crate) contact_id: &'a str,
    pub(crate) list_id: &'a str,
    pub(crate) action: ConsentAction,
    pub(crate) method: ConsentMethod,
    pub(crate) text: Option<&'a str>,
    pub(crate) source: Option<Vec<u8>>,
}

pub(crate) async fn insert_consent(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    records: &[ConsentInsert<'_>],
    now: i64,
) -> Result<()> {
    insert_rows(
        tx,
        "INSERT INTO consent_records (account_id, contact_id, list_id, action, method, consent_text, source, created_at)",
        8,
        "",
        records,
        |q, r| {
            q.bind(account.to_owned())
                .bind(r.contact_id)
                .bind(r.list_id)
                .bind(r.action.as_str())
                .bind(r.method.as_str())
                .bind(r.text)
                .bind(r.source.clone())
                .bind(now)
        },
    )
    .await?;
    Ok(())
}

/// Sets a subscription (inserting or changing it). Binds: list, contact, account, status, time.
pub(crate) const UPSERT_SUBSCRIPTION: &str = "INSERT INTO subscriptions (list_id, contact_id, account_id, status, updated_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (list_id, contact_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at";

async fn write_values(
    tx: &mut Transaction<'_, Any>,
    key: &AccountKey,
    account: &str,
    contact: &str,
    props: &Properties,
) -> Result<()> {
    sqlx::query("DELETE FROM contact_values WHERE contact_id = $1")
        .bind(contact)
        .execute(&mut **tx)
        .await?;
    let rows = IndexedValue::all(key, props);
    let owned: Vec<(&str, &IndexedValue)> = rows.iter().map(|v| (contact, v)).collect();
    insert_values(tx, account, &owned).await
}

/// Writes contacts' values for segments: numbers and texts in statements of their own, so
/// that no parameter is ever bound to NULL (PostgreSQL types a cached statement's
/// parameters by what was bound first; a NULL there, a number later, is refused).
pub(crate) async fn insert_values(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    values: &[(&str, &IndexedValue)],
) -> Result<()> {
    let numbers: Vec<(&str, &str, f64)> = values
        .iter()
        .filter_map(|(c, v)| v.num.map(|n| (*c, v.name.as_str(), n)))
        .collect();
    insert_rows(
        tx,
        "INSERT INTO contact_values (contact_id, account_id, name, num)",
        4,
        "",
        &numbers,
        |q, (c, name, n)| q.bind(*c).bind(account.to_owned()).bind(*name).bind(*n),
    )
    .await?;
    let texts: Vec<(&str, &str, &str)> = values
        .iter()
        .filter_map(|(c, v)| v.text.as_deref().map(|t| (*c, v.name.as_str(), t)))
        .collect();
    insert_rows(
        tx,
        "INSERT INTO contact_values (contact_id, account_id, name, text_lookup)",
        4,
        "",
        &texts,
        |q, (c, name, t)| q.bind(*c).bind(account.to_owned()).bind(*name).bind(*t),
    )
    .await?;
    Ok(())
}

/// Binds a list's settings as `$1` to `$6`, in the order of its columns.
fn bind_settings<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    s: &'q ListSettings,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    q.bind(s.name.as_str())
        .bind(i64::from(s.double_opt_in))
        .bind(s.consent_text.as_deref())
        .bind(i64::from(s.public_form))
        .bind(s.confirm_from.as_deref())
        .bind(i64::from(s.record_source))
}

/// What happened to an address that its contact (if the account has one) shows: the
/// engagement summary, and the status a hard bounce, a complaint or an unsubscribe sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ContactMark {
    Sent,
    Opened,
    Clicked,
    SoftBounce,
    Bounced,
    Complained,
    Unsubscribed,
}

impl ContactMark {
    /// The update, binding the time first, then the account, then the lookups.
    fn update(self) -> &'static str {
        match self {
            Self::Sent => "UPDATE contacts SET last_sent_at = $1",
            Self::Opened => "UPDATE contacts SET last_opened_at = $1",
            Self::Clicked => "UPDATE contacts SET last_clicked_at = $1",
            Self::SoftBounce => "UPDATE contacts SET last_soft_bounce_at = $1",
            // A complaint outranks a bounce and an unsubscribe; neither undoes a complaint.
            Self::Bounced => "UPDATE contacts SET status = 'bounced', updated_at = $1",
            Self::Complained => "UPDATE contacts SET status = 'complained', updated_at = $1",
            Self::Unsubscribed => "UPDATE contacts SET status = 'unsubscribed', updated_at = $1",
        }
    }

    fn only(self) -> &'static str {
        match self {
            Self::Bounced | Self::Unsubscribed => " AND status = 'active'",
            Self::Complained => " AND status <> 'complained'",
            _ => "",
        }
    }
}

/// Marks the contacts of `lookups` (keyed hashes under the account's own key) in `tx`.
/// An unsubscribe also leaves every list the contact was subscribed to, each withdrawal a
/// consent record.
pub(crate) async fn mark_contacts(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    lookups: &[&str],
    mark: ContactMark,
    now: i64,
) -> Result<()> {
    for chunk in lookups.chunks(500) {
        let sql = format!(
            "{} WHERE account_id = $2 AND address_lookup IN ({}){}",
            mark.update(),
            placeholders(3, chunk.len()),
            mark.only()
        );
        let mut q = sqlx::query(&sql).bind(now).bind(account);
        for l in chunk {
            q = q.bind(*l);
        }
        q.execute(&mut **tx).await?;
        if mark != ContactMark::Unsubscribed {
            continue;
        }
        // Requests never confirmed go; subscriptions end, each with its withdrawal.
        let contacts = |first: usize| {
            format!(
                "contact_id IN (SELECT id FROM contacts WHERE account_id = ${} AND address_lookup IN ({}))",
                first - 1,
                placeholders(first, chunk.len())
            )
        };
        let sql = format!(
            "DELETE FROM subscriptions WHERE account_id = $1 AND status = 'pending' AND {}",
            contacts(2)
        );
        let mut q = sqlx::query(&sql).bind(account);
        for l in chunk {
            q = q.bind(*l);
        }
        q.execute(&mut **tx).await?;
        let sql = format!(
            "UPDATE subscriptions SET status = 'unsubscribed', updated_at = $1, confirm_sent_at = NULL WHERE account_id = $2 \
             AND status = 'subscribed' AND {} RETURNING contact_id, list_id",
            contacts(3)
        );
        let mut q = sqlx::query_as::<_, (String, String)>(&sql)
            .bind(now)
            .bind(account);
        for l in chunk {
            q = q.bind(*l);
        }
        let left = q.fetch_all(&mut **tx).await?;
        insert_consent(tx, account, &unsubscribed(&left), now).await?;
    }
    Ok(())
}

/// Takes the contact with this keyed address out of `lists` (an unsubscribe from a
/// campaign's lists), each withdrawal recorded; a request never confirmed goes. Returns the
/// lists it left.
pub(crate) async fn leave_lists(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    lookup: &str,
    lists: &[String],
    now: i64,
) -> Result<Vec<String>> {
    let contact =
        "contact_id IN (SELECT id FROM contacts WHERE account_id = $1 AND address_lookup = $2)";
    let mut left: Vec<(String, String)> = Vec::new();
    for list in lists {
        sqlx::query(&format!(
            "DELETE FROM subscriptions WHERE account_id = $1 AND list_id = $3 AND status = 'pending' AND {contact}"
        ))
        .bind(account)
        .bind(lookup)
        .bind(list)
        .execute(&mut **tx)
        .await?;
        let contacts = sqlx::query_scalar::<_, String>(&format!(
            "UPDATE subscriptions SET status = 'unsubscribed', updated_at = $4, confirm_sent_at = NULL \
             WHERE account_id = $1 AND list_id = $3 AND status = 'subscribed' AND {contact} RETURNING contact_id"
        ))
        .bind(account)
        .bind(lookup)
        .bind(list)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        left.extend(contacts.into_iter().map(|c| (c, list.clone())));
    }
    insert_consent(tx, account, &unsubscribed(&left), now).await?;
    Ok(left.into_iter().map(|(_, l)| l).collect())
}

/// Whether the account has a contact with this keyed address.
pub(crate) async fn contact_exists(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    lookup: &str,
) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM contacts WHERE account_id = $1 AND address_lookup = $2",
    )
    .bind(account)
    .bind(lookup)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

/// The withdrawals of (contact, list) pairs left by an unsubscribe.
fn unsubscribed(left: &[(String, String)]) -> Vec<ConsentInsert<'_>> {
    left.iter()
        .map(|(contact, list)| ConsentInsert {
            contact_id: contact,
            list_id: list,
            action: ConsentAction::Withdrawn,
            method: ConsentMethod::Unsubscribe,
            text: None,
            source: None,
        })
        .collect()
}

impl Store {
    // ---- properties ----

    /// The account's property definitions by name.
    pub async fn contact_properties(
        &self,
        account: &AccountId,
    ) -> Result<HashMap<String, PropertyKind>> {
        let rows = sqlx::query_as::<_, PropertyRow>(
            "SELECT name, kind FROM contact_properties WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.name, parse_column(&r.kind)?)))
            .collect()
    }

    /// Defines a property; at most [`MAX_PROPERTIES`] an account.
    pub async fn define_property(
        &self,
        account: &AccountId,
        name: &str,
        kind: PropertyKind,
    ) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM contact_properties WHERE account_id = $1")
                .bind(account.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if count as usize >= MAX_PROPERTIES {
            return Err(StoreError::Limit(
                "an account defines at most 100 properties",
            ));
        }
        sqlx::query(
            "INSERT INTO contact_properties (account_id, name, kind, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account.as_str())
        .bind(name)
        .bind(kind.as_str())
        .bind(self.now())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict("property"))?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a definition and every contact's value of it from the segment index (the
    /// sealed values drop it when the contact is next read and written).
    pub async fn delete_property(&self, account: &AccountId, name: &str) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let done =
            sqlx::query("DELETE FROM contact_properties WHERE account_id = $1 AND name = $2")
                .bind(account.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("property"));
        }
        sqlx::query("DELETE FROM contact_values WHERE account_id = $1 AND name = $2")
            .bind(account.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- lists ----

    pub async fn create_list(&self, account: &AccountId, settings: ListSettings) -> Result<List> {
        let now = self.now();
        let id = ListId::generate(Timestamp(now));
        bind_settings(
            sqlx::query(
                "INSERT INTO lists (name, double_opt_in, consent_text, public_form, confirm_from, record_source, id, account_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            ),
            &settings,
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(StoreError::conflict("list"))?;
        Ok(List {
            id,
            settings,
            subscribed: 0,
            created_at: Timestamp(now),
        })
    }

    /// Changes a list's settings.
    pub async fn update_list(
        &self,
        account: &AccountId,
        id: &str,
        settings: ListSettings,
    ) -> Result<List> {
        let done = bind_settings(
            sqlx::query(
                "UPDATE lists SET name = $1, double_opt_in = $2, consent_text = $3, public_form = $4, confirm_from = $5, record_source = $6 \
                 WHERE id = $7 AND account_id = $8",
            ),
            &settings,
        )
        .bind(id)
        .bind(account.as_str())
        .execute(self.writer())
        .await
        .map_err(StoreError::conflict("list"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("list"));
        }
        self.list(account, id).await
    }

    pub async fn lists(&self, account: &AccountId) -> Result<Vec<List>> {
        let rows = sqlx::query_as::<_, ListRow>(&format!(
            "SELECT {LIST_OWN_COLUMNS}, {LIST_COUNT} FROM lists l WHERE l.account_id = $1 ORDER BY l.name"
        ))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(ListRow::parse).collect())
    }

    pub async fn list(&self, account: &AccountId, id: &str) -> Result<List> {
        self.list_with(account, id, LIST_COUNT).await
    }

    /// A list by id alone, with its account: for the public form, which names only the list.
    pub async fn list_by_id(&self, id: &str) -> Result<(AccountId, List)> {
        let account: String = sqlx::query_scalar("SELECT account_id FROM lists WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("list"))?;
        let account = AccountId::from_string(account);
        let list = self.list_settings(&account, id).await?;
        Ok((account, list))
    }

    /// A list without its count of subscribers (which reads every membership): for checks
    /// and settings on paths that run per page or per batch.
    pub async fn list_settings(&self, account: &AccountId, id: &str) -> Result<List> {
        self.list_with(account, id, "CAST(0 AS BIGINT) AS subscribed")
            .await
    }

    async fn list_with(&self, account: &AccountId, id: &str, count: &str) -> Result<List> {
        sqlx::query_as::<_, ListRow>(&format!(
            "SELECT {LIST_OWN_COLUMNS}, {count} FROM lists l WHERE l.account_id = $1 AND l.id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .map(ListRow::parse)
        .ok_or(StoreError::NotFound("list"))
    }

    /// Deletes a list and its memberships; the consent records stay with their contacts.
    pub async fn delete_list(&self, account: &AccountId, id: &str) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query("DELETE FROM lists WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("list"));
        }
        sqlx::query("DELETE FROM subscriptions WHERE list_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checks that every list is the account's.
    async fn own_lists(
        &self,
        account: &AccountId,
        lists: &[ListId],
    ) -> Result<HashMap<String, List>> {
        let mut found = HashMap::new();
        for id in lists {
            let list = self.list_settings(account, id.as_str()).await?;
            found.insert(id.as_str().to_owned(), list);
        }
        Ok(found)
    }

    // ---- contacts ----

    /// Why the account may not take this address as a contact, if it may not: erased, or
    /// suppressed.
    pub async fn contact_refusal(
        &self,
        account: &AccountId,
        address: &str,
    ) -> Result<Option<SuppressionReason>> {
        Ok(self.suppressed(account, &[address]).await?.remove(address))
    }

    /// Creates a contact, subscribed to `lists` with consent recorded. An erased or
    /// suppressed address is refused (`StoreError::Refused`).
    pub async fn create_contact(&self, account: &AccountId, new: NewContact) -> Result<Contact> {
        let address = new.address.as_str().to_owned();
        let lists = self.own_lists(account, &new.lists).await?;
        let key = self.account_key(account).await?;
        let now = self.now();
        let id = ContactId::generate(Timestamp(now));
        let mut tx = self.writer().begin().await?;
        let lookup = key.lookup(&address);
        crate::optin::lock_address(&mut tx, self.backend(), account.as_str(), &lookup).await?;
        if let Some(reason) = crate::optin::suppressed_in(
            &mut tx,
            account.as_str(),
            &lookup,
            &self.lookup_hash(&address),
        )
        .await?
        {
            return Err(StoreError::Refused(refusal_reason(reason)));
        }
        sqlx::query(
            "INSERT INTO contacts (id, account_id, address_lookup, address, name, properties, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(&lookup)
        .bind(key.seal(address.as_bytes()))
        .bind(key.seal_opt(new.name.as_deref()))
        .bind(seal_properties(&key, &new.properties))
        .bind(ContactStatus::Active.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict("contact"))?;
        write_values(
            &mut tx,
            &key,
            account.as_str(),
            id.as_str(),
            &new.properties,
        )
        .await?;
        self.subscribe_in(
            &mut tx,
            &key,
            account,
            id.as_str(),
            &lists,
            &new.consent,
            now,
        )
        .await?;
        tx.commit().await?;
        self.contact(account, id.as_str()).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn subscribe_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        key: &AccountKey,
        account: &AccountId,
        contact: &str,
        lists: &HashMap<String, List>,
        consent: &ConsentInput,
        now: i64,
    ) -> Result<()> {
        let mut records = Vec::new();
        for list in lists.values() {
            sqlx::query(UPSERT_SUBSCRIPTION)
                .bind(list.id.as_str())
                .bind(contact)
                .bind(account.as_str())
                .bind(SubscriptionStatus::Subscribed.as_str())
                .bind(now)
                .execute(&mut **tx)
                .await?;
            records.push(ConsentInsert {
                contact_id: contact,
                list_id: list.id.as_str(),
                action: ConsentAction::Given,
                method: consent.method,
                text: consent
                    .text
                    .as_deref()
                    .or(list.settings.consent_text.as_deref()),
                source: key.seal_opt(consent.source.as_deref()),
            });
        }
        insert_consent(tx, account.as_str(), &records, now).await
    }

    /// A contact by id or by address, with its subscriptions and consent records.
    pub async fn contact(&self, account: &AccountId, id_or_address: &str) -> Result<Contact> {
        let key = self.account_key(account).await?;
        let (column, value) = if ContactId::looks_like(id_or_address) {
            ("id", id_or_address.to_owned())
        } else {
            ("address_lookup", key.lookup(id_or_address))
        };
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND {column} = $2"
        );
        let row = sqlx::query_as::<_, ContactRow>(&sql)
            .bind(account.as_str())
            .bind(value)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("contact"))?;
        let mut contacts = self.open_contacts(account, &key, vec![row]).await?;
        contacts.pop().ok_or(StoreError::NotFound("contact"))
    }

    /// Opens rows of contacts with their subscriptions and consent records, read for all of
    /// them in two queries and opened on a blocking thread (a page is thousands of values).
    pub(crate) async fn open_contacts(
        &self,
        account: &AccountId,
        key: &Arc<AccountKey>,
        rows: Vec<ContactRow>,
    ) -> Result<Vec<Contact>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let kinds = self.contact_properties(account).await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut subs: Vec<SubscriptionRow> = Vec::new();
        let mut consent: Vec<ConsentRow> = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT contact_id, list_id, status, updated_at FROM subscriptions WHERE contact_id IN ({}) ORDER BY list_id",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, SubscriptionRow>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            subs.extend(q.fetch_all(self.pool()).await?);
            let sql = format!(
                "SELECT contact_id, list_id, action, method, consent_text, source, created_at FROM consent_records \
                 WHERE account_id = $1 AND contact_id IN ({}) ORDER BY seq",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query_as::<_, ConsentRow>(&sql).bind(account.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            consent.extend(q.fetch_all(self.pool()).await?);
        }
        let key = key.clone();
        tokio::task::spawn_blocking(move || open_all(&key, &kinds, rows, subs, consent))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Contacts in id order (creation order), of one list or every one, optionally of one
    /// status. `after` is a `next` from an earlier page.
    pub async fn list_contacts(
        &self,
        account: &AccountId,
        list: Option<&str>,
        status: Option<ContactStatus>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ContactPage> {
        let key = self.account_key(account).await?;
        if let Some(list) = list {
            self.list_settings(account, list).await?;
        }
        let rows = sqlx::query_as::<_, ContactRow>(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.account_id = $1 AND c.id > $2 \
             AND ($3 = '' OR c.status = $3) \
             AND ($4 = '' OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.list_id = $4 AND s.contact_id = c.id)) \
             ORDER BY c.id LIMIT $5"
        ))
        .bind(account.as_str())
        .bind(after.unwrap_or(""))
        .bind(status.map_or("", |s| s.as_str()))
        .bind(list.unwrap_or(""))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.pool())
        .await?;
        let more = rows.len() > limit as usize;
        let mut rows = rows;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(|r| r.id.clone())).flatten();
        let items = self.open_contacts(account, &key, rows).await?;
        Ok(ContactPage { items, next })
    }

    /// Changes a contact's name, properties, status and subscriptions, recording consent
    /// given or withdrawn.
    pub async fn update_contact(
        &self,
        account: &AccountId,
        id_or_address: &str,
        patch: ContactPatch,
    ) -> Result<Contact> {
        let current = self.contact(account, id_or_address).await?;
        let key = self.account_key(account).await?;
        let subscribe = self.own_lists(account, &patch.subscribe).await?;
        let unsubscribe = self.own_lists(account, &patch.unsubscribe).await?;
        if !subscribe.is_empty() {
            if let Some(reason) = self.contact_refusal(account, &current.address).await? {
                return Err(StoreError::Refused(refusal_reason(reason)));
            }
            let status = patch.status.unwrap_or(current.status);
            if !status.mailable() {
                return Err(StoreError::Refused(
                    "the contact is not active: it cannot be subscribed",
                ));
            }
        }
        let now = self.now();
        let mut props = current.properties.clone();
        for (name, value) in patch.properties {
            match value {
                Some(v) => props.insert(name, v),
                None => props.remove(&name),
            };
        }
        let name = patch.name.unwrap_or(current.name);
        let status = patch.status.unwrap_or(current.status);
        let id = current.id.as_str();
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "UPDATE contacts SET name = $1, properties = $2, status = $3, updated_at = $4, unconfirmed = 0 WHERE id = $5 AND account_id = $6",
        )
        .bind(key.seal_opt(name.as_deref()))
        .bind(seal_properties(&key, &props))
        .bind(status.as_str())
        .bind(now)
        .bind(id)
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
        write_values(&mut tx, &key, account.as_str(), id, &props).await?;
        let consent = patch.consent.unwrap_or(ConsentInput {
            method: ConsentMethod::Api,
            text: None,
            source: None,
        });
        self.subscribe_in(&mut tx, &key, account, id, &subscribe, &consent, now)
            .await?;
        let mut withdrawn = Vec::new();
        for list in unsubscribe.values() {
            let done = sqlx::query(
                "UPDATE subscriptions SET status = $1, updated_at = $2 WHERE list_id = $3 AND contact_id = $4 AND status <> $1",
            )
            .bind(SubscriptionStatus::Unsubscribed.as_str())
            .bind(now)
            .bind(list.id.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                withdrawn.push(ConsentInsert {
                    contact_id: id,
                    list_id: list.id.as_str(),
                    action: ConsentAction::Withdrawn,
                    method: consent.method,
                    text: None,
                    source: key.seal_opt(consent.source.as_deref()),
                });
            }
        }
        insert_consent(&mut tx, account.as_str(), &withdrawn, now).await?;
        tx.commit().await?;
        self.contact(account, id).await
    }

    /// Deletes a contact with its values, subscriptions and consent records. The address may
    /// come back later (an erasure keeps it out).
    pub async fn delete_contact(&self, account: &AccountId, id_or_address: &str) -> Result<()> {
        let key = self.account_key(account).await?;
        let id: Option<String> = if ContactId::looks_like(id_or_address) {
            sqlx::query_scalar("SELECT id FROM contacts WHERE account_id = $1 AND id = $2")
                .bind(account.as_str())
                .bind(id_or_address)
        } else {
            sqlx::query_scalar(
                "SELECT id FROM contacts WHERE account_id = $1 AND address_lookup = $2",
            )
            .bind(account.as_str())
            .bind(key.lookup(id_or_address))
        }
        .fetch_optional(self.pool())
        .await?;
        let id = id.ok_or(StoreError::NotFound("contact"))?;
        let mut tx = self.writer().begin().await?;
        delete_contact_rows(&mut tx, account.as_str(), &id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The addresses of a list's contacts (every contact's, without a list), a page at a
    /// time in id order: for deleting or erasing a list's contacts in bulk.
    pub async fn contact_addresses(
        &self,
        account: &AccountId,
        list: Option<&str>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(ContactId, String)>> {
        let key = self.account_key(account).await?;
        #[derive(FromRow)]
        struct Row {
            id: String,
            address: Vec<u8>,
        }
        let rows = sqlx::query_as::<_, Row>(
            "SELECT c.id, c.address FROM contacts c WHERE c.account_id = $1 AND c.id > $2 \
             AND ($3 = '' OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.list_id = $3 AND s.contact_id = c.id)) \
             ORDER BY c.id LIMIT $4",
        )
        .bind(account.as_str())
        .bind(after)
        .bind(list.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((ContactId::from_string(r.id), key.open_string(&r.address)?)))
            .collect()
    }

    /// Erases every personal datum of `address` in the account: its contact (values,
    /// subscriptions, consent), its recipients and their events, the content of messages
    /// and captures that name it; its suppression entries become one entry `erased` under
    /// the account's own keyed hash, with no address, so that it is neither mailed nor
    /// imported again. One transaction.
    pub async fn erase_address(&self, account: &AccountId, address: &str) -> Result<Erasure> {
        let key = self.account_key(account).await?;
        let instance = self.lookup_hash(address);
        let own = key.lookup(address);
        let now = self.now();
        let mut done = Erasure::default();
        let mut tx = self.writer().begin().await?;
        crate::optin::lock_address(&mut tx, self.backend(), account.as_str(), &own).await?;
        let contact: Option<String> = sqlx::query_scalar(
            "SELECT id FROM contacts WHERE account_id = $1 AND address_lookup = $2",
        )
        .bind(account.as_str())
        .bind(&own)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = contact {
            delete_contact_rows(&mut tx, account.as_str(), &id).await?;
            done.contacts = 1;
        }
        // Messages that had the address among their recipients: their content names it (a
        // header, perhaps the body), so it goes, with their captured copies.
        let messages: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT message_id FROM recipients WHERE account_id = $1 AND address_lookup = $2",
        )
        .bind(account.as_str())
        .bind(&instance)
        .fetch_all(&mut *tx)
        .await?;
        for m in &messages {
            let c = sqlx::query("DELETE FROM captures WHERE account_id = $1 AND message_id = $2")
                .bind(account.as_str())
                .bind(m)
                .execute(&mut *tx)
                .await?;
            done.captures += c.rows_affected();
            // A recipient still waiting loses its content with the rest: it fails below.
            let u = sqlx::query(
                "UPDATE messages SET mime = NULL, subject = $1, metadata = NULL WHERE account_id = $2 AND id = $3",
            )
            .bind(key.seal(b""))
            .bind(account.as_str())
            .bind(m)
            .execute(&mut *tx)
            .await?;
            done.messages += u.rows_affected();
        }
        sqlx::query(
            "DELETE FROM webhook_outbox WHERE account_id = $1 AND event_seq IN \
             (SELECT seq FROM events WHERE account_id = $1 AND recipient_lookup = $2)",
        )
        .bind(account.as_str())
        .bind(&instance)
        .execute(&mut *tx)
        .await?;
        let e = sqlx::query("DELETE FROM events WHERE account_id = $1 AND recipient_lookup = $2")
            .bind(account.as_str())
            .bind(&instance)
            .execute(&mut *tx)
            .await?;
        done.events = e.rows_affected();
        // Other recipients' events carry the whole message's details at most by id; the
        // recipient rows of this address go, so nothing left names it.
        let r = sqlx::query("DELETE FROM recipients WHERE account_id = $1 AND address_lookup = $2")
            .bind(account.as_str())
            .bind(&instance)
            .execute(&mut *tx)
            .await?;
        done.recipients = r.rows_affected();
        crate::audit::redact_audit(&mut tx, &key, account.as_str(), address).await?;
        sqlx::query(
            "DELETE FROM suppressions WHERE account_id = $1 AND address_lookup IN ($2, $3)",
        )
        .bind(account.as_str())
        .bind(&instance)
        .bind(&own)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO suppressions (account_id, address_lookup, address, reason, created_at) VALUES ($1, $2, NULL, $3, $4)",
        )
        .bind(account.as_str())
        .bind(&own)
        .bind(SuppressionReason::Erased.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if self.backend() == crate::Backend::Sqlite {
            // The write-ahead log still holds the pages as they were before: moved into the
            // file (where secure delete zeroed the rows) and truncated, it holds nothing.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(self.writer())
                .await?;
        }
        Ok(done)
    }
}

/// Opens contacts with their subscriptions and consent records.
fn open_all(
    key: &AccountKey,
    kinds: &HashMap<String, PropertyKind>,
    rows: Vec<ContactRow>,
    subs: Vec<SubscriptionRow>,
    consent: Vec<ConsentRow>,
) -> Result<Vec<Contact>> {
    let mut by_contact: HashMap<String, (Vec<Subscription>, Vec<ConsentRecord>)> = HashMap::new();
    for r in subs {
        by_contact
            .entry(r.contact_id)
            .or_default()
            .0
            .push(Subscription {
                list_id: ListId::from_string(r.list_id),
                status: parse_column(&r.status)?,
                updated_at: Timestamp(r.updated_at),
            });
    }
    for r in consent {
        by_contact
            .entry(r.contact_id)
            .or_default()
            .1
            .push(ConsentRecord {
                list_id: ListId::from_string(r.list_id),
                action: parse_column(&r.action)?,
                method: parse_column(&r.method)?,
                consent_text: r.consent_text,
                source: key.open_opt(r.source)?,
                created_at: Timestamp(r.created_at),
            });
    }
    rows.into_iter()
        .map(|row| {
            let (s, c) = by_contact.remove(&row.id).unwrap_or_default();
            row.open(key, kinds, s, c)
        })
        .collect()
}

pub(crate) async fn delete_contact_rows(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    id: &str,
) -> Result<()> {
    for sql in [
        "DELETE FROM contact_values WHERE contact_id = $1 AND account_id = $2",
        "DELETE FROM subscriptions WHERE contact_id = $1 AND account_id = $2",
        "DELETE FROM consent_records WHERE contact_id = $1 AND account_id = $2",
        "DELETE FROM contacts WHERE id = $1 AND account_id = $2",
    ] {
        sqlx::query(sql)
            .bind(id)
            .bind(account)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
