//! Double opt-in: a subscription asked for (by the public form or the API) waits as
//! `pending` until the link of its confirmation mail is followed. Consent is recorded when
//! it is confirmed, not when it is asked for: someone may type anyone's address into a form.

use kuvert_core::Timestamp;
use kuvert_core::contact::{ConsentAction, ConsentMethod, ContactStatus, SubscriptionStatus};
use kuvert_core::event::SuppressionReason;
use kuvert_core::id::{AccountId, ContactId, ListId};
use kuvert_core::optin::{Confirmation, LINK_LIFETIME_MS};

use crate::accounts::parse_column;
use crate::contacts::{ConsentInsert, delete_contact_rows, insert_consent};
use crate::{Result, Store, StoreError};

/// No second confirmation mail to an address for a list within this.
pub const RESEND_AFTER_MS: i64 = 3600 * 1000;

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
    pub list: &'a ListId,
    pub address: &'a kuvert_core::EmailAddress,
    pub name: Option<&'a str>,
    /// Made by the public form: a contact it creates is dropped if it never confirms.
    pub from_form: bool,
}

impl Store {
    /// Makes the subscription pending (creating the contact if there is none), unless the
    /// address may not be mailed, is subscribed already, or had a confirmation within the
    /// hour. One transaction.
    pub async fn request_opt_in(&self, ask: OptInAsk<'_>) -> Result<OptInRequest> {
        let address = ask.address.as_str();
        if let Some(reason) = self.contact_refusal(ask.account, address).await? {
            return Ok(OptInRequest::Refused(reason));
        }
        let list = self.list_settings(ask.account, ask.list.as_str()).await?;
        let key = self.account_key(ask.account).await?;
        let lookup = key.lookup(address);
        let now = self.now();
        let account = ask.account.as_str();
        let mut tx = self.writer().begin().await?;
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
            _ => {}
        }
        let current: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT status, confirm_sent_at FROM subscriptions WHERE list_id = $1 AND contact_id = $2",
        )
        .bind(list.id.as_str())
        .bind(&contact)
        .fetch_optional(&mut *tx)
        .await?;
        match current {
            Some((s, _)) if s == SubscriptionStatus::Subscribed.as_str() => {
                return Ok(OptInRequest::AlreadySubscribed);
            }
            Some((s, Some(sent)))
                if s == SubscriptionStatus::Pending.as_str() && now - sent < RESEND_AFTER_MS =>
            {
                return Ok(OptInRequest::RecentlySent);
            }
            _ => {}
        }
        sqlx::query(
            "INSERT INTO subscriptions (list_id, contact_id, account_id, status, updated_at, confirm_sent_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (list_id, contact_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, confirm_sent_at = excluded.confirm_sent_at",
        )
        .bind(list.id.as_str())
        .bind(&contact)
        .bind(account)
        .bind(SubscriptionStatus::Pending.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(OptInRequest::Send(Confirmation {
            account: ask.account.clone(),
            list: list.id,
            contact: ContactId::from_string(contact),
            expires: Timestamp(now + LINK_LIFETIME_MS),
        }))
    }

    /// Confirms a pending subscription, recording the consent (method `double_opt_in`, the
    /// list's wording, the source address where the list records it). Following a link
    /// twice confirms once; a subscription that is gone or was withdrawn is not found.
    pub async fn confirm_opt_in(&self, c: &Confirmation, source: &str) -> Result<Confirmed> {
        let list = self.list_settings(&c.account, c.list.as_str()).await?;
        let key = self.account_key(&c.account).await?;
        let now = self.now();
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE subscriptions SET status = $1, updated_at = $2, confirm_sent_at = NULL \
             WHERE list_id = $3 AND contact_id = $4 AND account_id = $5 AND status = $6",
        )
        .bind(SubscriptionStatus::Subscribed.as_str())
        .bind(now)
        .bind(c.list.as_str())
        .bind(c.contact.as_str())
        .bind(c.account.as_str())
        .bind(SubscriptionStatus::Pending.as_str())
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

    /// Drops pending subscriptions whose link has expired, and the contacts a form made that
    /// were never confirmed and belong to no list now: an address someone typed into a form
    /// and its owner never confirmed is not kept.
    pub async fn purge_unconfirmed(&self) -> Result<u64> {
        let cutoff = self.now() - LINK_LIFETIME_MS;
        let mut tx = self.writer().begin().await?;
        let subs = sqlx::query(
            "DELETE FROM subscriptions WHERE status = 'pending' AND confirm_sent_at < $1",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let gone: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, account_id FROM contacts WHERE unconfirmed = 1 AND created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.contact_id = contacts.id) LIMIT 10000",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        for (id, account) in &gone {
            delete_contact_rows(&mut tx, account, id).await?;
        }
        let contacts = gone.len() as u64;
        tx.commit().await?;
        Ok(subs + contacts)
    }
}
