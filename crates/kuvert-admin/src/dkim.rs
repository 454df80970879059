//! A sending domain's DKIM keys over their life: the first made with the domain, a new one by
//! rotation or beside it (Ed25519 with RSA), each signing only once DNS holds its record, and
//! a replaced one listed for a grace period before it is forgotten.

use kuvert_core::domain::{
    DkimAlgorithm, DkimChange, DkimKey, DkimKeyState, DnsRecord, DomainSettings, RecordProblem,
    RecordPurpose, dkim_changes, dns_records, generate_dkim, new_selector,
};
use kuvert_dns::{Dns, RecordCheck};
use kuvert_store::{Domain, Store};

use crate::AdminError;

/// Key generations at once, in the whole process: an RSA one takes a core for a good
/// fraction of a second, so a burst of requests waits in line rather than taking every core.
static KEY_GENERATION: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// A key of `algorithm`, made off the async workers, one at a time.
pub(crate) async fn generate(algorithm: DkimAlgorithm) -> kuvert_core::domain::DkimKeyPair {
    let _turn = KEY_GENERATION.acquire().await.expect("never closed");
    tokio::task::spawn_blocking(move || generate_dkim(algorithm))
        .await
        .expect("key generation does not panic")
}

/// The records the owner of `domain` must publish.
pub async fn records(
    store: &Store,
    domain: &Domain,
    settings: &DomainSettings,
) -> Result<Vec<DnsRecord>, AdminError> {
    let keys = store.dkim_keys(&domain.id).await?;
    Ok(dns_records(&domain.name, &keys, settings))
}

/// What a new key is for, which decides what the domain must already have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewKey {
    /// Replaces the domain's key of this algorithm once published.
    Rotate,
    /// Signs beside the domain's other keys once published (Ed25519 beside RSA).
    Add,
}

/// A new key for `domain`: pending until DNS holds its record (a sandbox has no DNS: its key
/// takes over at once). Returns the domain's keys after it.
pub async fn new_key(
    store: &Store,
    domain: &Domain,
    algorithm: DkimAlgorithm,
    what: NewKey,
    settings: &DomainSettings,
) -> Result<Vec<DkimKey>, AdminError> {
    let keys = store.dkim_keys(&domain.id).await?;
    let of_algorithm = |state: DkimKeyState| {
        keys.iter()
            .any(|k| k.algorithm == algorithm && k.state == state)
    };
    if of_algorithm(DkimKeyState::Pending) {
        return Err(AdminError::DkimKey(format!(
            "a new {algorithm} key of {} waits for its record already: publish it, then verify",
            domain.name
        )));
    }
    match (what, of_algorithm(DkimKeyState::Active)) {
        (NewKey::Rotate, false) => {
            return Err(AdminError::DkimKey(format!(
                "{} has no {algorithm} key to rotate: add one",
                domain.name
            )));
        }
        (NewKey::Add, true) => {
            return Err(AdminError::DkimKey(format!(
                "{} has an {algorithm} key already: rotate it",
                domain.name
            )));
        }
        _ => {}
    }
    let date = store.clock().now().to_rfc3339();
    let date: String = date[..10].chars().filter(char::is_ascii_digit).collect();
    let taken: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
    let selector = new_selector(&settings.dkim_selector, algorithm, &date, &taken);
    let pair = generate(algorithm).await;
    store
        .add_dkim_key(domain, &selector, &pair, DkimKeyState::Pending)
        .await?;
    if domain.sandbox {
        check_sandbox(store, domain, settings).await?;
    }
    Ok(store.dkim_keys(&domain.id).await?)
}

/// Moves the domain's keys on by what DNS holds (`published`): a pending key whose record
/// is there begins to sign and the key it replaces stops; a retiring key past its end is
/// forgotten. Returns the changes made.
async fn move_keys(
    store: &Store,
    domain: &Domain,
    settings: &DomainSettings,
    published: impl Fn(&DkimKey) -> bool,
) -> Result<Vec<DkimChange>, AdminError> {
    let keys = store.dkim_keys(&domain.id).await?;
    let now = store.clock().now();
    let changes = dkim_changes(&keys, published, now, settings.dkim_retire_after_ms);
    store.apply_dkim_changes(&domain.id, &changes).await?;
    Ok(changes)
}

/// A sandbox's keys change without DNS: a new key signs at once.
async fn check_sandbox(
    store: &Store,
    domain: &Domain,
    settings: &DomainSettings,
) -> Result<Vec<DkimChange>, AdminError> {
    move_keys(store, domain, settings, |_| true).await
}

/// Whether a check found `key`'s record.
fn found(checks: &[RecordCheck], key: &DkimKey) -> bool {
    let value = key.record_value();
    checks
        .iter()
        .any(|c| c.ok && c.record.purpose == RecordPurpose::Dkim && c.record.value == value)
}

/// A record a check did not find, or found wanting, as the domain's page shows it.
fn problem(c: &RecordCheck) -> RecordProblem {
    RecordProblem {
        purpose: c.record.purpose,
        name: c.record.name.clone(),
        expected: c.record.value.clone(),
        found: c.found.clone(),
    }
}

/// Looks the domain's records up; its keys move on by what is there (`move_keys`), and the
/// domain is verified or not by the records required after that (a verified domain keeps
/// sending without its SPF or return-path record, shown as problems, not without a DKIM
/// key's: `Store::record_domain_check`). `skip_dns` is the operator's override: the domain
/// is verified without a look-up, and its keys stay as they are.
pub async fn verify_domain(
    store: &Store,
    dns: &Dns,
    domain: &Domain,
    settings: &DomainSettings,
    skip_dns: bool,
) -> Result<(Domain, Vec<RecordCheck>), AdminError> {
    if skip_dns {
        return Ok((store.verify_domain_without_dns(&domain.name).await?, vec![]));
    }
    let keys = store.dkim_keys(&domain.id).await?;
    let checks = dns.check(&dns_records(&domain.name, &keys, settings)).await;
    move_keys(store, domain, settings, |k| found(&checks, k)).await?;
    // What is required now: a key that just began to sign, not the one it replaced.
    let after = store.dkim_keys(&domain.id).await?;
    let required = dns_records(&domain.name, &after, settings);
    let checks: Vec<RecordCheck> = checks
        .into_iter()
        .filter_map(|mut c| {
            let now = required
                .iter()
                .find(|r| r.name == c.record.name && r.value == c.record.value)?;
            c.record.required = now.required;
            Some(c)
        })
        .collect();
    // A look-up that failed says nothing of its record: neither missing nor there.
    let inconclusive = checks
        .iter()
        .any(|c| c.record.required && c.error.is_some());
    let problems: Vec<RecordProblem> = checks
        .iter()
        .filter(|c| c.record.required && !c.ok && c.error.is_none())
        .map(problem)
        .collect();
    // DMARC is advice: shown and told, it stops nothing. (The tracking host's CNAME is not:
    // tracking links use `[tracking] base_url`, so nothing would be wrong without it.) A
    // look-up that failed keeps what the last one found, so that nothing is told twice.
    let dmarc = |c: &&RecordCheck| !c.record.required && c.record.purpose == RecordPurpose::Dmarc;
    if checks.iter().filter(dmarc).any(|c| c.error.is_some()) {
        let kept = domain.advice.clone();
        let domain = store
            .record_domain_check(&domain.name, &problems, &kept, inconclusive)
            .await?;
        return Ok((domain, checks));
    }
    let advice: Vec<RecordProblem> = checks
        .iter()
        .filter(dmarc)
        .filter(|c| !c.ok)
        .map(problem)
        .collect();
    let domain = store
        .record_domain_check(&domain.name, &problems, &advice, inconclusive)
        .await?;
    Ok((domain, checks))
}

/// Moves on the keys of every domain with a key on its way in or out: a pending key is
/// looked up alone, and nothing else about the domain changes (a look-up that fails here
/// never withdraws a verification; `verify` does that). Run by `serve` in the background, so
/// that a rotation ends without anyone calling verify; returns how many keys changed. One
/// domain's failure is logged and the others are still checked.
pub async fn check_rotations(
    store: &Store,
    dns: &Dns,
    settings: &DomainSettings,
) -> Result<usize, AdminError> {
    let mut changed = 0;
    for domain in store.domains_with_dkim_changes().await? {
        let moved = if domain.sandbox {
            check_sandbox(store, &domain, settings).await
        } else {
            match store.dkim_keys(&domain.id).await {
                Ok(keys) => {
                    let pending: Vec<DkimKey> = keys
                        .into_iter()
                        .filter(|k| k.state == DkimKeyState::Pending)
                        .collect();
                    let records: Vec<DnsRecord> = dns_records(&domain.name, &pending, settings)
                        .into_iter()
                        .filter(|r| r.purpose == RecordPurpose::Dkim)
                        .collect();
                    let checks = dns.check(&records).await;
                    move_keys(store, &domain, settings, |k| found(&checks, k)).await
                }
                Err(e) => Err(e.into()),
            }
        };
        match moved {
            Ok(changes) => changed += changes.len(),
            Err(e) => tracing::warn!(domain = %domain.name, error = %e, "DKIM key check failed"),
        }
    }
    Ok(changed)
}

/// How often `serve` looks for keys to move on (in real time).
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// The background job of `serve`.
pub fn start_rotations(
    store: Store,
    dns: Dns,
    settings: DomainSettings,
) -> tokio::task::JoinHandle<()> {
    let shared = std::sync::Arc::new((store, dns, settings));
    crate::every(LOOK_EVERY, "DKIM key check", move || {
        let shared = shared.clone();
        async move {
            let (store, dns, settings) = &*shared;
            let n = check_rotations(store, dns, settings).await?;
            if n > 0 {
                tracing::info!(keys = n, "DKIM keys moved on");
            }
            Ok(())
        }
    })
}
