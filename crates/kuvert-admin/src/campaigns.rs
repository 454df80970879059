//! Campaigns: the runner that queues a campaign's copies, a page of contacts at a time.
//!
//! Each copy is filled in with the contact's properties and accepted like any message, with
//! a mark (`CampaignCopy`) that the group commit writes as a `campaign_sends` row in the
//! message's own transaction; a contact with a row already is refused. So whatever stops
//! the runner (a pause, a crash, a node's death and another node's claim after the lease),
//! no contact gets the campaign twice: the next claim goes on after the last page recorded,
//! and contacts of a page that was under way are found in `campaign_sends` and skipped.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kuvert_core::Mailbox;
use kuvert_core::campaign::{AbFigures, AbResult, AbTest, CampaignState};
use kuvert_core::event::RecipientStatus;
use kuvert_core::id::{AccountId, CampaignId};
use kuvert_core::segment::{Filter, ListCondition};
use kuvert_core::submission::Submission;
use kuvert_store::{
    Campaign, CampaignCopy, CampaignPhase, CampaignProgress, CampaignWork, Contact, StatsQuery,
    Store,
};
use kuvert_submit::{AcceptError, Acceptor};
use kuvert_template::Prepared;
use serde_json::{Map, Value};

use crate::AdminError;

/// Contacts a page takes; a page's progress is recorded in one statement.
pub const PAGE: u32 = 200;
/// Copies accepted at once (they share the group commit's transactions).
const IN_FLIGHT: usize = 32;
/// How long a claim holds a campaign without a page recorded.
const LEASE_MS: i64 = 60_000;

/// A visible unsubscribe link, added when a template has none.
const UNSUBSCRIBE_HTML: &str =
    "<p style=\"font-size:12px;color:#666\"><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>";

pub struct CampaignRunner {
    store: Store,
    acceptor: Acceptor,
    owner: String,
    stop: tokio::sync::watch::Receiver<bool>,
    wake: Arc<tokio::sync::Notify>,
}

/// What a copy is made of: the campaign's template and subject, or an A/B variant's.
struct Variant {
    template: Arc<Prepared>,
    subject: Option<String>,
    /// The A/B variant's tag, on its sample's copies.
    tag: Option<String>,
}

/// What became of one contact.
enum Copy {
    /// Not this pass's (the rest while an A/B test's sample goes, the sample after).
    Passed,
    Sent,
    Skipped,
    Failed(String),
    /// Nothing more can go (the account is not active, the domain lost its verification):
    /// the campaign pauses with this reason.
    Stop(String),
    /// Nothing more can go before a quota resets: the campaign waits until then, and goes on
    /// by itself.
    Wait(String, kuvert_core::Timestamp),
}

/// How a page of copies ended.
enum Halt {
    /// Every copy of the page was handled.
    Go,
    /// The campaign pauses until the account resumes it.
    Pause,
    /// The campaign waits, claimed by no one, until this moment (a quota's reset).
    Until(kuvert_core::Timestamp),
}

impl CampaignRunner {
    pub fn new(
        store: Store,
        acceptor: Acceptor,
        node: &str,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            acceptor,
            owner: format!("{node}.{}", CampaignId::generate(kuvert_core::Timestamp(0))),
            stop,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Wakes the runner (a campaign was scheduled or resumed).
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Works campaigns until `stop` turns true; looks at each wake-up and every `poll`.
    pub async fn run(self, poll: Duration) {
        let mut stop = self.stop.clone();
        loop {
            if *stop.borrow() {
                return;
            }
            match self.run_one().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "campaign runner"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Claims one due campaign and queues pages of it until it is sent, paused, held back
    /// by its hourly rate, or the process stops. False when none was due.
    pub async fn run_one(&self) -> Result<bool, AdminError> {
        let Some(work) = self.store.claim_campaign(&self.owner, LEASE_MS).await? else {
            return Ok(false);
        };
        let audience = filters(&self.store, &work.account, &work.campaign).await?;
        // Each version is read and parsed once a claim (the active one at that time, unless
        // the campaign names a tag); each copy only fills it in.
        let variants = match self.variants(&work).await {
            Ok(v) => v,
            Err(e) => {
                let progress = CampaignProgress {
                    last_error: Some(e.to_string()),
                    ..CampaignProgress::default()
                };
                self.record(&work, &progress, false, true).await?;
                return Ok(true);
            }
        };
        let mut work = work;
        if work.phase == CampaignPhase::Decide {
            let result = self.decide(&work).await?;
            if !self
                .store
                .campaign_decided(&work.campaign.id, &self.owner, &result)
                .await?
            {
                return Ok(true);
            }
            work.phase = CampaignPhase::Rest(result.winner);
            work.cursor = None;
        }
        let mut cursor = work.cursor.clone();
        let mut rate_done = work.rate_done;
        // listmonk's max_send_errors counts from the start or the last resume: this claim.
        let mut errors = 0;
        loop {
            if *self.stop.borrow() {
                self.store
                    .release_campaign(&work.campaign.id, &self.owner)
                    .await?;
                return Ok(true);
            }
            let limit = match self.allowed(&work, rate_done) {
                0 => return Ok(true), // the lease runs out; the next claim is after it
                n => n.min(PAGE),
            };
            let page = match self
                .store
                .audience_page(&work.account, &audience, cursor.as_deref(), limit)
                .await
            {
                Ok(page) => page,
                // A segment that no longer fits the account's properties: nothing can go
                // until the account changes it.
                Err(kuvert_store::StoreError::Filter(e)) => {
                    let progress = CampaignProgress {
                        last_error: Some(format!("a segment of the audience: {e}")),
                        ..CampaignProgress::default()
                    };
                    self.record(&work, &progress, false, true).await?;
                    return Ok(true);
                }
                Err(e) => return Err(e.into()),
            };
            if page.is_empty() {
                if let (CampaignPhase::Sample, Some(ab)) = (work.phase, &work.campaign.settings.ab)
                {
                    // The sample is queued: its readers get the time to open and click.
                    let at =
                        self.store.clock().now().millis() + i64::from(ab.wait_minutes) * 60_000;
                    self.store
                        .campaign_sample_queued(
                            &work.campaign.id,
                            &self.owner,
                            kuvert_core::Timestamp(at),
                        )
                        .await?;
                    return Ok(true);
                }
                self.record(&work, &CampaignProgress::default(), true, false)
                    .await?;
                return Ok(true);
            }
            let (progress, halt) = self.page(&work, &variants, page).await?;
            rate_done += progress.sent + progress.skipped + progress.errors;
            errors += progress.errors;
            // Too many failed copies, or nothing more can go (the cursor then stays before
            // the first contact that was not handled).
            let pause = matches!(halt, Halt::Pause)
                || errors > u64::from(work.campaign.settings.max_errors);
            if let (Halt::Until(at), false) = (&halt, pause) {
                // A quota is used up: the campaign is held until it resets, so that no node
                // claims it before, and its hourly rate starts afresh then.
                let now = self.store.clock().now().millis();
                let at = kuvert_core::Timestamp(at.millis().max(now + LEASE_MS));
                self.store
                    .campaign_waits(&work.campaign.id, &self.owner, &progress, at)
                    .await?;
                return Ok(true);
            }
            let next = progress.cursor.clone();
            if !self.record(&work, &progress, false, pause).await? || pause {
                return Ok(true);
            }
            cursor = next.or(cursor);
        }
    }

    /// The variants a claim sends: the campaign's own, or its A/B test's (each with the
    /// campaign's subject, template and version where it changes nothing).
    async fn variants(&self, work: &CampaignWork) -> Result<Vec<Variant>, AcceptError> {
        let s = &work.campaign.settings;
        let Some(ab) = &s.ab else {
            let (_, template) = self
                .acceptor
                .prepare_template(&work.account, &s.template, s.version.as_deref())
                .await?;
            return Ok(vec![Variant {
                template,
                subject: s.subject.clone(),
                tag: None,
            }]);
        };
        let mut out = Vec::with_capacity(ab.variants.len());
        for (i, v) in ab.variants.iter().enumerate() {
            let (name, version) = match &v.template {
                Some(t) => (t, v.version.as_deref()),
                None => (&s.template, v.version.as_deref().or(s.version.as_deref())),
            };
            let (_, template) = self
                .acceptor
                .prepare_template(&work.account, name, version)
                .await?;
            out.push(Variant {
                template,
                subject: v.subject.clone().or_else(|| s.subject.clone()),
                tag: Some(AbTest::variant_tag(work.campaign.id.as_str(), i)),
            });
        }
        Ok(out)
    }

    /// An A/B test's choice: each variant's sample copies counted from the statistics (the
    /// copies carry the variant's tag), the most unique opens or clicks winning.
    async fn decide(&self, work: &CampaignWork) -> Result<AbResult, AdminError> {
        let c = &work.campaign;
        let Some(ab) = &c.settings.ab else {
            return Err(AdminError::Internal(
                "an A/B choice for a campaign without a test".into(),
            ));
        };
        let now = self.store.clock().now();
        let mut figures = Vec::with_capacity(ab.variants.len());
        for i in 0..ab.variants.len() {
            let q = StatsQuery {
                from: c.created_at,
                to: kuvert_core::Timestamp(now.millis() + 1),
                domain_id: None,
                tag: Some(AbTest::variant_tag(c.id.as_str(), i)),
            };
            let mut f = AbFigures::default();
            for (_, metric, n) in self.store.stats(&work.account, &q).await? {
                let n = n.max(0) as u64;
                match metric.as_str() {
                    "accepted" => f.sent += n,
                    "opened_unique" => f.opened_unique += n,
                    "clicked_unique" => f.clicked_unique += n,
                    _ => {}
                }
            }
            figures.push(f);
        }
        Ok(AbResult::decide(ab.metric, figures, now.millis()))
    }

    async fn record(
        &self,
        work: &CampaignWork,
        progress: &CampaignProgress,
        finished: bool,
        pause: bool,
    ) -> Result<bool, AdminError> {
        Ok(self
            .store
            .campaign_progress(
                &work.campaign.id,
                &self.owner,
                progress,
                LEASE_MS,
                finished,
                pause,
            )
            .await?)
    }

    /// How many more copies the hourly rate allows now (all, without one): the rate times
    /// the time since the start or the last resume, plus a minute's worth so that a
    /// campaign starts at once, less what was handled since.
    fn allowed(&self, work: &CampaignWork, done: u64) -> u32 {
        let Some(per_hour) = work.campaign.settings.per_hour else {
            return u32::MAX;
        };
        let since = work.rate_since.millis();
        let elapsed = (self.store.clock().now().millis() - since).max(0) as u64 + 60_000;
        let budget = u64::from(per_hour) * elapsed / 3_600_000;
        budget.saturating_sub(done).min(u64::from(u32::MAX)) as u32
    }

    /// Queues a page's copies. The cursor it returns passes the contacts handled in id order
    /// up to the first that must wait (`Copy::Stop`, and true): those after it go again on
    /// resume, where the ones whose copies went are found in `campaign_sends`. A contact
    /// found there counts as sent (a page whose progress was lost sent it).
    async fn page(
        &self,
        work: &CampaignWork,
        variants: &[Variant],
        page: Vec<Contact>,
    ) -> Result<(CampaignProgress, Halt), AdminError> {
        let c = &work.campaign;
        // Which variant each contact gets in this pass, if any.
        let choose = |contact: &Contact| -> Option<(usize, bool)> {
            let sample = |ab: &AbTest| ab.assign(c.id.as_str(), contact.id.as_str());
            match (work.phase, &c.settings.ab) {
                (CampaignPhase::Sample, Some(ab)) => sample(ab).map(|v| (v, true)),
                // The sample's contacts have their copies (found below); one that joined
                // during the wait gets the winner too.
                (CampaignPhase::Rest(w), Some(_)) => Some((w, false)),
                (CampaignPhase::All, _) => Some((0, false)),
                _ => None,
            }
        };
        let (chosen, passed): (Vec<_>, Vec<_>) = page
            .into_iter()
            .map(|contact| (choose(&contact), contact))
            .partition(|(v, _)| v.is_some());
        let ids: Vec<String> = chosen.iter().map(|(_, c)| c.id.to_string()).collect();
        let had = self.store.campaign_sent_to(&c.id, &ids).await?;
        let mut outcomes: Vec<(String, Copy)> = futures_util::stream::iter(
            chosen
                .into_iter()
                .filter(|(_, c)| !had.contains(c.id.as_str()))
                .filter_map(|(v, c)| v.map(|v| (v, c)))
                .map(|((v, sample), contact)| async move {
                    let id = contact.id.to_string();
                    let variant = &variants[v.min(variants.len() - 1)];
                    (id, self.copy(work, variant, sample, contact).await)
                }),
        )
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
        // A copy found counts as sent, but the sample's once only: in the sample's pass.
        let counted = |id: &str| match (work.phase, &c.settings.ab) {
            (CampaignPhase::Rest(_), Some(ab)) => ab.assign(c.id.as_str(), id).is_none(),
            _ => true,
        };
        outcomes.extend(had.into_iter().map(|id| {
            let outcome = if counted(&id) {
                Copy::Sent
            } else {
                Copy::Passed
            };
            (id, outcome)
        }));
        outcomes.extend(
            passed
                .into_iter()
                .map(|(_, c)| (c.id.to_string(), Copy::Passed)),
        );
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut progress = CampaignProgress::default();
        for (id, outcome) in outcomes {
            match outcome {
                Copy::Passed => {}
                Copy::Sent => progress.sent += 1,
                Copy::Skipped => progress.skipped += 1,
                Copy::Failed(why) => {
                    progress.errors += 1;
                    progress.last_error = Some(why);
                }
                Copy::Stop(why) => {
                    progress.last_error = Some(why);
                    return Ok((progress, Halt::Pause));
                }
                Copy::Wait(why, until) => {
                    progress.last_error = Some(why);
                    return Ok((progress, Halt::Until(until)));
                }
            }
            progress.cursor = Some(id);
        }
        Ok((progress, Halt::Go))
    }

    async fn copy(
        &self,
        work: &CampaignWork,
        variant: &Variant,
        sample: bool,
        contact: Contact,
    ) -> Copy {
        let c = &work.campaign;
        let mut base = Map::new();
        for (name, value) in &contact.properties {
            base.insert(
                name.clone(),
                serde_json::to_value(value).unwrap_or(Value::Null),
            );
        }
        base.insert("email".into(), Value::String(contact.address.clone()));
        if let Some(n) = &contact.name {
            base.insert("name".into(), Value::String(n.clone()));
        }
        let rendered = match kuvert_submit::render_prepared(variant.template.clone(), base).await {
            Ok(r) => r,
            // This contact's data does not fill the template (a variable missing, say).
            Err(e @ AcceptError::Template(_)) => {
                return Copy::Failed(format!("{}: {e}", contact.id));
            }
            Err(e) => return Copy::Stop(e.to_string()),
        };
        let subject = variant.subject.as_deref();
        let submission = match copy_submission(c, subject, &contact, rendered) {
            Ok(mut s) => {
                s.tags.extend(variant.tag.clone().filter(|_| sample));
                s
            }
            Err(CopyProblem::Contact(e)) => return Copy::Failed(e),
            Err(CopyProblem::Campaign(e)) => return Copy::Stop(e),
        };
        let mark = CampaignCopy {
            campaign: c.id.clone(),
            contact: contact.id.clone(),
        };
        match self
            .acceptor
            .accept_copy(&work.account, submission, Some(mark))
            .await
        {
            Ok(a)
                if a.recipients
                    .iter()
                    .all(|r| r.status == RecipientStatus::Dropped) =>
            {
                Copy::Skipped
            }
            Ok(_) => Copy::Sent,
            Err(AcceptError::AlreadySent | AcceptError::Erased { .. }) => Copy::Skipped,
            Err(e @ (AcceptError::Invalid(_) | AcceptError::Template(_))) => {
                Copy::Failed(format!("{}: {e}", contact.id))
            }
            Err(AcceptError::QuotaExceeded(q)) if !q.never => {
                let why = AcceptError::QuotaExceeded(q.clone()).to_string();
                Copy::Wait(why, q.resets_at)
            }
            Err(e) => Copy::Stop(e.to_string()),
        }
    }
}

/// The audience as filters: each list (subscribed) and each segment's filter as it is now.
async fn filters(
    store: &Store,
    account: &AccountId,
    c: &Campaign,
) -> Result<Vec<Filter>, AdminError> {
    let mut out: Vec<Filter> = c
        .settings
        .audience
        .lists
        .iter()
        .map(|l| {
            Filter::List(ListCondition {
                list: l.clone(),
                status: None,
            })
        })
        .collect();
    for id in &c.settings.audience.segments {
        match store.segment(account, id).await {
            Ok(s) => out.push(s.filter),
            // A segment deleted since selects no one.
            Err(kuvert_store::StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Why a copy cannot be made: the campaign's own settings (nothing can go), or this
/// contact's data (the others can).
#[derive(Debug)]
pub enum CopyProblem {
    Campaign(String),
    Contact(String),
}

/// One contact's copy: from, reply-to and subject of the campaign, the rendered parts with a
/// visible unsubscribe link (added at the end when the template has none) and the one-click
/// `List-Unsubscribe` always, tagged with the campaign's id.
pub fn copy_submission(
    c: &Campaign,
    subject: Option<&str>,
    contact: &Contact,
    rendered: kuvert_template::Rendered,
) -> Result<Submission, CopyProblem> {
    let campaign = CopyProblem::Campaign;
    let from = Mailbox::parse(&c.settings.from).map_err(|e| campaign(format!("from: {e}")))?;
    let to = Mailbox::parse(&contact.address)
        .map_err(|e| CopyProblem::Contact(format!("{}: {e}", contact.id)))?;
    let reply_to = c
        .settings
        .reply_to
        .as_deref()
        .map(Mailbox::parse)
        .transpose()
        .map_err(|e| campaign(format!("reply_to: {e}")))?;
    let mut rendered = rendered;
    if !rendered
        .html
        .contains(kuvert_template::UNSUBSCRIBE_PLACEHOLDER)
    {
        match rendered.html.rfind("</body>") {
            Some(at) => rendered.html.insert_str(at, UNSUBSCRIBE_HTML),
            None => rendered.html.push_str(UNSUBSCRIBE_HTML),
        }
    }
    if !rendered
        .text
        .contains(kuvert_template::UNSUBSCRIBE_PLACEHOLDER)
    {
        rendered.text.push_str("\n\nUnsubscribe: ");
        rendered
            .text
            .push_str(kuvert_template::UNSUBSCRIBE_PLACEHOLDER);
        rendered.text.push('\n');
    }
    let base = crate::templates::submission(from, vec![to], subject.map(str::to_owned), rendered)
        .map_err(|_| {
        campaign("no subject: the campaign and its template version have none".into())
    })?;
    let mut metadata = Map::new();
    metadata.insert("campaign".into(), Value::String(c.id.to_string()));
    Ok(Submission {
        reply_to,
        tags: vec![c.id.to_string()],
        metadata,
        ..base
    })
}

/// The states an account may ask for, by name (`schedule`, `pause`, ...).
pub fn requested_state(action: &str) -> Option<CampaignState> {
    Some(match action {
        "schedule" => CampaignState::Scheduled,
        "unschedule" => CampaignState::Draft,
        "pause" => CampaignState::Paused,
        "resume" => CampaignState::Sending,
        "cancel" => CampaignState::Cancelled,
        _ => return None,
    })
}
