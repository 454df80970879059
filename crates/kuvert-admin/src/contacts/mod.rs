//! Contacts as an account manages them: imports (`import`), exports at any time (`export`
//! here, streamed), erasure, address validation. The HTTP API and the CLI both call these.

pub mod csv;
pub mod import;
pub mod optin;

use kuvert_core::EmailAddress;
use kuvert_core::account::PrivacyRight;
use kuvert_core::id::AccountId;
use kuvert_core::validate::{MailDomain, Validation, local_checks};
use kuvert_dns::{Dns, MailExchangers};
use kuvert_store::{Contact, Erasure, Store};
use serde_json::{Value, json};

use crate::AdminError;
use crate::export::ExportSink;

/// Contacts read per query while exporting.
const PAGE: u32 = 500;

/// Erases an address from the account (see `Store::erase_address`) and records the
/// erasure as a privacy request made by `by`, done at once.
pub async fn erase(
    store: &Store,
    account: &AccountId,
    address: &str,
    by: &str,
) -> Result<Erasure, AdminError> {
    let address = EmailAddress::parse(address)?;
    let done = store.erase_address(account, address.as_str()).await?;
    store
        .record_privacy_request(account, PrivacyRight::Erasure, by, true)
        .await?;
    Ok(done)
}

/// Deletes (or erases) every contact of a list, or of the account without one. Returns
/// how many.
pub async fn delete_all(
    store: &Store,
    account: &AccountId,
    list: Option<&str>,
    erase_them: bool,
    by: &str,
) -> Result<u64, AdminError> {
    let mut n = 0;
    let mut after = String::new();
    loop {
        let page = store.contact_addresses(account, list, &after, PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        // Deleted contacts leave the list: read on after the last id, not from the start.
        after = last.as_str().to_owned();
        for (id, address) in &page {
            if erase_them {
                store.erase_address(account, address).await?;
            } else {
                store.delete_contact(account, id.as_str()).await?;
            }
            n += 1;
        }
    }
    if erase_them && n > 0 {
        store
            .record_privacy_request(account, PrivacyRight::Erasure, by, true)
            .await?;
    }
    Ok(n)
}

/// The export's formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

fn time(t: kuvert_core::Timestamp) -> String {
    t.to_rfc3339()
}

/// A contact as the export and the API write it.
pub fn contact_json(c: &Contact) -> Value {
    json!({
        "id": c.id,
        "address": c.address,
        "name": c.name,
        "status": c.status,
        "properties": c.properties,
        "engagement": {
            "last_sent_at": c.engagement.last_sent_at.map(time),
            "last_opened_at": c.engagement.last_opened_at.map(time),
            "last_clicked_at": c.engagement.last_clicked_at.map(time),
        },
        "subscriptions": c.subscriptions.iter().map(|s| json!({
            "list_id": s.list_id, "status": s.status, "updated_at": time(s.updated_at),
        })).collect::<Vec<_>>(),
        "consent": c.consent.iter().map(|r| json!({
            "list_id": r.list_id, "action": r.action, "method": r.method,
            "consent_text": r.consent_text, "source": r.source, "created_at": time(r.created_at),
        })).collect::<Vec<_>>(),
        "created_at": time(c.created_at),
        "updated_at": time(c.updated_at),
    })
}

/// Every contact of a list (of the account without one) with properties, subscriptions and
/// consent records, written a page at a time: memory holds one page, whatever the count.
/// CSV has a column per defined property, `lists` as `id:status` pairs and `consent` as JSON.
pub async fn export<S: ExportSink>(
    store: &Store,
    account: &AccountId,
    list: Option<&str>,
    format: Format,
    out: &mut S,
) -> Result<(), AdminError> {
    let mut properties: Vec<String> = store
        .contact_properties(account)
        .await?
        .into_keys()
        .collect();
    properties.sort();
    let mut buf = Vec::new();
    match format {
        Format::Csv => {
            let mut header = vec!["email", "name", "status", "created_at", "updated_at"];
            header.extend(["last_sent_at", "last_opened_at", "last_clicked_at"]);
            header.extend(properties.iter().map(String::as_str));
            header.extend(["lists", "consent"]);
            csv::write_record(&mut buf, &header);
        }
        Format::Json => buf.push(b'['),
    }
    let mut after: Option<String> = None;
    let mut first = true;
    loop {
        let page = store
            .list_contacts(account, list, None, after.as_deref(), PAGE)
            .await?;
        for c in &page.items {
            match format {
                Format::Json => {
                    if !std::mem::take(&mut first) {
                        buf.push(b',');
                    }
                    buf.extend_from_slice(contact_json(c).to_string().as_bytes());
                }
                Format::Csv => {
                    let opt = |t: Option<kuvert_core::Timestamp>| t.map(time).unwrap_or_default();
                    let mut fields: Vec<String> = vec![
                        c.address.clone(),
                        c.name.clone().unwrap_or_default(),
                        c.status.to_string(),
                        time(c.created_at),
                        time(c.updated_at),
                        opt(c.engagement.last_sent_at),
                        opt(c.engagement.last_opened_at),
                        opt(c.engagement.last_clicked_at),
                    ];
                    fields.extend(
                        properties
                            .iter()
                            .map(|p| c.properties.get(p).map(|v| v.to_text()).unwrap_or_default()),
                    );
                    fields.push(
                        c.subscriptions
                            .iter()
                            .map(|s| format!("{}:{}", s.list_id, s.status))
                            .collect::<Vec<_>>()
                            .join(";"),
                    );
                    fields.push(contact_json(c)["consent"].to_string());
                    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
                    csv::write_record(&mut buf, &refs);
                }
            }
        }
        out.write(&buf).await?;
        buf.clear();
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if format == Format::Json {
        out.write(b"]").await?;
    }
    Ok(())
}

/// Validates an address: its syntax, its domain in DNS (MX, else A/AAAA; a null MX takes
/// nothing), whether it is a role or disposable address, and a likely typo's correction.
pub async fn validate(dns: &Dns, input: &str, extra_disposable: &[String]) -> Validation {
    let addr = match EmailAddress::parse(input) {
        Ok(a) => a,
        Err(e) => {
            return Validation {
                address: input.to_owned(),
                valid_syntax: false,
                reason: Some(e.to_string()),
                mail_domain: None,
                checks: None,
                deliverable: false,
            };
        }
    };
    let mail_domain = match dns.mail_exchangers(addr.domain()).await {
        Ok(MailExchangers::Hosts(_) | MailExchangers::Implicit) => MailDomain::Accepts,
        Ok(MailExchangers::Null) => MailDomain::NullMx,
        Ok(MailExchangers::NoDomain) => MailDomain::DoesNotExist,
        Ok(MailExchangers::NoMailServer) => MailDomain::NoMailServer,
        Err(_) => MailDomain::Unknown,
    };
    Validation {
        address: addr.as_str().to_owned(),
        valid_syntax: true,
        reason: None,
        deliverable: mail_domain == MailDomain::Accepts,
        mail_domain: Some(mail_domain),
        checks: Some(local_checks(&addr, extra_disposable)),
    }
}
