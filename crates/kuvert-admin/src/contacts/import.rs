//! The import job: an upload in sealed chunks is scanned once (rows counted, columns
//! mapped, sensitive-looking values looked for), then, once nothing waits for review, read
//! again and written in batches. Parsing and checking run on the blocking threads; each batch
//! is one transaction with the import's counters, so progress is visible while it runs and a
//! restart resumes after the last committed batch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kuvert_core::EmailAddress;
use kuvert_core::contact::{ImportState, MAX_VALUE_LEN, Properties, PropertyKind, PropertyValue};
use kuvert_core::id::{AccountId, ImportId};
use kuvert_core::sensitive::{ColumnScan, Finding};
use kuvert_store::{ImportBatch, ImportRow, RowError, Store, StoreError};
use serde::Serialize;

use super::csv::Records;
use crate::AdminError;

/// Bytes of the upload per sealed chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Rows per transaction.
pub const BATCH_ROWS: usize = 10_000;
/// A claimed import is ours this long without a renewal.
const LEASE_MS: i64 = 60_000;

/// Header names read as the address column, and as the name column.
const ADDRESS_HEADERS: &[&str] = &["email", "e-mail", "email_address", "address", "mail"];
const NAME_HEADERS: &[&str] = &["name", "full_name"];

/// What the scan found about one column: sensitive-looking values, or a header that is no
/// defined property. Either makes the import wait for review.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ColumnFinding {
    pub column: String,
    /// `sensitive` or `unknown_column`.
    pub problem: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<Finding>,
}

/// A review's answer to an import's findings: the columns to drop as the import reads
/// header names (trimmed, lower case), and the findings it leaves unanswered, each as
/// "column (why)". An unknown column must be dropped; a sensitive one is dropped or
/// accepted (`accept_sensitive`: the HTTP confirmation is that acceptance).
pub struct Review {
    pub dropped: Vec<String>,
    pub unanswered: Vec<String>,
}

impl Review {
    pub fn of(findings: &serde_json::Value, drop: &[String], accept_sensitive: bool) -> Self {
        let dropped: Vec<String> = drop.iter().map(|c| c.trim().to_lowercase()).collect();
        let unanswered = findings
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let column = f["column"].as_str().unwrap_or_default();
                let sensitive = f["problem"] == "sensitive";
                let answered =
                    dropped.iter().any(|d| d == column) || (sensitive && accept_sensitive);
                (!answered).then(|| {
                    let why = if sensitive {
                        f["sensitive"]["kind"].as_str().unwrap_or("sensitive")
                    } else {
                        "no such property"
                    };
                    format!("{column} ({why})")
                })
            })
            .collect();
        Self {
            dropped,
            unanswered,
        }
    }
}

/// How the header maps: the address column, the name column, and properties by column.
#[derive(Clone, Debug)]
struct Mapping {
    address: usize,
    name: Option<usize>,
    properties: Vec<(usize, String, PropertyKind)>,
    headers: Vec<String>,
}

impl Mapping {
    fn new(
        header: &[&str],
        kinds: &HashMap<String, PropertyKind>,
        dropped: &HashSet<String>,
    ) -> Result<(Self, Vec<String>), String> {
        let headers: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
        let address = headers
            .iter()
            .position(|h| ADDRESS_HEADERS.contains(&h.as_str()))
            .ok_or("the header has no address column (email, e-mail, email_address or address)")?;
        let name = headers
            .iter()
            .position(|h| NAME_HEADERS.contains(&h.as_str()));
        let mut properties = Vec::new();
        let mut unknown = Vec::new();
        let mut seen = HashSet::new();
        for (i, h) in headers.iter().enumerate() {
            if i == address || Some(i) == name || dropped.contains(h) || h.is_empty() {
                continue;
            }
            if !seen.insert(h.clone()) {
                return Err(format!("the column {h:?} appears twice"));
            }
            match kinds.get(h) {
                Some(k) => properties.push((i, h.clone(), *k)),
                None => unknown.push(h.clone()),
            }
        }
        Ok((
            Self {
                address,
                name,
                properties,
                headers,
            },
            unknown,
        ))
    }

    /// A data row checked: the row, or why it is refused (column, reason).
    fn row(&self, number: u64, fields: &[&str]) -> Result<ImportRow, RowError> {
        let refuse = |column: &str, reason: String| RowError {
            row_number: number,
            column: column.to_owned(),
            reason,
        };
        let cell = |i: usize| fields.get(i).copied().unwrap_or("");
        let address_col = &self.headers[self.address];
        let address = EmailAddress::parse(cell(self.address))
            .map_err(|e| refuse(address_col, format!("invalid address: {e}")))?;
        let name = match self.name.map(cell).map(str::trim) {
            Some(n) if n.len() > MAX_VALUE_LEN => {
                return Err(refuse(
                    &self.headers[self.name.unwrap_or_default()],
                    "longer than 1,000 bytes".into(),
                ));
            }
            Some("") | None => None,
            Some(n) => Some(n.to_owned()),
        };
        let mut properties = Properties::new();
        for (i, prop, kind) in &self.properties {
            match PropertyValue::parse_text(*kind, cell(*i)) {
                Ok(Some(v)) => {
                    properties.insert(prop.clone(), v);
                }
                Ok(None) => {}
                Err(e) => return Err(refuse(prop, e.to_string())),
            }
        }
        Ok(ImportRow {
            row_number: number,
            address: address.as_str().to_owned(),
            name,
            properties,
        })
    }
}

/// Runs imports: claims one whose lease is free, works it to its end, and looks again.
pub struct Importer {
    store: Store,
    /// Turns true when the process stops: the import in hand stops between chunks.
    stop: tokio::sync::watch::Receiver<bool>,
    /// This process's lease token.
    owner: String,
    wake: Arc<tokio::sync::Notify>,
}

impl Importer {
    pub fn new(store: Store, node: &str, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            store,
            stop,
            // The random part of an id makes the token this process's own.
            owner: format!("{node}.{}", ImportId::generate(kuvert_core::Timestamp(0))),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Wakes the runner after an upload.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Works imports until `stop` turns true; looks for one at each wake-up and every
    /// `poll` (imports left by a node that stopped).
    pub async fn run(self, poll: Duration) {
        let mut stop = self.stop.clone();
        loop {
            if *stop.borrow() {
                return;
            }
            match self.store.claim_import(&self.owner, LEASE_MS).await {
                Ok(Some((account, id, _))) => {
                    if let Err(e) = self.work(&account, &id).await {
                        tracing::warn!(import = %id, error = %e, "import stopped");
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "looking for imports failed"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Claims this import and works it, if no one else holds it; false if someone does.
    pub async fn run_one(&self, account: &AccountId, id: &ImportId) -> Result<bool, AdminError> {
        if !self
            .store
            .claim_import_id(id, &self.owner, LEASE_MS)
            .await?
        {
            return Ok(false);
        }
        self.work(account, id).await?;
        Ok(true)
    }

    /// Works one claimed import: its scan, then, when nothing waits for review, its rows.
    pub async fn work(&self, account: &AccountId, id: &ImportId) -> Result<(), AdminError> {
        let import = self.store.import(account, id.as_str()).await?;
        let result = match import.state {
            ImportState::Scanning => self.scan(account, id).await,
            ImportState::Running => self.write(account, id, import.processed).await,
            _ => return Ok(()),
        };
        match result {
            Ok(()) => Ok(()),
            // Cancelled or taken over meanwhile: nothing to record.
            Err(AdminError::Store(StoreError::NotFound(_))) => Ok(()),
            Err(AdminError::Import(reason)) => {
                self.store.finish_import(account, id, Some(&reason)).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the upload's chunks in order, handing each to `each` on a blocking thread with
    /// the parser; stops early when `each` says so.
    async fn read<S: Send + 'static>(
        &self,
        account: &AccountId,
        id: &ImportId,
        state: S,
        each: fn(&mut S, u64, &[&str]),
    ) -> Result<(Records, S), AdminError> {
        let mut parser = Some((Records::new(), state));
        let mut seq = 0i64;
        loop {
            let chunk = self.store.import_chunk(account, id, seq).await?;
            let (records, state) = parser.take().expect("the parser is back");
            let done = chunk.is_none();
            let (records, state) = parse_chunk(records, state, chunk, each).await?;
            if done {
                return Ok((records, state));
            }
            parser = Some((records, state));
            seq += 1;
            if seq % 16 == 0 && !self.store.renew_import(id, &self.owner, LEASE_MS).await? {
                return Err(StoreError::NotFound("running import").into());
            }
        }
    }

    async fn scan(&self, account: &AccountId, id: &ImportId) -> Result<(), AdminError> {
        struct Scan {
            header: Vec<String>,
            columns: Vec<ColumnScan>,
            rows: u64,
        }
        fn each(s: &mut Scan, n: u64, fields: &[&str]) {
            if n == 0 {
                s.header = fields.iter().map(|h| h.trim().to_lowercase()).collect();
                s.columns = (0..fields.len()).map(|_| ColumnScan::new()).collect();
                return;
            }
            s.rows += 1;
            for (scan, value) in s.columns.iter_mut().zip(fields) {
                scan.observe(value);
            }
        }
        let (_, scan) = self
            .read(
                account,
                id,
                Scan {
                    header: Vec::new(),
                    columns: Vec::new(),
                    rows: 0,
                },
                each,
            )
            .await?;
        if scan.header.is_empty() {
            return Err(AdminError::Import("the file is empty".into()));
        }
        let kinds = self.store.contact_properties(account).await?;
        let header: Vec<&str> = scan.header.iter().map(String::as_str).collect();
        let (mapping, unknown) =
            Mapping::new(&header, &kinds, &HashSet::new()).map_err(AdminError::Import)?;
        let mut findings = Vec::new();
        for (i, scan) in scan.columns.iter().enumerate() {
            if i == mapping.address {
                continue;
            }
            if let Some(f) = scan.finding() {
                findings.push(ColumnFinding {
                    column: mapping.headers[i].clone(),
                    problem: "sensitive".into(),
                    sensitive: Some(f),
                });
            }
        }
        for column in unknown {
            if !findings.iter().any(|f| f.column == column) {
                findings.push(ColumnFinding {
                    column,
                    problem: "unknown_column".into(),
                    sensitive: None,
                });
            }
        }
        let findings = serde_json::to_value(&findings).unwrap_or_default();
        self.store
            .import_scanned(account, id, scan.rows, &findings)
            .await?;
        // Without findings it runs now.
        let import = self.store.import(account, id.as_str()).await?;
        if import.state == ImportState::Running {
            self.write(account, id, 0).await?;
        }
        Ok(())
    }

    async fn write(&self, account: &AccountId, id: &ImportId, done: u64) -> Result<(), AdminError> {
        let import = self.store.import(account, id.as_str()).await?;
        let kinds = self.store.contact_properties(account).await?;
        let dropped: HashSet<String> = import.dropped.iter().cloned().collect();
        // Unknown columns were reviewed: confirming drops them.
        struct Write {
            kinds: HashMap<String, PropertyKind>,
            dropped: HashSet<String>,
            mapping: Option<Result<Mapping, String>>,
            done: u64,
            batches: Vec<ImportBatch>,
            current: ImportBatch,
        }
        fn each(w: &mut Write, n: u64, fields: &[&str]) {
            if n == 0 {
                w.mapping = Some(Mapping::new(fields, &w.kinds, &w.dropped).map(|(m, _unknown)| m));
                return;
            }
            if n <= w.done {
                return;
            }
            let Some(Ok(mapping)) = &w.mapping else {
                return;
            };
            match mapping.row(n, fields) {
                Ok(row) => w.current.rows.push(row),
                Err(e) => w.current.refused.push(e),
            }
            w.current.through = n;
            if w.current.rows.len() + w.current.refused.len() >= BATCH_ROWS {
                w.batches.push(std::mem::take(&mut w.current));
            }
        }
        // Reading and writing alternate chunk by chunk: at most a chunk's batches wait.
        let mut records = Records::new();
        let mut state = Write {
            kinds,
            dropped,
            mapping: None,
            done,
            batches: Vec::new(),
            current: ImportBatch::default(),
        };
        let mut seq = 0i64;
        let mut written = 0u64;
        loop {
            let chunk = self.store.import_chunk(account, id, seq).await?;
            let last = chunk.is_none();
            let (r, mut s) = parse_chunk(records, state, chunk, each).await?;
            if let Some(Err(e)) = &s.mapping {
                return Err(AdminError::Import(e.clone()));
            }
            if last && (!s.current.rows.is_empty() || !s.current.refused.is_empty()) {
                s.batches.push(std::mem::take(&mut s.current));
            }
            for batch in std::mem::take(&mut s.batches) {
                self.store
                    .apply_import_batch(account, id, &self.owner, LEASE_MS, batch)
                    .await?;
                written += 1;
                // After batches 1, 2, 4, 8, ...: the tables' statistics follow their growth.
                if written.is_power_of_two() {
                    self.store.refresh_contact_statistics().await?;
                }
            }
            (records, state) = (r, s);
            if last {
                break;
            }
            if *self.stop.borrow() {
                // Left for the next start, which resumes after the last batch.
                self.store.release_import(id, &self.owner).await?;
                return Ok(());
            }
            seq += 1;
        }
        self.store.finish_import(account, id, None).await?;
        Ok(())
    }
}

/// Parses one chunk of the upload (or, given none, the end of it) on a blocking thread,
/// handing each record completed to `each`; the parser and its state come back.
async fn parse_chunk<S: Send + 'static>(
    mut records: Records,
    mut state: S,
    chunk: Option<Vec<u8>>,
    each: fn(&mut S, u64, &[&str]),
) -> Result<(Records, S), AdminError> {
    let (records, state, result) = tokio::task::spawn_blocking(move || {
        let mut call = |n: u64, f: &[&str]| each(&mut state, n, f);
        let result = match &chunk {
            Some(bytes) => records.feed(bytes, &mut call),
            None => records.finish(&mut call),
        };
        (records, state, result)
    })
    .await
    .map_err(|_| AdminError::Import("the import's reader stopped".into()))?;
    result.map_err(|e| AdminError::Import(e.to_string()))?;
    Ok((records, state))
}

/// Stores an upload in chunks as it arrives, then leaves it for the runner.
pub struct Upload<'a> {
    store: &'a Store,
    account: AccountId,
    id: ImportId,
    buf: Vec<u8>,
    seq: i64,
    bytes: u64,
    max_bytes: u64,
}

impl<'a> Upload<'a> {
    pub fn new(store: &'a Store, account: AccountId, id: ImportId, max_bytes: u64) -> Self {
        Self {
            store,
            account,
            id,
            buf: Vec::with_capacity(CHUNK_BYTES),
            seq: 0,
            bytes: 0,
            max_bytes,
        }
    }

    pub async fn push(&mut self, mut data: &[u8]) -> Result<(), AdminError> {
        self.bytes += data.len() as u64;
        if self.bytes > self.max_bytes {
            return Err(AdminError::Import(format!(
                "the file is larger than {} bytes",
                self.max_bytes
            )));
        }
        while !data.is_empty() {
            let take = (CHUNK_BYTES - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), AdminError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.store
            .add_import_chunk(&self.account, &self.id, self.seq, &self.buf)
            .await?;
        self.seq += 1;
        self.buf.clear();
        Ok(())
    }

    /// The whole upload is stored: the import goes to its scan.
    pub async fn finish(mut self) -> Result<ImportId, AdminError> {
        self.flush().await?;
        self.store.import_uploaded(&self.account, &self.id).await?;
        Ok(self.id)
    }

    /// The upload broke off: the import ends as failed, its chunks go.
    pub async fn abandon(self, why: &str) {
        if let Err(e) = self
            .store
            .finish_import(&self.account, &self.id, Some(why))
            .await
        {
            tracing::warn!(import = %self.id, error = %e, "an abandoned upload was not cleared");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Review;

    #[test]
    fn a_review_drops_columns_by_the_names_the_import_reads() {
        let findings = serde_json::json!([
            {"column": "card", "problem": "sensitive", "sensitive": {"kind": "card_number"}},
            {"column": "email_hash", "problem": "unknown_column"}
        ]);
        let r = Review::of(&findings, &[" Email_Hash ".to_owned()], false);
        assert_eq!(r.dropped, ["email_hash"]);
        assert_eq!(r.unanswered, ["card (card_number)"]);
        let r = Review::of(&findings, &["EMAIL_HASH".to_owned()], true);
        assert!(r.unanswered.is_empty(), "{:?}", r.unanswered);
        let r = Review::of(&findings, &[], true);
        assert_eq!(r.unanswered, ["email_hash (no such property)"]);
    }
}
