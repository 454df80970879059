//! Operations on accounts, API keys and sending domains. The HTTP API and the admin CLI both
//! call these, so a rule (the password rule, a domain's key and records) holds the same way
//! whichever door an operator or user comes through.

pub mod campaigns;
pub mod contacts;
pub mod deletion;
pub mod dkim;
pub mod export;
pub mod health;
pub mod inactivity;
pub mod notices;
pub mod policy;
pub mod reputation;
pub mod retention;
pub mod rights;
pub mod support;
pub mod templates;
pub mod tls_reports;

pub use dkim::{records, verify_domain};

/// Runs `job` now and then every `period` (real time), for `serve`: a failure is logged as
/// `what` failed and the next run comes all the same.
pub fn every<F, Fut>(
    period: std::time::Duration,
    what: &'static str,
    mut job: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), AdminError>> + Send,
{
    tokio::spawn(async move {
        loop {
            if let Err(e) = job().await {
                tracing::warn!(error = %e, "{what} failed");
            }
            tokio::time::sleep(period).await;
        }
    })
}
use kuvert_core::EmailAddress;
use kuvert_core::account::{CompanyProfile, Plan, Region, Role, UserProfile};
use kuvert_core::address::{AddressError, is_host_name};
use kuvert_core::apikey::{NewApiKey, Scope};
use kuvert_core::domain::{DkimAlgorithm, DnsRecord, DomainSettings};
use kuvert_core::id::AccountId;
use kuvert_core::password::{self, WeakPassword};
use kuvert_store::{
    Account, ApiKey, Domain, NewAccount, NewDomain, NewUser, Store, StoreError, User,
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    #[error(transparent)]
    WeakPassword(#[from] WeakPassword),
    #[error("invalid e-mail address: {0}")]
    InvalidEmail(#[from] AddressError),
    #[error("{0:?} is not a valid domain name")]
    InvalidDomain(String),
    #[error("the password is wrong")]
    WrongPassword,
    #[error(transparent)]
    PolicyTooSoon(#[from] kuvert_core::policy::TooSoon),
    #[error("the account has not granted support access (or the grant has expired)")]
    NoSupportGrant,
    #[error("a support grant lasts 1 to {max} hours, not {0}", max = support::MAX_GRANT_HOURS)]
    GrantHours(u32),
    #[error("the notice could not be sent: {0}")]
    Notice(String),
    #[error("the export could not be written: {0}")]
    Export(String),
    #[error("the account has its plan's {0} sending domains already")]
    DomainLimit(u32),
    #[error("the import failed: {0}")]
    Import(String),
    #[error(
        "the list has no confirm_from: a double opt-in list needs a sender for its confirmation mail"
    )]
    NoConfirmationSender,
    #[error("the confirmation mail was refused: {0}")]
    ConfirmationMail(kuvert_submit::AcceptError),
    #[error("{message}")]
    InvalidName {
        field: &'static str,
        message: String,
    },
    /// A template version that cannot be saved (its MJML or Handlebars).
    #[error(transparent)]
    Template(kuvert_template::TemplateError),
    /// A template that cannot be filled in or sent (a missing variable, an unknown version).
    #[error(transparent)]
    Render(kuvert_submit::AcceptError),
    /// A blocking task failed (a bug, logged).
    #[error("internal error: {0}")]
    Internal(String),
    /// A DKIM key that cannot be made now (one waits for its record, say).
    #[error("{0}")]
    DkimKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct AccountRequest {
    pub email: String,
    pub password: String,
    pub plan: Plan,
    pub region: Region,
    pub company: CompanyProfile,
    pub owner: UserProfile,
}

/// Creates an account and its owner, after the password rule (at least 8 characters, with a
/// letter, a digit and a special character).
pub async fn create_account(
    store: &Store,
    req: AccountRequest,
) -> Result<(Account, User), AdminError> {
    let email = EmailAddress::parse(&req.email)?;
    let hash = password::hash(&req.password)?;
    Ok(store
        .create_account(NewAccount {
            plan: req.plan,
            region: req.region,
            profile: req.company,
            owner: NewUser {
                email: email.to_string(),
                password_hash: hash,
                role: Role::Owner,
                profile: req.owner,
            },
        })
        .await?)
}

/// A new key; the secret is returned here and never again.
pub async fn create_key(
    store: &Store,
    account: &AccountId,
    name: &str,
    scope: Scope,
) -> Result<(ApiKey, String), AdminError> {
    let new = NewApiKey::generate();
    let key = store.create_key(account, name, scope, &new).await?;
    Ok((key, new.secret))
}

/// A send-scoped key bound to source networks (an SMTP-IP credential): clients connecting
/// from them submit over SMTP without AUTH. The secret also works as an ordinary key.
pub async fn create_smtp_ip_key(
    store: &Store,
    account: &AccountId,
    name: &str,
    networks: &[kuvert_core::net::IpNetwork],
) -> Result<(ApiKey, String), AdminError> {
    let (key, secret) = create_key(store, account, name, Scope::Send).await?;
    store.bind_key_networks(&key.id, networks).await?;
    Ok((key, secret))
}

/// Adds a sending domain with a fresh RSA-2048 DKIM key.
pub async fn add_domain(
    store: &Store,
    account: &AccountId,
    name: &str,
    settings: &DomainSettings,
    sandbox: bool,
) -> Result<(Domain, Vec<DnsRecord>), AdminError> {
    add_domain_within(store, account, name, settings, sandbox, None).await
}

/// Adds a sending domain with a fresh RSA-2048 DKIM key. `max_domains` is the plan's limit
/// when an account asks (the operator's CLI has none).
pub async fn add_domain_within(
    store: &Store,
    account: &AccountId,
    name: &str,
    settings: &DomainSettings,
    sandbox: bool,
    max_domains: Option<u32>,
) -> Result<(Domain, Vec<DnsRecord>), AdminError> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if !is_host_name(&name) {
        return Err(AdminError::InvalidDomain(name));
    }
    if let Some(max) = max_domains
        && store.list_domains(account).await?.len() >= max as usize
    {
        return Err(AdminError::DomainLimit(max));
    }
    let key = dkim::generate(DkimAlgorithm::Rsa).await;
    let domain = store
        .add_domain(
            account,
            NewDomain {
                name,
                selector: settings.dkim_selector.clone(),
                dkim: key,
                sandbox,
            },
        )
        .await?;
    let records = records(store, &domain, settings).await?;
    Ok((domain, records))
}
