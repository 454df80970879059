//! Campaigns: their drafts and states, the lease a node holds while it queues a campaign's
//! copies, and its progress. Which contacts have a copy is `campaign_sends`, written with
//! each copy's message by the group commit (`commit.rs`).

use std::collections::HashSet;

use kuvert_core::Timestamp;
use kuvert_core::campaign::{AbResult, AbTest, Audience, CampaignState};
use kuvert_core::id::{AccountId, CampaignId};
use sqlx::FromRow;

use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq)]
pub struct Campaign {
    pub id: CampaignId,
    pub settings: CampaignSettings,
    pub state: CampaignState,
    /// Copies queued, contacts skipped (a copy already, erased, suppressed), copies that
    /// failed (a variable missing, say).
    pub sent: u64,
    pub skipped: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// An A/B test's sample is queued and it waits for this time to choose.
    pub ab_decide_at: Option<Timestamp>,
    /// An A/B test's choice, once made.
    pub ab_result: Option<AbResult>,
}

/// Where a campaign's pass over its audience is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignPhase {
    /// No A/B test: every contact, one pass.
    All,
    /// An A/B test's sample: each contact of it gets its variant; the rest wait.
    Sample,
    /// The sample is queued and its time has passed: the choice is to be made.
    Decide,
    /// The rest get the chosen variant.
    Rest(usize),
}

/// What a draft says.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignSettings {
    pub name: String,
    pub from: String,
    pub reply_to: Option<String>,
    /// The template version's subject when `None`.
    pub subject: Option<String>,
    pub template: String,
    /// A version's tag; the active one (when the runner takes the campaign) when `None`.
    pub version: Option<String>,
    pub audience: Audience,
    pub send_at: Option<Timestamp>,
    /// At most this many copies an hour.
    pub per_hour: Option<u32>,
    /// The campaign pauses when more copies than this have failed.
    pub max_errors: u32,
    pub ab: Option<AbTest>,
}

#[derive(FromRow)]
struct CampaignRow {
    id: String,
    account_id: String,
    name: String,
    state: String,
    sender: Vec<u8>,
    reply_to: Option<Vec<u8>>,
    subject: Option<Vec<u8>>,
    template: String,
    version: Option<String>,
    audience: String,
    send_at: Option<i64>,
    per_hour: Option<i64>,
    max_errors: i64,
    cursor: Option<String>,
    rate_since: Option<i64>,
    rate_done: i64,
    sent: i64,
    skipped: i64,
    errors: i64,
    last_error: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    ab: Option<Vec<u8>>,
    ab_decide_at: Option<i64>,
    ab_result: Option<String>,
}

const COLUMNS: &str = "id, account_id, name, state, sender, reply_to, subject, template, version, audience, send_at, per_hour, max_errors, cursor, rate_since, rate_done, sent, skipped, errors, last_error, started_at, finished_at, created_at, updated_at, ab, ab_decide_at, ab_result";

/// A campaign a node works on, held by its lease.
#[derive(Clone, Debug)]
pub struct CampaignWork {
    pub account: AccountId,
    pub campaign: Campaign,
    /// The last contact id queued (or skipped): the next page starts after it.
    pub cursor: Option<String>,
    /// The hourly rate counts from here (the start, or the last resume) ...
    pub rate_since: Timestamp,
    /// ... and these contacts were handled since.
    pub rate_done: u64,
    pub phase: CampaignPhase,
}

/// What one page of a campaign came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CampaignProgress {
    pub cursor: Option<String>,
    pub sent: u64,
    pub skipped: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

impl Store {
    async fn open_campaign(&self, row: CampaignRow) -> Result<(Campaign, CampaignRow)> {
        let account = AccountId::from_string(row.account_id.clone());
        let key = self.account_key(&account).await?;
        let campaign = Campaign {
            id: CampaignId::from_string(row.id.clone()),
            settings: CampaignSettings {
                name: row.name.clone(),
                from: key.open_string(&row.sender)?,
                reply_to: key.open_opt(row.reply_to.clone())?,
                subject: key.open_opt(row.subject.clone())?,
                template: row.template.clone(),
                version: row.version.clone(),
                audience: serde_json::from_str(&row.audience)
                    .map_err(|e| StoreError::Sealing(format!("campaign audience: {e}")))?,
                send_at: row.send_at.map(Timestamp),
                per_hour: row.per_hour.map(|n| n.clamp(0, u32::MAX as i64) as u32),
                max_errors: row.max_errors.clamp(0, u32::MAX as i64) as u32,
                ab: match &row.ab {
                    Some(sealed) => Some(
                        serde_json::from_slice(&key.open(sealed)?)
                            .map_err(|e| StoreError::Sealing(format!("campaign A/B test: {e}")))?,
                    ),
                    None => None,
                },
            },
            state: row
                .state
                .parse()
                .map_err(|e: String| StoreError::Sealing(e))?,
            sent: row.sent.max(0) as u64,
            skipped: row.skipped.max(0) as u64,
            errors: row.errors.max(0) as u64,
            last_error: row.last_error.clone(),
            started_at: row.started_at.map(Timestamp),
            finished_at: row.finished_at.map(Timestamp),
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
            ab_decide_at: row.ab_decide_at.map(Timestamp),
            ab_result: match &row.ab_result {
                Some(json) => Some(
                    serde_json::from_str(json)
                        .map_err(|e| StoreError::Sealing(format!("campaign A/B result: {e}")))?,
                ),
                None => None,
            },
        };
        Ok((campaign, row))
    }

    /// Checks that the audience names lists and segments of this account.
    async fn check_audience(&self, account: &AccountId, audience: &Audience) -> Result<()> {
        for l in &audience.lists {
            self.list(account, l).await?;
        }
        for s in &audience.segments {
            self.segment(account, s).await?;
        }
        Ok(())
    }

    pub async fn create_campaign(
        &self,
        account: &AccountId,
        settings: CampaignSettings,
    ) -> Result<Campaign> {
        self.check_audience(account, &settings.audience).await?;
        let now = self.now();
        let id = CampaignId::generate(Timestamp(now));
        let key = self.account_key(account).await?;
        bind_settings(
            sqlx::query(
                "INSERT INTO campaigns (name, sender, reply_to, subject, template, version, audience, send_at, per_hour, max_errors, ab, \
                 id, account_id, state, rate_done, sent, skipped, errors, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0, 0, 0, 0, $15, $15)",
            ),
            &key,
            &settings,
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(CampaignState::Draft.as_str())
        .bind(now)
        .execute(self.writer())
        .await?;
        self.campaign(account, id.as_str()).await
    }

    /// Changes a draft.
    pub async fn update_campaign(
        &self,
        account: &AccountId,
        id: &str,
        settings: CampaignSettings,
    ) -> Result<Campaign> {
        self.check_audience(account, &settings.audience).await?;
        let key = self.account_key(account).await?;
        let done = bind_settings(
            sqlx::query(
                "UPDATE campaigns SET name = $1, sender = $2, reply_to = $3, subject = $4, template = $5, version = $6, \
                 audience = $7, send_at = $8, per_hour = $9, max_errors = $10, ab = $11, updated_at = $12 \
                 WHERE account_id = $13 AND id = $14 AND state = $15",
            ),
            &key,
            &settings,
        )
        .bind(self.now())
        .bind(account.as_str())
        .bind(id)
        .bind(CampaignState::Draft.as_str())
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            self.campaign(account, id).await?;
            return Err(StoreError::InUse("only a draft can be changed"));
        }
        self.campaign(account, id).await
    }

    pub async fn campaign(&self, account: &AccountId, id: &str) -> Result<Campaign> {
        let row = sqlx::query_as::<_, CampaignRow>(&format!(
            "SELECT {COLUMNS} FROM campaigns WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("campaign"))?;
        Ok(self.open_campaign(row).await?.0)
    }

    /// The account's campaigns, newest first (at most 1,000).
    pub async fn campaigns(&self, account: &AccountId) -> Result<Vec<Campaign>> {
        let rows = sqlx::query_as::<_, CampaignRow>(&format!(
            "SELECT {COLUMNS} FROM campaigns WHERE account_id = $1 ORDER BY id DESC LIMIT 1000"
        ))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.open_campaign(r).await?.0);
        }
        Ok(out)
    }

    /// Deletes a campaign that sent nothing (a draft, or one cancelled before it started).
    pub async fn delete_campaign(&self, account: &AccountId, id: &str) -> Result<()> {
        let c = self.campaign(account, id).await?;
        if c.state != CampaignState::Draft && c.started_at.is_some() {
            return Err(StoreError::InUse(
                "a campaign that has sent is kept with its copies; cancel it instead",
            ));
        }
        sqlx::query(
            "DELETE FROM campaigns WHERE account_id = $1 AND id = $2 AND started_at IS NULL",
        )
        .bind(account.as_str())
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Moves a campaign to `next` if its state allows (`CampaignState::may_become`);
    /// scheduling may set the send time.
    pub async fn set_campaign_state(
        &self,
        account: &AccountId,
        id: &str,
        next: CampaignState,
        send_at: Option<Timestamp>,
    ) -> Result<Campaign> {
        let c = self.campaign(account, id).await?;
        if !c.state.may_become(next) {
            return Err(StoreError::InUse(match next {
                CampaignState::Scheduled => "only a draft can be scheduled",
                CampaignState::Paused => "only a scheduled or sending campaign can be paused",
                CampaignState::Sending => "only a paused campaign can be resumed",
                CampaignState::Draft => "only a scheduled campaign can go back to draft",
                _ => "a sent or cancelled campaign stays so",
            }));
        }
        // A campaign paused before it started waits for its send time again; a resumed one
        // counts its hourly rate from now (a pause does not save up copies).
        let next = if next == CampaignState::Sending && c.started_at.is_none() {
            CampaignState::Scheduled
        } else {
            next
        };
        let now = self.now();
        let done = sqlx::query(
            "UPDATE campaigns SET state = $1, send_at = COALESCE($2, send_at), lease_owner = NULL, lease_until = NULL, \
             finished_at = CASE WHEN $1 = 'cancelled' THEN $3 ELSE finished_at END, \
             rate_since = CASE WHEN $1 = 'sending' THEN $3 ELSE rate_since END, \
             rate_done = CASE WHEN $1 = 'sending' THEN 0 ELSE rate_done END, updated_at = $3 \
             WHERE account_id = $4 AND id = $5 AND state = $6",
        )
        .bind(next.as_str())
        .bind(send_at.map(Timestamp::millis))
        .bind(now)
        .bind(account.as_str())
        .bind(id)
        .bind(c.state.as_str())
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::InUse(
                "the campaign changed meanwhile; try again",
            ));
        }
        self.campaign(account, id).await
    }

    /// Takes a campaign that is due (scheduled and past its send time, or sending with no
    /// live lease) for `owner` until `lease_until`; any node may. One at a time.
    pub async fn claim_campaign(&self, owner: &str, lease_ms: i64) -> Result<Option<CampaignWork>> {
        let now = self.now();
        let due = "(state = 'scheduled' AND (send_at IS NULL OR send_at <= $3)) \
                   OR (state = 'sending' AND (lease_until IS NULL OR lease_until < $3) \
                       AND (ab_decide_at IS NULL OR ab_decide_at <= $3))";
        let row = sqlx::query_as::<_, CampaignRow>(&format!(
            "UPDATE campaigns SET state = 'sending', lease_owner = $1, lease_until = $2, \
             started_at = COALESCE(started_at, $3), rate_since = COALESCE(rate_since, $3), updated_at = $3 \
             WHERE id = (SELECT id FROM campaigns WHERE {due} ORDER BY id LIMIT 1) AND ({due}) \
             RETURNING {COLUMNS}"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let account = AccountId::from_string(row.account_id.clone());
        let (campaign, row) = self.open_campaign(row).await?;
        let phase = match (
            &campaign.settings.ab,
            &campaign.ab_result,
            campaign.ab_decide_at,
        ) {
            (None, _, _) => CampaignPhase::All,
            (Some(_), Some(r), _) => CampaignPhase::Rest(r.winner),
            (Some(_), None, Some(_)) => CampaignPhase::Decide,
            (Some(_), None, None) => CampaignPhase::Sample,
        };
        Ok(Some(CampaignWork {
            account,
            campaign,
            cursor: row.cursor,
            rate_since: Timestamp(row.rate_since.unwrap_or(now)),
            rate_done: row.rate_done.max(0) as u64,
            phase,
        }))
    }

    /// Which of `contacts` have this campaign's copy.
    pub async fn campaign_sent_to(
        &self,
        campaign: &CampaignId,
        contacts: &[String],
    ) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in contacts.chunks(500) {
            let sql = format!(
                "SELECT contact_id FROM campaign_sends WHERE campaign_id = $1 AND contact_id IN ({})",
                (2..chunk.len() + 2)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql).bind(campaign.as_str());
            for c in chunk {
                q = q.bind(c);
            }
            out.extend(q.fetch_all(self.pool()).await?);
        }
        Ok(out)
    }

    /// Records a page's progress while `owner` holds the lease, and renews it; `finished`
    /// marks the campaign sent, `pause` pauses it (with the reason in `last_error`). False
    /// when the lease is lost or the account paused or cancelled the campaign meanwhile.
    pub async fn campaign_progress(
        &self,
        id: &CampaignId,
        owner: &str,
        progress: &CampaignProgress,
        lease_ms: i64,
        finished: bool,
        pause: bool,
    ) -> Result<bool> {
        let state = if finished {
            CampaignState::Sent
        } else if pause {
            CampaignState::Paused
        } else {
            CampaignState::Sending
        };
        let until = Timestamp(self.now() + lease_ms);
        self.record_progress(id, owner, progress, state, until, false)
            .await
    }

    /// Records a page's progress and holds the campaign, unclaimed, until `until` (a quota's
    /// reset); its hourly rate counts afresh from then, so the wait saves nothing up.
    pub async fn campaign_waits(
        &self,
        id: &CampaignId,
        owner: &str,
        progress: &CampaignProgress,
        until: Timestamp,
    ) -> Result<bool> {
        self.record_progress(id, owner, progress, CampaignState::Sending, until, true)
            .await
    }

    async fn record_progress(
        &self,
        id: &CampaignId,
        owner: &str,
        progress: &CampaignProgress,
        state: CampaignState,
        until: Timestamp,
        rate_from_until: bool,
    ) -> Result<bool> {
        let now = self.now();
        let done = sqlx::query(
            "UPDATE campaigns SET cursor = COALESCE($1, cursor), sent = sent + $2, skipped = skipped + $3, errors = errors + $4, \
             rate_done = CASE WHEN $11 = 1 THEN 0 ELSE rate_done + $2 + $3 + $4 END, \
             rate_since = CASE WHEN $11 = 1 THEN $7 ELSE rate_since END, \
             last_error = COALESCE($5, last_error), state = $6, lease_until = $7, \
             finished_at = CASE WHEN $6 = 'sent' THEN $8 ELSE finished_at END, updated_at = $8 \
             WHERE id = $9 AND lease_owner = $10 AND state = 'sending'",
        )
        .bind(&progress.cursor)
        .bind(progress.sent as i64)
        .bind(progress.skipped as i64)
        .bind(progress.errors as i64)
        .bind(&progress.last_error)
        .bind(state.as_str())
        .bind(until.millis())
        .bind(now)
        .bind(id.as_str())
        .bind(owner)
        .bind(i64::from(rate_from_until))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// An A/B test's sample is queued: the campaign waits (lease given back, cursor back to
    /// the start) until `decide_at`, when a claim makes the choice.
    pub async fn campaign_sample_queued(
        &self,
        id: &CampaignId,
        owner: &str,
        decide_at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE campaigns SET cursor = NULL, ab_decide_at = $1, lease_until = NULL, updated_at = $2 \
             WHERE id = $3 AND lease_owner = $4 AND state = 'sending' AND ab_decide_at IS NULL",
        )
        .bind(decide_at.millis())
        .bind(self.now())
        .bind(id.as_str())
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records an A/B test's choice (once); the rest then go from the audience's start.
    pub async fn campaign_decided(
        &self,
        id: &CampaignId,
        owner: &str,
        result: &AbResult,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE campaigns SET ab_result = $1, cursor = NULL, updated_at = $2 \
             WHERE id = $3 AND lease_owner = $4 AND state = 'sending' AND ab_result IS NULL",
        )
        .bind(serde_json::to_string(result).expect("a result serialises"))
        .bind(self.now())
        .bind(id.as_str())
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The clicks on each link of a campaign's copies, most first (at most `limit` links).
    pub async fn campaign_links(
        &self,
        account: &AccountId,
        id: &CampaignId,
        limit: u32,
    ) -> Result<Vec<(String, u64)>> {
        let key = self.account_key(account).await?;
        let rows = sqlx::query_as::<_, (Vec<u8>, i64)>(
            "SELECT url, clicks FROM campaign_links WHERE account_id = $1 AND campaign_id = $2 ORDER BY clicks DESC, link LIMIT $3",
        )
        .bind(account.as_str())
        .bind(id.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(url, n)| Ok((key.open_string(&url)?, n.max(0) as u64)))
            .collect()
    }

    /// Gives a campaign's lease back (the node stops): another node, or this one restarted,
    /// may take it at once.
    pub async fn release_campaign(&self, id: &CampaignId, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE campaigns SET lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND state = 'sending'",
        )
        .bind(id.as_str())
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

/// Binds a draft's settings as `$1` to `$11`, sealing what is personal.
fn bind_settings<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    key: &crate::seal::AccountKey,
    settings: &'q CampaignSettings,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&settings.name)
        .bind(key.seal(settings.from.as_bytes()))
        .bind(key.seal_opt(settings.reply_to.as_deref()))
        .bind(key.seal_opt(settings.subject.as_deref()))
        .bind(&settings.template)
        .bind(&settings.version)
        .bind(serde_json::to_string(&settings.audience).expect("an audience serialises"))
        .bind(settings.send_at.map(Timestamp::millis))
        .bind(settings.per_hour.map(i64::from))
        .bind(i64::from(settings.max_errors))
        .bind(
            settings
                .ab
                .as_ref()
                .map(|ab| key.seal(&serde_json::to_vec(ab).expect("an A/B test serialises"))),
        )
}
