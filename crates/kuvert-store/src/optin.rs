//! Double opt-in: a subscription asked for (by the public form or the API) waits as
//! `pending` until the link of its confirmation mail is followed. Consent is recorded when
//! it is confirmed, not when it is asked for: someone may type anyone's address into a form.

use kuvert_core::Timestamp;
use kuvert_core::contact::{ConsentAction, ConsentMethod, ContactStatus, SubscriptionStatus};
use kuvert_core::event::SuppressionReason;
use kuvert_core::id::{AccountId, ContactId};
use kuvert_core::optin::{Confirmation, LINK_LIFETIME_MS};

use crate::accounts::parse_column;
use crate::contacts::{ConsentInsert, delete_contact_rows, insert_consent};
use crate::{Result, Store, StoreError};

/// No second confirmation mail to an address for a list within this.
pub const RESEND_AFTER_MS: i64 = 3600 * 1000;

/// Confirmation mails to an address for a list that may go unanswered; then no more until
/// the last link expires.
pub const MAX_UNANSWERED: i64 = 3;

/// What asking for a subscription came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptInRequest {
    /// A confirmation mail is due: the subscription is pending (again) and its mail is
    /// counted as sent now.
    Send(Confirmation),
    /// Subscribed already: nothing to confirm.
    AlreadySubscribed,
    /// A confirmation went out within the hour; no other yet.
    RecentlySent,
    /// The address is suppressed, erased, or its contact bounced or complained: no mail.
    Refused(SuppressionReason),
}

/// What following a confirmation link came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmed {
    Now,
    Already,
}

/// A subscription request: who asks, for what.
pub struct OptInAsk<'a> {
    pub account: &'a AccountId,
    pub list: &'a crate::List,
    pub address: &'a kuvert_core::EmailAddress,
    pub name: Option<&'a str>,
    /// Made by the public form: a contact it creates is dropped if it never confirms.
    pub from_form: bool,
}

impl Store {
    /// Makes the subscription pending (creating the contact if there is none), unless the
    /// address may not be mailed, is subscribed already, had a confirmation within the hour,
    /// or has had `MAX_UNANSWERED` unanswered. A list the contact left stays left until it
    /// confirms. One transaction, which decides by one conditional write, so that two
    /// requests at once (on two nodes) send one mail.
    pub async fn request_opt_in(&self, ask: OptInAsk<'_>) -> Result<OptInRequest> {
        let address = ask.address.as_str();
        let list = ask.list;
        let key = self.account_key(ask.account).await?;
        let lookup = key.lookup(address);
        let now = self.now();
        let account = ask.account.as_str();
        let mut tx = self.writer().begin().await?;
        // An erasure of this address waits for this transaction, or this one for it.
        lock_address(&mut tx, self.backend(), account, &lookup).await?;
        if let Some(reason) =
            suppressed_in(&mut tx, account, &lookup, &self.lookup_hash(address)).await?
        {
            return Ok(OptInRequest::Refused(reason));
        }
        let new_id = ContactId::generate(Timestamp(now));
        sqlx::query(
            "INSERT INTO contacts (id, account_id, address_lookup, address, name, status, unconfirmed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (account_id, address_lookup) DO NOTHING",
        )
        .bind(new_id.as_str())
        .bind(account)
        .bind(&lookup)
        .bind(key.seal(address.as_bytes()))
        .bind(key.seal_opt(ask.name))
        .bind(ContactStatus::Active.as_str())
        .bind(i64::from(ask.from_form))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (contact, status): (String, String) = sqlx::query_as(
            "SELECT id, status FROM contacts WHERE account_id = $1 AND address_lookup = $2",
        )
        .bind(account)
        .bind(&lookup)
        .fetch_one(&mut *tx)
        .await?;
        match parse_column::<ContactStatus>(&status)? {
            ContactStatus::Bounced => return Ok(OptInRequest::Refused(SuppressionReason::Bounce)),
            ContactStatus::Complained => {
                return Ok(OptInRequest::Refused(SuppressionReason::Complaint));
            }
            ContactStatus::Active => {}
            // Left all of the account's mail: a stranger may not ask it back.
            _ => return Ok(OptInRequest::Refused(SuppressionReason::Unsubscribe)),
        }
        let asked: Option<String> = sqlx::query_scalar(
            "INSERT INTO subscriptions (list_id, contact_id, account_id, status, updated_at, confirm_sent_at, confirm_count) VALUES ($1, $2, $3, 'pending', $4, $4, 1) \
             ON CONFLICT (list_id, contact_id) DO UPDATE SET updated_at = excluded.updated_at, confirm_sent_at = excluded.confirm_sent_at, \
             confirm_count = subscriptions.confirm_count + 1 \
             WHERE subscriptions.status <> 'subscribed' AND subscriptions.confirm_count < $5 \
             AND (subscriptions.confirm_sent_at IS NULL OR subscriptions.confirm_sent_at <= $6) \
             RETURNING status",
        )
        .bind(list.id.as_str())
        .bind(&contact)
        .bind(account)
        .bind(now)
        .bind(MAX_UNANSWERED)
        .bind(now - RESEND_AFTER_MS)
        .fetch_optional(&mut *tx)
        .await?;
        if asked.is_none() {
            let status: String = sqlx::query_scalar(
                "SELECT status FROM subscriptions WHERE list_id = $1 AND contact_id = $2",
            )
            .bind(list.id.as_str())
            .bind(&contact)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(if status == SubscriptionStatus::Subscribed.as_str() {
                OptInRequest::AlreadySubscribed
            } else {
                OptInRequest::RecentlySent
            });
        }
        tx.commit().await?;
        Ok(OptInRequest::Send(Confirmation {
            account: ask.account.clone(),
            list: list.id.clone(),
            contact: ContactId::from_string(contact),
            expires: Timestamp(now + LINK_LIFETIME_MS),
        }))
    }

    /// The confirmation mail of `c` was not sent: the request may be made again at once
    /// (it still expires with its link).
    pub async fn opt_in_mail_failed(&self, c: &Confirmation) -> Result<()> {
        let sent = c.expires.0 - LINK_LIFETIME_MS;
        sqlx::query(
            "UPDATE subscriptions SET confirm_sent_at = $1, confirm_count = confirm_count - 1 \
             WHERE list_id = $2 AND contact_id = $3 AND account_id = $4 AND confirm_sent_at = $5",
        )
        .bind(sent - RESEND_AFTER_MS)
        .bind(c.list.as_str())
        .bind(c.contact.as_str())
        .bind(c.account.as_str())
        .bind(sent)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Confirms a pending subscription, recording the consent (method `double_opt_in`, the
    /// list's wording, the source address where the list records it). Following a link
    /// twice confirms once; a subscription that is gone or was withdrawn is not found.
    pub async fn confirm_opt_in(&self, c: &Confirmation, source: &str) -> Result<Confirmed> {
        let list = self.list_settings(&c.account, c.list.as_str()).await?;
        let key = self.account_key(&c.account).await?;
        let now = self.now();
        let mut tx = self.writer().begin().await?;
        // The contact may have left, bounced or been suppressed since it asked.
        let contact: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT status, address FROM contacts WHERE id = $1 AND account_id = $2",
        )
        .bind(c.contact.as_str())
        .bind(c.account.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, address)) = contact else {
            return Err(StoreError::NotFound("subscription"));
        };
        let address = key.open_string(&address)?;
        let refused = parse_column::<ContactStatus>(&status)? != ContactStatus::Active
            || suppressed_in(
                &mut tx,
                c.account.as_str(),
                &key.lookup(&address),
                &self.lookup_hash(&address),
            )
            .await?
            .is_some();
        if refused {
            return Err(StoreError::NotFound("subscription"));
        }
        // A request waits on a pending subscription, or on one the contact left.
        let done = sqlx::query(
            "UPDATE subscriptions SET status = $1, updated_at = $2, confirm_sent_at = NULL, confirm_count = 0 \
             WHERE list_id = $3 AND contact_id = $4 AND account_id = $5 AND status <> $1 AND confirm_sent_at IS NOT NULL",
        )
        .bind(SubscriptionStatus::Subscribed.as_str())
        .bind(now)
        .bind(c.list.as_str())
        .bind(c.contact.as_str())
        .bind(c.account.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let status: Option<String> = sqlx::query_scalar(
                "SELECT status FROM subscriptions WHERE list_id = $1 AND contact_id = $2 AND account_id = $3",
            )
            .bind(c.list.as_str())
            .bind(c.contact.as_str())
            .bind(c.account.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            return match status {
                Some(s) if s == SubscriptionStatus::Subscribed.as_str() => Ok(Confirmed::Already),
                _ => Err(StoreError::NotFound("subscription")),
            };
        }
        sqlx::query("UPDATE contacts SET unconfirmed = 0, updated_at = $1 WHERE id = $2 AND account_id = $3")
            .bind(now)
            .bind(c.contact.as_str())
            .bind(c.account.as_str())
            .execute(&mut *tx)
            .await?;
        let source = list
            .settings
            .record_source
            .then(|| key.seal(source.as_bytes()));
        insert_consent(
            &mut tx,
            c.account.as_str(),
            &[ConsentInsert {
                contact_id: c.contact.as_str(),
                list_id: c.list.as_str(),
                action: ConsentAction::Given,
                method: ConsentMethod::DoubleOptIn,
                text: list.settings.consent_text.as_deref(),
                source,
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Confirmed::Now)
    }

    /// Drops requests whose link has expired: a pending subscription goes, one the contact
    /// had left stays left; then the contacts a form made that were never confirmed and
    /// belong to no list now. An address someone typed into a form and its owner never
    /// confirmed is not kept. Batches of 500, each its own transaction.
    pub async fn purge_unconfirmed(&self) -> Result<u64> {
        let cutoff = self.now() - LINK_LIFETIME_MS;
        let mut total = 0;
        loop {
            let mut tx = self.writer().begin().await?;
            let expired: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT list_id, contact_id, status FROM subscriptions WHERE confirm_sent_at < $1 LIMIT 500",
            )
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
            for (list, contact, status) in &expired {
                let sql = if status == SubscriptionStatus::Pending.as_str() {
                    "DELETE FROM subscriptions WHERE list_id = $1 AND contact_id = $2"
                } else {
                    "UPDATE subscriptions SET confirm_sent_at = NULL, confirm_count = 0 WHERE list_id = $1 AND contact_id = $2"
                };
                sqlx::query(sql)
                    .bind(list)
                    .bind(contact)
                    .execute(&mut *tx)
                    .await?;
            }
            let gone: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, account_id FROM contacts WHERE unconfirmed = 1 AND created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.contact_id = contacts.id) LIMIT 500",
            )
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
            for (id, account) in &gone {
                delete_contact_rows(&mut tx, account, id).await?;
            }
            tx.commit().await?;
            let done = expired.len() + gone.len();
            total += done as u64;
            if done == 0 {
                return Ok(total);
            }
        }
    }
}

/// Serialises what one address of an account goes through on PostgreSQL (a subscription
/// asked for, an erasure): without it, each could miss the other's uncommitted row. SQLite
/// has one writer, which serialises them already.
pub(crate) async fn lock_address(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: crate::Backend,
    account: &str,
    lookup: &str,
) -> Result<()> {
    if backend == crate::Backend::Postgres {
        sqlx::query("SELECT CAST(pg_advisory_xact_lock(hashtextextended($1, 0)) AS TEXT)")
            .bind(format!("{account}/{lookup}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Why the address may not be mailed, read inside `tx`: an entry of the account under its
/// own keyed hash (an erasure) or the instance's; erased before any other reason.
pub(crate) async fn suppressed_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account: &str,
    own: &str,
    instance: &str,
) -> Result<Option<SuppressionReason>> {
    let reason: Option<String> = sqlx::query_scalar(
        "SELECT reason FROM suppressions WHERE account_id = $1 AND address_lookup IN ($2, $3) \
         ORDER BY CASE WHEN reason = 'erased' THEN 0 ELSE 1 END LIMIT 1",
    )
    .bind(account)
    .bind(own)
    .bind(instance)
    .fetch_optional(&mut **tx)
    .await?;
    reason.map(|r| parse_column(&r)).transpose()
}
