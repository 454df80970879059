//! Kuvert's storage: the only crate that speaks SQL. One [`Store`] API over SQLite (embedded,
//! the default) and PostgreSQL (several nodes), through sqlx's `Any` driver so that every
//! query is written once. Personal values are sealed here, on their way in and out.

mod accounts;
mod audit;
mod campaigns;
mod captures;
mod closure;
mod commit;
mod contacts;
mod domains;
mod events;
mod imports;
mod keys;
mod messages;
mod mta_sts;
mod optin;
mod policies;
mod privacy;
mod queue;
mod reports;
mod retention;
pub mod schema;
pub mod seal;
mod segments;
mod sql;
mod stats;
mod suppressions;
mod templates;
mod webhooks;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kuvert_core::Clock;
use kuvert_core::id::AccountId;
use kuvert_core::lookup::LookupKey;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use accounts::{Account, AccountState, NewAccount, NewUser, SendingContext, User};
pub use audit::{AuditEntry, SupportGrant};
pub use campaigns::{Campaign, CampaignPhase, CampaignProgress, CampaignSettings, CampaignWork};
pub use captures::Capture;
pub use closure::{ACCOUNT_TABLES, InactiveAccount, NO_ACCOUNT_DATA};
pub use commit::CommitStats;
pub use contacts::{
    ConsentInput, ConsentRecord, Contact, ContactPage, ContactPatch, EngagementSummary, Erasure,
    List, ListSettings, NewContact, Subscription, refusal_reason,
};
pub use domains::{DkimPrivate, Domain, NewDomain};
pub use events::{EventFilter, EventPage, EventRecord};
pub use imports::{Import, ImportBatch, ImportRow, RowError};
pub use keys::{ApiKey, KeyAuth};
pub use messages::{
    CampaignCopy, MessageView, NewMessage, NewRecipient, QUEUE_DEPTH_SQL, RecipientView,
};
pub use mta_sts::{CachedPolicy, TlsSessions};
pub use optin::{Confirmed, MAX_UNANSWERED, OptInAsk, OptInRequest, RESEND_AFTER_MS};
pub use privacy::PrivacyRequest;
pub use queue::{Lease, Outcome, OutcomeRecord, Outgoing};
pub use reports::{Engagement, RecipientRef, Report, Unsubscribed};
pub use retention::{PurgeCounts, PurgeRun, RetentionPolicy};
pub use segments::Segment;
pub use stats::{HourlyCounts, METRICS, StatsQuery, TagSeen};
pub use suppressions::{Suppression, SuppressionPage};
pub use templates::{MAX_TEMPLATES, MAX_VERSIONS, NewVersion, Template, Version, VersionInfo};
pub use webhooks::{AttemptOutcome, Delivery, NewWebhook, Webhook};

use seal::{AccountKey, MasterKey};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("sealed data cannot be opened: {0}")]
    Sealing(String),
    #[error("the data key of this account has been destroyed")]
    KeyDestroyed,
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Filter(#[from] kuvert_core::segment::FilterError),
    #[error("{0}")]
    Limit(&'static str),
    /// The thing is in use and cannot go (the active version of a template, say).
    #[error("{0}")]
    InUse(&'static str),
    #[error(transparent)]
    QuotaExceeded(#[from] kuvert_core::quota::QuotaExceeded),
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict(what)`.
    fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |e| match &e {
            sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation => {
                StoreError::Conflict(what)
            }
            _ => StoreError::Database(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct StoreOptions {
    /// `sqlite://PATH` or `postgres://...`.
    pub url: String,
    pub master_key: [u8; 32],
    pub clock: Arc<dyn Clock>,
}

impl StoreOptions {
    /// The embedded database inside a data directory.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("kuvert.db").display())
    }
}

struct Inner {
    pool: AnyPool,
    /// Where writes go: on SQLite one connection of its own, on PostgreSQL the pool.
    writer: AnyPool,
    backend: Backend,
    master: MasterKey,
    lookup: LookupKey,
    verp: LookupKey,
    tracking: LookupKey,
    /// Derives each account's signing key of the endpoints registered through Mailgun's API.
    mailgun_webhooks: LookupKey,
    clock: Arc<dyn Clock>,
    /// Unwrapped data keys, with when (store clock, ms) each was last read from the database.
    account_keys: Mutex<HashMap<AccountId, (Arc<AccountKey>, i64)>>,
    committer: commit::Committer,
    /// Counts this process's commits that appended events: the live log waits on it rather
    /// than polling the database (events written by other nodes are found by a slow poll).
    events: tokio::sync::watch::Sender<u64>,
}

/// A cached data key is trusted this long, then read again: an account deleted by another
/// process (the CLI, another node) is unreadable here within this time.
pub const KEY_RECHECK_MS: i64 = 5_000;

/// Cheap to clone; all clones share one pool and one group committer.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

impl Store {
    pub async fn open(opts: StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if opts.url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if opts.url.starts_with("postgres:") || opts.url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(format!(
                "{:?}: expected sqlite://PATH or postgres://...",
                opts.url
            )));
        };
        let connect = |max| {
            AnyPoolOptions::new()
                .max_connections(max)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL lets readers run beside the writer; FULL sync makes a
                            // commit durable before it returns, which every acknowledgement
                            // relies on. Secure delete overwrites what is deleted, so that an
                            // erased address does not linger in free pages of the file.
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA secure_delete = ON",
                                // 32 MiB of pages a connection (the default is 2): bulk
                                // writes to random keys (an import's address hashes) read
                                // back far fewer pages.
                                "PRAGMA cache_size = -32768",
                                "PRAGMA synchronous = FULL",
                                "PRAGMA busy_timeout = 10000",
                                "PRAGMA foreign_keys = ON",
                            ] {
                                sqlx::Executor::execute(&mut *conn, pragma).await?;
                            }
                        }
                        Ok(())
                    })
                })
                .connect(&opts.url)
        };
        let (pool, writer) = match backend {
            // SQLite has one writer at a time; writers on several connections would wait for
            // its lock by sleeping and polling (the busy timeout), which under load costs
            // more than the writes. So every write goes through one connection, and writers
            // queue for it in order, awake.
            Backend::Sqlite => (connect(4).await?, connect(1).await?),
            Backend::Postgres => {
                let pool = connect(16).await?;
                (pool.clone(), pool)
            }
        };
        let now = opts.clock.now().millis();
        let master = MasterKey::new(&opts.master_key);
        {
            let mut conn = writer.acquire().await?;
            schema::migrate(&mut conn, backend, now, &master).await?;
        }
        let committer = commit::Committer::start(writer.clone());
        Ok(Self(Arc::new(Inner {
            pool,
            writer,
            backend,
            master,
            lookup: LookupKey::derive(&opts.master_key, "lookup"),
            verp: LookupKey::derive(&opts.master_key, "verp"),
            tracking: LookupKey::derive(&opts.master_key, "tracking"),
            mailgun_webhooks: LookupKey::derive(&opts.master_key, "mailgun-webhooks"),
            clock: opts.clock,
            account_keys: Mutex::new(HashMap::new()),
            committer,
            events: tokio::sync::watch::channel(0).0,
        })))
    }

    pub fn backend(&self) -> Backend {
        self.0.backend
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.clock
    }

    fn pool(&self) -> &AnyPool {
        &self.0.pool
    }

    fn writer(&self) -> &AnyPool {
        &self.0.writer
    }

    fn now(&self) -> i64 {
        self.0.clock.now().millis()
    }

    /// Changes after each commit of this process that appended events.
    pub fn event_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.events.subscribe()
    }

    pub(crate) fn events_written(&self) {
        self.0.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ends a transaction that appended events: their statistics, the commit, and a wake-up
    /// for the live logs.
    pub(crate) async fn commit_events(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        rollup: stats::Rollup,
    ) -> Result<()> {
        rollup.apply(&mut tx).await?;
        tx.commit().await?;
        self.events_written();
        Ok(())
    }

    /// The keyed hash under which a personal value (address, e-mail) is searched.
    pub fn lookup_hash(&self, value: &str) -> String {
        self.0.lookup.hash(value)
    }

    /// The key of the return paths' MACs (`kuvert_mail::verp`), the same on every node.
    pub fn verp_key(&self) -> &LookupKey {
        &self.0.verp
    }

    /// The account's signing key of the endpoints registered through Mailgun's API: one key
    /// an account, as Mailgun's receivers expect (`MAILGUN_WEBHOOK_SIGNING_KEY`), the same
    /// on every node, kept nowhere.
    pub fn mailgun_signing_key(&self, account: &AccountId) -> String {
        self.0.mailgun_webhooks.mac(account.as_str().as_bytes())
    }

    /// The key of the tracking links' MACs (`kuvert_core::tracking`).
    pub fn tracking_key(&self) -> &LookupKey {
        &self.0.tracking
    }

    /// The account's data key, unwrapped and cached for [`KEY_RECHECK_MS`]: then the
    /// database is asked again whether it still exists.
    async fn account_key(&self, account: &AccountId) -> Result<Arc<AccountKey>> {
        let now = self.now();
        if let Some((k, at)) = self
            .0
            .account_keys
            .lock()
            .expect("key cache lock")
            .get(account)
            && (0..KEY_RECHECK_MS).contains(&(now - at))
        {
            return Ok(k.clone());
        }
        let wrapped: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT data_key FROM accounts WHERE id = $1")
                .bind(account.as_str())
                .fetch_optional(self.pool())
                .await?;
        let Some(Some(wrapped)) = wrapped else {
            self.0
                .account_keys
                .lock()
                .expect("key cache lock")
                .remove(account);
            return Err(match wrapped {
                None => StoreError::NotFound("account"),
                Some(_) => StoreError::KeyDestroyed,
            });
        };
        let key = Arc::new(self.0.master.unwrap(account.as_str(), &wrapped)?);
        self.0
            .account_keys
            .lock()
            .expect("key cache lock")
            .insert(account.clone(), (key.clone(), now));
        Ok(key)
    }

    /// Waits for queued commits, then closes the pool: for graceful shutdown.
    pub async fn close(&self) {
        self.0.committer.shutdown().await;
        self.0.writer.close().await;
        self.0.pool.close().await;
    }
}

impl Store {
    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}
