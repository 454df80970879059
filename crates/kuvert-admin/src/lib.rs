//! Operations on accounts, API keys and sending domains. The HTTP API and the admin CLI both
//! call these, so a rule (the password rule, a domain's key and records) holds the same way
//! whichever door an operator or user comes through.

pub mod campaigns;
pub mod contacts;
pub mod deletion;
pub mod export;
pub mod inactivity;
pub mod notices;
pub mod policy;
pub mod retention;
pub mod rights;
pub mod support;
pub mod templates;

use kuvert_core::EmailAddress;
use kuvert_core::account::{CompanyProfile, Plan, Region, Role, UserProfile};
use kuvert_core::address::{AddressError, is_host_name};
use kuvert_core::apikey::{NewApiKey, Scope};
use kuvert_core::domain::{DnsRecord, DomainSettings, dns_records, generate_dkim_rsa};
use kuvert_core::id::AccountId;
use kuvert_core::password::{self, WeakPassword};
use kuvert_dns::{Dns, RecordCheck, all_required_pass};
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

/// The records the owner of `domain` must publish.
pub fn records(domain: &Domain, settings: &DomainSettings) -> Vec<DnsRecord> {
    dns_records(
        &domain.name,
        &domain.selector,
        &domain.dkim_public,
        settings,
    )
}

/// Adds a sending domain with a fresh RSA-2048 DKIM key.
/// Adds a sending domain with a new DKIM key. `max_domains` is the plan's limit when an
/// account asks (the operator's CLI has none).
pub async fn add_domain(
    store: &Store,
    account: &AccountId,
    name: &str,
    settings: &DomainSettings,
    sandbox: bool,
) -> Result<(Domain, Vec<DnsRecord>), AdminError> {
    add_domain_within(store, account, name, settings, sandbox, None).await
}

/// Key generations at once, in the whole process: each takes a core for a good fraction of
/// a second, so a burst of requests waits in line rather than taking every core.
static KEY_GENERATION: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

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
    // Key generation takes a good fraction of a second: off the async workers, one at a time.
    let key = {
        let _turn = KEY_GENERATION.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(generate_dkim_rsa)
            .await
            .expect("key generation does not panic")
    };
    let domain = store
        .add_domain(
            account,
            NewDomain {
                name,
                selector: settings.dkim_selector.clone(),
                dkim_private_der: key.private_pkcs8_der,
                dkim_public: key.public_b64,
                sandbox,
            },
        )
        .await?;
    let records = records(&domain, settings);
    Ok((domain, records))
}

/// Looks the domain's records up and records the outcome. `skip_dns` is the operator's
/// override: the domain is verified without a look-up.
pub async fn verify_domain(
    store: &Store,
    dns: &Dns,
    domain: &Domain,
    settings: &DomainSettings,
    skip_dns: bool,
) -> Result<(Domain, Vec<RecordCheck>), AdminError> {
    if skip_dns {
        return Ok((store.record_domain_check(&domain.name, true).await?, vec![]));
    }
    let checks = dns.check(&records(domain, settings)).await;
    let domain = store
        .record_domain_check(&domain.name, all_required_pass(&checks))
        .await?;
    Ok((domain, checks))
}
