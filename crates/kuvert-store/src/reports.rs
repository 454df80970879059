//! Reports that arrive after delivery, as mail: bounces (RFC 3464 DSNs) and complaints
//! (RFC 5965 ARF). They name a recipient through its VERP return path, or its message and
//! address; here they become events, state and suppressions.

use kuvert_core::event::{
    Bounce, Complaint, EventDetails, Interaction, RecipientStatus, SuppressionReason,
};
use kuvert_core::id::{AccountId, MessageId, RecipientId};
use kuvert_core::tracking::TrackingMode;
use sqlx::FromRow;

use crate::commit::{SealedEvent, insert_event};
use crate::contacts::{ContactMark, leave_lists, mark_contacts};
use crate::seal::AccountKey;
use crate::stats::Rollup;
use crate::suppressions::suppress;
use crate::{Result, Store};

/// A recipient a report is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientRef {
    pub recipient_id: RecipientId,
    pub message_id: MessageId,
    pub account_id: AccountId,
    pub address: String,
    pub tags: Vec<String>,
    pub domain_id: String,
}

/// What a report says happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    /// The mail bounced after it was handed over; a hard bounce suppresses the address.
    Bounce(Bounce),
    /// The recipient marked it as spam: suppressed (reason complaint).
    Complaint(Complaint),
}

impl Report {
    fn details(&self) -> EventDetails {
        match self {
            Self::Bounce(b) => EventDetails::Bounced(b.clone()),
            Self::Complaint(c) => EventDetails::Complained(c.clone()),
        }
    }
}

/// `RecipientRow`'s columns, from a recipient and its message (joined, `WHERE` to follow).
const RECIPIENT_SELECT: &str = "SELECT r.id, r.message_id, r.account_id, r.address, m.tags, m.domain_id FROM recipients r JOIN messages m ON m.id = r.message_id";

/// A recipient with its message's tags and domain, its address sealed.
#[derive(FromRow)]
struct RecipientRow {
    id: String,
    message_id: String,
    account_id: String,
    address: Vec<u8>,
    tags: String,
    domain_id: String,
}

impl RecipientRow {
    fn open(self, key: &AccountKey) -> Result<RecipientRef> {
        Ok(RecipientRef {
            recipient_id: RecipientId::from_string(self.id),
            message_id: MessageId::from_string(self.message_id),
            account_id: AccountId::from_string(self.account_id),
            address: key.open_string(&self.address)?,
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            domain_id: self.domain_id,
        })
    }
}

impl Store {
    pub async fn recipient_ref(&self, id: &RecipientId) -> Result<Option<RecipientRef>> {
        let row = sqlx::query_as::<_, RecipientRow>(&format!("{RECIPIENT_SELECT} WHERE r.id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => Ok(Some(self.open_recipient(r).await?)),
            None => Ok(None),
        }
    }

    /// The recipient of `message` with this address.
    pub async fn message_recipient(
        &self,
        message: &MessageId,
        address: &str,
    ) -> Result<Option<RecipientRef>> {
        let row = sqlx::query_as::<_, RecipientRow>(&format!(
            "{RECIPIENT_SELECT} WHERE r.message_id = $1 AND r.address_lookup = $2"
        ))
        .bind(message.as_str())
        .bind(self.lookup_hash(address))
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(Some(self.open_recipient(r).await?)),
            None => Ok(None),
        }
    }

    async fn open_recipient(&self, r: RecipientRow) -> Result<RecipientRef> {
        let key = self
            .account_key(&AccountId::from_string(r.account_id.clone()))
            .await?;
        r.open(&key)
    }

    /// Records a report: its event, the recipient's new state (a bounce ends any retrying)
    /// and the suppression, in one transaction.
    pub async fn record_report(&self, r: &RecipientRef, report: &Report) -> Result<()> {
        self.record_reports(&[(r.clone(), report.clone())]).await
    }

    /// Records what one report says of each of its recipients, all in one transaction: a
    /// report is one write, however many recipients it names.
    pub async fn record_reports(&self, reports: &[(RecipientRef, Report)]) -> Result<()> {
        let now = self.now();
        let mut sealed = Vec::with_capacity(reports.len());
        for (r, report) in reports {
            let key = self.account_key(&r.account_id).await?;
            let (lookup, address) = (self.lookup_hash(&r.address), key.seal(r.address.as_bytes()));
            let (suppress, metric) = match report {
                Report::Bounce(b) if b.class.suppresses() => {
                    (Some(SuppressionReason::Bounce), "bounced_hard")
                }
                Report::Bounce(_) => (None, "bounced_soft"),
                Report::Complaint(_) => (Some(SuppressionReason::Complaint), "complained"),
            };
            let event = sealed_event(&key, r, metric, &report.details(), &address, &lookup, now);
            let mark = match report {
                Report::Bounce(b) if b.class.suppresses() => ContactMark::Bounced,
                Report::Bounce(_) => ContactMark::SoftBounce,
                Report::Complaint(_) => ContactMark::Complained,
            };
            let contact = key.lookup(&r.address);
            sealed.push((r, report, event, suppress, lookup, address, (mark, contact)));
        }
        let mut tx = self.writer().begin().await?;
        let mut rollup = Rollup::default();
        for (r, report, event, suppression, lookup, address, (mark, contact)) in &sealed {
            mark_contacts(
                &mut tx,
                r.account_id.as_str(),
                &[contact.as_str()],
                *mark,
                now,
            )
            .await?;
            if matches!(report, Report::Bounce(_)) {
                sqlx::query("UPDATE recipients SET status = $1, next_attempt_at = NULL, lease_owner = NULL, updated_at = $2 WHERE id = $3")
                    .bind(RecipientStatus::Bounced.as_str())
                    .bind(now)
                    .bind(r.recipient_id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            insert_event(&mut tx, event, &mut rollup).await?;
            if let Some(reason) = suppression {
                suppress(
                    &mut tx,
                    r.account_id.as_str(),
                    lookup,
                    address,
                    *reason,
                    now,
                )
                .await?;
            }
        }
        self.commit_events(tx, rollup).await
    }
}

/// The event of something that happened to one recipient, sealed under its account's key.
fn sealed_event(
    key: &AccountKey,
    r: &RecipientRef,
    metric: &'static str,
    details: &EventDetails,
    address: &[u8],
    lookup: &str,
    now: i64,
) -> SealedEvent {
    SealedEvent {
        account_id: r.account_id.to_string(),
        event_type: details.event_type().as_str(),
        message_id: Some(r.message_id.to_string()),
        recipient_id: Some(r.recipient_id.to_string()),
        recipient: Some(address.to_vec()),
        recipient_lookup: Some(lookup.to_owned()),
        tags: serde_json::to_string(&r.tags).expect("strings serialise"),
        data: Some(key.seal(&details.to_bytes())),
        created_at: now,
        metric,
        domain_id: Some(r.domain_id.clone()),
    }
}

/// What a recipient did with a delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engagement {
    Open,
    Click,
    /// A campaign's copy: off the campaign's lists (its contact leaves the account's
    /// marketing when the campaign went to segments only). Any other message: the address
    /// is suppressed for the account.
    Unsubscribe,
    /// Off every list of the account, the contact marked unsubscribed (the page after an
    /// unsubscribe offers it).
    LeaveAll,
}

/// What an unsubscribe did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unsubscribed {
    /// The lists left (their ids), for a campaign's copy.
    pub lists: Vec<String>,
    /// The contact left every list (and is marked unsubscribed).
    pub everything: bool,
    /// The address is suppressed for the account (a message of no campaign).
    pub suppressed: bool,
}

#[derive(FromRow)]
struct CopyRow {
    campaign_id: String,
    audience: String,
}

impl Store {
    /// Records an open, click or unsubscribe: its event, the unique counts (a recipient's
    /// first open and first click) and, for an unsubscribe, the suppression. In aggregate
    /// mode an open or click is only counted: no event, and the recipient row keeps one bit
    /// (that it opened or clicked, for the unique counts), not when. An unsubscribe is the
    /// recipient's request, not tracking, and is recorded in every mode. A click on a
    /// campaign's copy also counts for its link.
    pub async fn record_engagement(
        &self,
        r: &RecipientRef,
        what: &Engagement,
        seen: Interaction,
        mode: TrackingMode,
    ) -> Result<Unsubscribed> {
        let (key, now) = (self.account_key(&r.account_id).await?, self.now());
        let (lookup, address) = (self.lookup_hash(&r.address), key.seal(r.address.as_bytes()));
        let url = seen.url.clone();
        let (details, metric, first_column) = match what {
            Engagement::Open => (
                EventDetails::Opened(seen),
                "opened",
                Some(("opened_at", "opened_unique")),
            ),
            Engagement::Click => (
                EventDetails::Clicked(seen),
                "clicked",
                Some(("clicked_at", "clicked_unique")),
            ),
            Engagement::Unsubscribe | Engagement::LeaveAll => {
                (EventDetails::Unsubscribed(seen), "unsubscribed", None)
            }
        };
        let counted_only = first_column.is_some() && mode != TrackingMode::Full;
        if first_column.is_some() && mode == TrackingMode::Off {
            return Ok(Unsubscribed::default());
        }
        let copy = sqlx::query_as::<_, CopyRow>(
            "SELECT s.campaign_id, c.audience FROM campaign_sends s JOIN campaigns c ON c.id = s.campaign_id \
             WHERE s.message_id = $1 AND s.account_id = $2",
        )
        .bind(r.message_id.as_str())
        .bind(r.account_id.as_str())
        .fetch_optional(self.pool())
        .await?;
        let audience = match (what, &copy) {
            (Engagement::Unsubscribe, Some(copy)) => {
                serde_json::from_str::<kuvert_core::campaign::Audience>(&copy.audience)
                    .unwrap_or_default()
            }
            _ => Default::default(),
        };
        // The campaign's segments as conditions, made before the transaction (they read the
        // account's property definitions).
        let segments = self
            .segment_conditions(&r.account_id, &audience.segments)
            .await?;
        let mut tx = self.writer().begin().await?;
        if let (Engagement::Click, Some(copy), Some(url)) = (what, &copy, &url) {
            sqlx::query(
                "INSERT INTO campaign_links (campaign_id, account_id, link, url, clicks) VALUES ($1, $2, $3, $4, 1) \
                 ON CONFLICT (campaign_id, link) DO UPDATE SET clicks = campaign_links.clicks + 1",
            )
            .bind(&copy.campaign_id)
            .bind(r.account_id.as_str())
            .bind(key.lookup(url))
            .bind(key.seal(url.as_bytes()))
            .execute(&mut *tx)
            .await?;
        }
        let mut rollup = Rollup::default();
        let count = |rollup: &mut Rollup, metric| {
            rollup.add(
                r.account_id.as_str(),
                Some(&r.domain_id),
                &r.tags,
                now,
                metric,
            )
        };
        if let Some((column, unique_metric)) = first_column {
            let first = sqlx::query(&format!(
                "UPDATE recipients SET {column} = $1 WHERE id = $2 AND {column} IS NULL"
            ))
            .bind(if counted_only { 0 } else { now })
            .bind(r.recipient_id.as_str())
            .execute(&mut *tx)
            .await?;
            if first.rows_affected() == 1 {
                count(&mut rollup, unique_metric);
            }
        }
        // What an unsubscribe ends: the campaign's lists, and everything when one of its
        // segments would still select the contact (a second click of a list member then
        // changes nothing more).
        let contact = key.lookup(&r.address);
        let mut done = Unsubscribed::default();
        let mut still_selected = false;
        if *what == Engagement::Unsubscribe && copy.is_some() {
            done.lists = leave_lists(
                &mut tx,
                r.account_id.as_str(),
                &contact,
                &audience.lists,
                now,
            )
            .await?;
            still_selected =
                crate::segments::any_selects(&mut tx, r.account_id.as_str(), &segments, &contact)
                    .await?;
        }
        // A copy whose contact is gone: nothing to take off a list, so the address is
        // suppressed, as for any message, lest an import bring it back.
        let orphan = *what == Engagement::Unsubscribe
            && copy.is_some()
            && !crate::contacts::contact_exists(&mut tx, r.account_id.as_str(), &contact).await?;
        // A contact's summary says when this person last opened or clicked: kept only where
        // the account records engagement per recipient.
        let mark = match what {
            Engagement::Open => (!counted_only).then_some(ContactMark::Opened),
            Engagement::Click => (!counted_only).then_some(ContactMark::Clicked),
            Engagement::Unsubscribe => {
                (copy.is_none() || still_selected).then_some(ContactMark::Unsubscribed)
            }
            Engagement::LeaveAll => Some(ContactMark::Unsubscribed),
        };
        if let Some(mark) = mark {
            done.everything = mark == ContactMark::Unsubscribed;
            mark_contacts(&mut tx, r.account_id.as_str(), &[&contact], mark, now).await?;
        }
        // A recipient unsubscribes once: a second click (or the page's "every list") acts,
        // but adds no event, so the count is of people.
        let first_unsubscribe = first_column.is_some()
            || sqlx::query(
                "UPDATE recipients SET unsubscribed_at = $1 WHERE id = $2 AND unsubscribed_at IS NULL",
            )
            .bind(now)
            .bind(r.recipient_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
        if counted_only {
            count(&mut rollup, metric);
        } else if first_unsubscribe {
            let event = sealed_event(&key, r, metric, &details, &address, &lookup, now);
            insert_event(&mut tx, &event, &mut rollup).await?;
        }
        // A campaign's copy is marketing: its unsubscribe leaves the account's marketing, not
        // the mail the person asked for (receipts, password resets).
        if *what == Engagement::Unsubscribe && (copy.is_none() || orphan) {
            done.suppressed = true;
            let reason = SuppressionReason::Unsubscribe;
            suppress(
                &mut tx,
                r.account_id.as_str(),
                &lookup,
                &address,
                reason,
                now,
            )
            .await?;
        }
        self.commit_events(tx, rollup).await?;
        Ok(done)
    }
}
