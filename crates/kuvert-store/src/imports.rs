//! Contact imports: the upload kept in sealed chunks while it is worked on, the job's state
//! and counters, and the batch writer. Each batch of rows is one transaction that also
//! advances the import's counters, so a node that dies mid-import leaves it consistent, and
//! the next claim resumes after the last committed row.

use std::collections::HashMap;
use std::sync::Arc;

use kuvert_core::Timestamp;
use kuvert_core::contact::{
    ConsentAction, ConsentMethod, ContactStatus, ImportMode, ImportState, Properties,
    SubscriptionStatus,
};
use kuvert_core::event::SuppressionReason;
use kuvert_core::id::{AccountId, ContactId, ImportId, ListId};
use sqlx::FromRow;

use crate::accounts::parse_column;
use crate::contacts::{
    ConsentInsert, IndexedValue, insert_consent, insert_values, refusal_reason, seal_properties,
};
use crate::seal::AccountKey;
use crate::sql::{insert_rows, params, placeholders};
use crate::{Result, Store, StoreError};

/// An import as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub id: ImportId,
    pub list_id: Option<ListId>,
    pub mode: ImportMode,
    pub state: ImportState,
    pub consent_text: Option<String>,
    /// Columns the account chose to leave out.
    pub dropped: Vec<String>,
    /// What the scan found, as JSON written by the importer (sensitive-looking columns with
    /// masked samples).
    pub findings: serde_json::Value,
    pub total: u64,
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    pub failed: u64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A row the importer read and checked.
#[derive(Clone, Debug)]
pub struct ImportRow {
    /// 1 for the first row after the header.
    pub row_number: u64,
    /// Checked and normalised.
    pub address: String,
    pub name: Option<String>,
    pub properties: Properties,
}

/// A row refused or skipped, for the error report: never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub row_number: u64,
    pub column: String,
    pub reason: String,
}

/// One batch: the good rows, the rows the importer refused, and the number of the last row
/// the batch covers.
#[derive(Debug, Default)]
pub struct ImportBatch {
    pub rows: Vec<ImportRow>,
    pub refused: Vec<RowError>,
    pub through: u64,
}

#[derive(FromRow)]
struct ImportRecord {
    id: String,
    list_id: Option<String>,
    mode: String,
    state: String,
    consent_text: Option<String>,
    dropped: String,
    findings: String,
    total: i64,
    processed: i64,
    created: i64,
    updated: i64,
    skipped: i64,
    failed: i64,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const IMPORT_COLUMNS: &str = "id, list_id, mode, state, consent_text, dropped, findings, total, processed, created, updated, skipped, failed, error, created_at, updated_at";

impl ImportRecord {
    fn parse(self) -> Result<Import> {
        let n = |v: i64| v.max(0) as u64;
        Ok(Import {
            id: ImportId::from_string(self.id),
            list_id: self.list_id.map(ListId::from_string),
            mode: parse_column(&self.mode)?,
            state: parse_column(&self.state)?,
            consent_text: self.consent_text,
            dropped: serde_json::from_str(&self.dropped).unwrap_or_default(),
            findings: serde_json::from_str(&self.findings).unwrap_or_default(),
            total: n(self.total),
            processed: n(self.processed),
            created: n(self.created),
            updated: n(self.updated),
            skipped: n(self.skipped),
            failed: n(self.failed),
            error: self.error,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

#[derive(FromRow)]
struct ExistingRow {
    id: String,
    address_lookup: String,
    status: String,
    properties: Option<Vec<u8>>,
}

#[derive(FromRow)]
struct LookupReason {
    address_lookup: String,
    reason: String,
}

#[derive(FromRow)]
struct SubStatus {
    contact_id: String,
    status: String,
}

#[derive(FromRow)]
struct ClaimRow {
    id: String,
    account_id: String,
    state: String,
}

/// A row's sealed values and hashes, made on a blocking thread.
struct Sealed {
    own: String,
    instance: String,
    address: Vec<u8>,
    name: Option<Vec<u8>>,
    properties: Option<Vec<u8>>,
    values: Vec<IndexedValue>,
}

/// An existing contact's new name and properties (update mode).
struct Update {
    id: String,
    name: Option<Vec<u8>>,
    properties: Option<Vec<u8>>,
    values: Vec<IndexedValue>,
}

fn seal_rows(
    key: &AccountKey,
    instance: &kuvert_core::lookup::LookupKey,
    rows: &[ImportRow],
) -> Vec<Sealed> {
    rows.iter()
        .map(|r| Sealed {
            own: key.lookup(&r.address),
            instance: instance.hash(&r.address),
            address: key.seal(r.address.as_bytes()),
            name: key.seal_opt(r.name.as_deref()),
            properties: seal_properties(key, &r.properties),
            values: IndexedValue::all(key, &r.properties),
        })
        .collect()
}

/// How a batch ended for its counters.
#[derive(Default)]
struct Counts {
    created: i64,
    updated: i64,
    skipped: i64,
    failed: i64,
}

impl Store {
    /// Records a new import, waiting for its upload.
    pub async fn create_import(
        &self,
        account: &AccountId,
        list: Option<&ListId>,
        mode: ImportMode,
        consent_text: Option<&str>,
    ) -> Result<ImportId> {
        if let Some(list) = list {
            self.list_settings(account, list.as_str()).await?;
        }
        let now = self.now();
        let id = ImportId::generate(Timestamp(now));
        sqlx::query(
            "INSERT INTO imports (id, account_id, list_id, mode, state, consent_text, dropped, findings, total, processed, created, updated, skipped, failed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, '[]', '[]', 0, 0, 0, 0, 0, 0, $7, $7)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(list.map(ListId::as_str))
        .bind(mode.as_str())
        .bind(ImportState::Uploading.as_str())
        .bind(consent_text)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(id)
    }

    /// Stores a piece of the upload, sealed.
    pub async fn add_import_chunk(
        &self,
        account: &AccountId,
        id: &ImportId,
        seq: i64,
        bytes: &[u8],
    ) -> Result<()> {
        let key = self.account_key(account).await?;
        let sealed = {
            let bytes = bytes.to_vec();
            tokio::task::spawn_blocking(move || key.seal(&bytes))
                .await
                .map_err(|_| StoreError::Closed)?
        };
        sqlx::query(
            "INSERT INTO import_chunks (import_id, account_id, seq, data) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(seq)
        .bind(sealed)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// A piece of the upload, opened; `None` past the last.
    pub async fn import_chunk(
        &self,
        account: &AccountId,
        id: &ImportId,
        seq: i64,
    ) -> Result<Option<Vec<u8>>> {
        let key = self.account_key(account).await?;
        let sealed: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT data FROM import_chunks WHERE import_id = $1 AND account_id = $2 AND seq = $3",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(seq)
        .fetch_optional(self.pool())
        .await?;
        match sealed {
            None => Ok(None),
            Some(s) => tokio::task::spawn_blocking(move || key.open(&s))
                .await
                .map_err(|_| StoreError::Closed)?
                .map(Some),
        }
    }

    pub async fn import(&self, account: &AccountId, id: &str) -> Result<Import> {
        sqlx::query_as::<_, ImportRecord>(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("import"))?
        .parse()
    }

    /// The account's imports, newest first.
    pub async fn imports(&self, account: &AccountId, limit: u32) -> Result<Vec<Import>> {
        sqlx::query_as::<_, ImportRecord>(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE account_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(account.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(ImportRecord::parse)
        .collect()
    }

    /// Moves an import from one state to another; `NotFound` unless it was in `from`.
    async fn move_import(
        &self,
        account: &AccountId,
        id: &str,
        from: &[ImportState],
        to: ImportState,
        set: &str,
        bind: Option<String>,
    ) -> Result<()> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let sql = format!(
            "UPDATE imports SET state = $1, updated_at = $2{set} WHERE account_id = $3 AND id = $4 AND state IN ({})",
            placeholders(if bind.is_some() { 6 } else { 5 }, from.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(self.now())
            .bind(account.as_str())
            .bind(id);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        for f in from {
            q = q.bind(f);
        }
        if q.execute(self.writer()).await?.rows_affected() == 0 {
            return Err(StoreError::NotFound("import in that state"));
        }
        Ok(())
    }

    /// The upload is whole: the import waits for its scan.
    pub async fn import_uploaded(&self, account: &AccountId, id: &ImportId) -> Result<()> {
        self.move_import(
            account,
            id.as_str(),
            &[ImportState::Uploading],
            ImportState::Scanning,
            "",
            None,
        )
        .await
    }

    /// The scan is done: `total` rows, and what it found. With findings the import waits
    /// for review; without, it runs.
    pub async fn import_scanned(
        &self,
        account: &AccountId,
        id: &ImportId,
        total: u64,
        findings: &serde_json::Value,
    ) -> Result<()> {
        let review = findings.as_array().is_some_and(|f| !f.is_empty());
        let to = if review {
            ImportState::Review
        } else {
            ImportState::Running
        };
        sqlx::query(
            "UPDATE imports SET state = $1, total = $2, findings = $3, updated_at = $4 WHERE account_id = $5 AND id = $6 AND state = $7",
        )
        .bind(to.as_str())
        .bind(total as i64)
        .bind(findings.to_string())
        .bind(self.now())
        .bind(account.as_str())
        .bind(id.as_str())
        .bind(ImportState::Scanning.as_str())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The account confirmed an import in review, leaving out `dropped` columns.
    pub async fn confirm_import(
        &self,
        account: &AccountId,
        id: &str,
        dropped: &[String],
    ) -> Result<()> {
        self.move_import(
            account,
            id,
            &[ImportState::Review],
            ImportState::Running,
            ", dropped = $5",
            Some(serde_json::to_string(dropped).expect("strings serialise")),
        )
        .await
    }

    /// Cancels an import that has not finished; its upload goes. Rows already imported stay.
    pub async fn cancel_import(&self, account: &AccountId, id: &str) -> Result<()> {
        self.move_import(
            account,
            id,
            &[
                ImportState::Uploading,
                ImportState::Scanning,
                ImportState::Review,
                ImportState::Running,
            ],
            ImportState::Cancelled,
            "",
            None,
        )
        .await?;
        self.drop_import_chunks(id).await
    }

    async fn drop_import_chunks(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM import_chunks WHERE import_id = $1")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Ends an import as done (or failed, with why); its upload goes.
    pub async fn finish_import(
        &self,
        account: &AccountId,
        id: &ImportId,
        error: Option<&str>,
    ) -> Result<()> {
        let state = if error.is_some() {
            ImportState::Failed
        } else {
            ImportState::Done
        };
        sqlx::query(
            "UPDATE imports SET state = $1, error = $2, lease_owner = NULL, lease_until = NULL, updated_at = $3 \
             WHERE account_id = $4 AND id = $5 AND state IN ('uploading', 'scanning', 'running')",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(self.now())
        .bind(account.as_str())
        .bind(id.as_str())
        .execute(self.writer())
        .await?;
        self.drop_import_chunks(id.as_str()).await
    }

    /// Takes an import to work on (scanning or running) whose lease is free or ran out.
    pub async fn claim_import(
        &self,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<(AccountId, ImportId, ImportState)>> {
        let now = self.now();
        let candidate = sqlx::query_as::<_, ClaimRow>(
            "SELECT id, account_id, state FROM imports WHERE state IN ('scanning', 'running') \
             AND (lease_until IS NULL OR lease_until < $1) ORDER BY id LIMIT 1",
        )
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(c) = candidate else { return Ok(None) };
        let taken = sqlx::query(
            "UPDATE imports SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND state = $4 \
             AND (lease_until IS NULL OR lease_until < $5)",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(&c.id)
        .bind(&c.state)
        .bind(now)
        .execute(self.writer())
        .await?;
        if taken.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(Some((
            AccountId::from_string(c.account_id),
            ImportId::from_string(c.id),
            parse_column(&c.state)?,
        )))
    }

    /// Takes this import, if its lease is free (the CLI works the import it uploaded).
    pub async fn claim_import_id(&self, id: &ImportId, owner: &str, lease_ms: i64) -> Result<bool> {
        let now = self.now();
        let done = sqlx::query(
            "UPDATE imports SET lease_owner = $1, lease_until = $2 WHERE id = $3 \
             AND state IN ('scanning', 'running') AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(id.as_str())
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Renews a lease; false when it is no longer ours (cancelled, or taken over).
    pub async fn renew_import(&self, id: &ImportId, owner: &str, lease_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE imports SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state IN ('scanning', 'running')",
        )
        .bind(self.now() + lease_ms)
        .bind(id.as_str())
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives a lease back, so that the next start (or another node) takes the import at once.
    pub async fn release_import(&self, id: &ImportId, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE imports SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id.as_str())
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The error report: refused and skipped rows in row order, after row `after`.
    pub async fn import_errors(
        &self,
        account: &AccountId,
        id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<RowError>> {
        #[derive(FromRow)]
        struct Row {
            row_number: i64,
            column_name: String,
            reason: String,
        }
        let rows = sqlx::query_as::<_, Row>(
            "SELECT row_number, column_name, reason FROM import_errors WHERE account_id = $1 AND import_id = $2 \
             AND row_number > $3 ORDER BY row_number, column_name LIMIT $4",
        )
        .bind(account.as_str())
        .bind(id)
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RowError {
                row_number: r.row_number.max(0) as u64,
                column: r.column_name,
                reason: r.reason,
            })
            .collect())
    }

    /// Brings PostgreSQL's statistics of the contact tables up to date. An import calls it
    /// as the tables grow: a plan made while they were empty (or with autovacuum off) reads
    /// every contact of the account for each look-up of a batch, which makes an import
    /// quadratic. SQLite's planner needs none.
    pub async fn refresh_contact_statistics(&self) -> Result<()> {
        if self.backend() == crate::Backend::Postgres {
            sqlx::query(
                "ANALYZE contacts, contact_values, subscriptions, consent_records, suppressions",
            )
            .execute(self.writer())
            .await?;
        }
        Ok(())
    }

    /// Writes a batch in one transaction with the import's counters, while `owner` holds
    /// its lease. Erased and suppressed addresses are skipped with the reason, and so are
    /// contacts that left the list or the account's mail: an import never subscribes them
    /// again.
    pub async fn apply_import_batch(
        &self,
        account: &AccountId,
        id: &ImportId,
        owner: &str,
        lease_ms: i64,
        batch: ImportBatch,
    ) -> Result<()> {
        let import = self.import(account, id.as_str()).await?;
        let list = match &import.list_id {
            Some(l) => Some(self.list_settings(account, l.as_str()).await?),
            None => None,
        };
        let key = self.account_key(account).await?;
        let rows = Arc::new(batch.rows);
        let sealed = {
            let (key, rows, instance) = (key.clone(), rows.clone(), self.0.lookup.clone());
            tokio::task::spawn_blocking(move || seal_rows(&key, &instance, &rows))
                .await
                .map_err(|_| StoreError::Closed)?
        };
        let now = self.now();
        let acc = account.as_str();
        let mut errors = batch.refused;
        let mut counts = Counts {
            failed: errors.len() as i64,
            ..Counts::default()
        };

        let mut tx = self.writer().begin().await?;
        // Every parameter of the look-ups below is positional on SQLite (see `sql::params`).
        let p = self.backend() == crate::Backend::Sqlite;
        // What the database knows of these addresses.
        let mut existing: HashMap<String, ExistingRow> = HashMap::new();
        let mut suppressed: HashMap<String, SuppressionReason> = HashMap::new();
        for chunk in sealed.chunks(500) {
            let sql = format!(
                "SELECT id, address_lookup, status, properties FROM contacts WHERE account_id = {} AND address_lookup IN ({})",
                params(p, 1, 1),
                params(p, 2, chunk.len())
            );
            let mut q = sqlx::query_as::<_, ExistingRow>(&sql).bind(acc);
            for s in chunk {
                q = q.bind(s.own.as_str());
            }
            for r in q.fetch_all(&mut *tx).await? {
                existing.insert(r.address_lookup.clone(), r);
            }
            let sql = format!(
                "SELECT address_lookup, reason FROM suppressions WHERE account_id = {} AND address_lookup IN ({})",
                params(p, 1, 1),
                params(p, 2, chunk.len() * 2)
            );
            let mut q = sqlx::query_as::<_, LookupReason>(&sql).bind(acc);
            for s in chunk {
                q = q.bind(s.own.as_str()).bind(s.instance.as_str());
            }
            for r in q.fetch_all(&mut *tx).await? {
                suppressed.insert(r.address_lookup, parse_column(&r.reason)?);
            }
        }
        let mut subs: HashMap<String, SubscriptionStatus> = HashMap::new();
        if let Some(list) = &list {
            let ids: Vec<&str> = existing.values().map(|e| e.id.as_str()).collect();
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT contact_id, status FROM subscriptions WHERE list_id = {} AND contact_id IN ({})",
                    params(p, 1, 1),
                    params(p, 2, chunk.len())
                );
                let mut q = sqlx::query_as::<_, SubStatus>(&sql).bind(list.id.as_str());
                for id in chunk {
                    q = q.bind(*id);
                }
                for r in q.fetch_all(&mut *tx).await? {
                    subs.insert(r.contact_id, parse_column(&r.status)?);
                }
            }
        }

        let consent_text = import.consent_text.as_deref().or(list
            .as_ref()
            .and_then(|l| l.settings.consent_text.as_deref()));
        let kinds = self.contact_properties(account).await?;
        let mut seen: HashMap<&str, u64> = HashMap::new();
        let mut new_contacts: Vec<(String, &Sealed)> = Vec::new();
        let mut subscribe: Vec<String> = Vec::new();
        let mut unsubscribe: Vec<String> = Vec::new();
        let mut updates: Vec<Update> = Vec::new();
        let skip = |errors: &mut Vec<RowError>, counts: &mut Counts, row: u64, reason: &str| {
            errors.push(RowError {
                row_number: row,
                column: "email".into(),
                reason: reason.to_owned(),
            });
            counts.skipped += 1;
        };
        for (row, s) in rows.iter().zip(sealed.iter()) {
            if let Some(first) = seen.get(s.own.as_str()) {
                let reason = format!("the address is also in row {first}");
                skip(&mut errors, &mut counts, row.row_number, &reason);
                continue;
            }
            seen.insert(s.own.as_str(), row.row_number);
            let refusal = suppressed
                .get(&s.own)
                .or_else(|| suppressed.get(&s.instance))
                .copied();
            let current = existing.get(&s.own);
            if import.mode == ImportMode::Unsubscribe {
                let Some(c) = current else {
                    counts.skipped += 1;
                    continue;
                };
                match subs.get(&c.id) {
                    Some(SubscriptionStatus::Subscribed | SubscriptionStatus::Pending) => {
                        unsubscribe.push(c.id.clone());
                        counts.updated += 1;
                    }
                    _ => counts.skipped += 1,
                }
                continue;
            }
            if let Some(reason) = refusal {
                skip(
                    &mut errors,
                    &mut counts,
                    row.row_number,
                    refusal_reason(reason),
                );
                continue;
            }
            match current {
                None => {
                    let cid = ContactId::generate(Timestamp(now)).as_str().to_owned();
                    if list.is_some() {
                        subscribe.push(cid.clone());
                    }
                    new_contacts.push((cid, s));
                    counts.created += 1;
                }
                Some(c) => {
                    let status: ContactStatus = parse_column(&c.status)?;
                    if !status.mailable() {
                        let reason = format!("the contact is {status}: not subscribed again");
                        skip(&mut errors, &mut counts, row.row_number, &reason);
                        continue;
                    }
                    let sub = subs.get(&c.id).copied();
                    if sub == Some(SubscriptionStatus::Unsubscribed) {
                        skip(
                            &mut errors,
                            &mut counts,
                            row.row_number,
                            "the contact unsubscribed from this list: not subscribed again",
                        );
                        continue;
                    }
                    let mut changed = false;
                    if list.is_some() && sub != Some(SubscriptionStatus::Subscribed) {
                        subscribe.push(c.id.clone());
                        changed = true;
                    }
                    if import.mode == ImportMode::Update {
                        let mut props =
                            crate::contacts::open_properties(&key, c.properties.clone(), &kinds)?;
                        props.extend(row.properties.clone());
                        let values = IndexedValue::all(&key, &props);
                        let name = match &row.name {
                            Some(_) => s.name.clone(),
                            None => None,
                        };
                        updates.push(Update {
                            id: c.id.clone(),
                            name,
                            properties: seal_properties(&key, &props),
                            values,
                        });
                        changed = true;
                    }
                    if changed {
                        counts.updated += 1;
                    } else {
                        counts.skipped += 1;
                    }
                }
            }
        }

        insert_rows(
            &mut tx,
            "INSERT INTO contacts (id, account_id, address_lookup, address, name, properties, status, created_at, updated_at)",
            9,
            "",
            &new_contacts,
            |q, (cid, s)| {
                q.bind(cid.as_str())
                    .bind(acc.to_owned())
                    .bind(s.own.as_str())
                    .bind(s.address.clone())
                    .bind(s.name.clone())
                    .bind(s.properties.clone())
                    .bind(ContactStatus::Active.as_str())
                    .bind(now)
                    .bind(now)
            },
        )
        .await?;
        let values: Vec<(&str, &IndexedValue)> = new_contacts
            .iter()
            .flat_map(|(cid, s)| s.values.iter().map(move |v| (cid.as_str(), v)))
            .collect();
        insert_values(&mut tx, acc, &values).await?;
        for Update {
            id: cid,
            name,
            properties: props,
            values,
        } in &updates
        {
            sqlx::query(
                "UPDATE contacts SET name = COALESCE($1, name), properties = $2, updated_at = $3 WHERE id = $4 AND account_id = $5",
            )
            .bind(name.clone())
            .bind(props.clone())
            .bind(now)
            .bind(cid.as_str())
            .bind(acc)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM contact_values WHERE contact_id = $1")
                .bind(cid.as_str())
                .execute(&mut *tx)
                .await?;
            let values: Vec<(&str, &IndexedValue)> =
                values.iter().map(|v| (cid.as_str(), v)).collect();
            insert_values(&mut tx, acc, &values).await?;
        }
        if let Some(list) = &list {
            let lid = list.id.as_str();
            for (ids, status, action) in [
                (
                    &subscribe,
                    SubscriptionStatus::Subscribed,
                    ConsentAction::Given,
                ),
                (
                    &unsubscribe,
                    SubscriptionStatus::Unsubscribed,
                    ConsentAction::Withdrawn,
                ),
            ] {
                insert_rows(
                    &mut tx,
                    "INSERT INTO subscriptions (list_id, contact_id, account_id, status, updated_at)",
                    5,
                    "ON CONFLICT (list_id, contact_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
                    ids,
                    |q, cid| {
                        q.bind(lid.to_owned())
                            .bind(cid.as_str())
                            .bind(acc.to_owned())
                            .bind(status.as_str())
                            .bind(now)
                    },
                )
                .await?;
                let records: Vec<ConsentInsert> = ids
                    .iter()
                    .map(|cid| ConsentInsert {
                        contact_id: cid,
                        list_id: lid,
                        action,
                        method: ConsentMethod::Import,
                        text: (action == ConsentAction::Given)
                            .then_some(consent_text)
                            .flatten(),
                        source: None,
                    })
                    .collect();
                insert_consent(&mut tx, acc, &records, now).await?;
            }
        }
        insert_rows(
            &mut tx,
            "INSERT INTO import_errors (import_id, account_id, row_number, column_name, reason)",
            5,
            "ON CONFLICT (import_id, row_number, column_name) DO NOTHING",
            &errors,
            |q, e| {
                q.bind(id.as_str().to_owned())
                    .bind(acc.to_owned())
                    .bind(e.row_number as i64)
                    .bind(e.column.as_str())
                    .bind(e.reason.as_str())
            },
        )
        .await?;
        let advanced = sqlx::query(
            "UPDATE imports SET processed = $1, created = created + $2, updated = updated + $3, skipped = skipped + $4, \
             failed = failed + $5, lease_until = $6, updated_at = $7 \
             WHERE id = $8 AND lease_owner = $9 AND state = 'running' AND processed < $1",
        )
        .bind(batch.through as i64)
        .bind(counts.created)
        .bind(counts.updated)
        .bind(counts.skipped)
        .bind(counts.failed)
        .bind(now + lease_ms)
        .bind(now)
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if advanced.rows_affected() == 0 {
            // Cancelled, taken over, or already written: nothing of this batch counts.
            return Err(StoreError::NotFound("running import"));
        }
        tx.commit().await?;
        Ok(())
    }
}
