//! Campaigns: drafts, their states (schedule, pause, resume, cancel), and test sends.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kuvert_core::campaign::{AbResult, AbTest, Audience, CampaignState, MAX_AUDIENCE_PARTS};
use kuvert_store::{Campaign, CampaignSettings};
use kuvert_submit::TemplateUse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::messages::{SendResponse, mailbox, mailboxes};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct CampaignOut {
    pub id: String,
    pub name: String,
    pub state: CampaignState,
    pub from: String,
    pub reply_to: Option<String>,
    pub subject: Option<String>,
    pub template: String,
    pub version: Option<String>,
    pub audience: Audience,
    pub send_at: Option<String>,
    pub per_hour: Option<u32>,
    pub max_errors: u32,
    /// Copies queued so far.
    pub sent: u64,
    /// Contacts passed over: a copy already, erased or suppressed.
    pub skipped: u64,
    /// Copies that failed (a variable without a value, say).
    pub errors: u64,
    pub last_error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub created_at: String,
    pub ab: Option<AbTest>,
    /// An A/B test's sample is queued; its choice is made at this time.
    pub ab_decide_at: Option<String>,
    /// An A/B test's choice and the figures it was made on.
    pub ab_result: Option<AbResult>,
}

impl From<Campaign> for CampaignOut {
    fn from(c: Campaign) -> Self {
        let s = c.settings;
        Self {
            id: c.id.to_string(),
            name: s.name,
            state: c.state,
            from: s.from,
            reply_to: s.reply_to,
            subject: s.subject,
            template: s.template,
            version: s.version,
            audience: s.audience,
            send_at: s.send_at.map(|t| t.to_rfc3339()),
            per_hour: s.per_hour,
            max_errors: s.max_errors,
            sent: c.sent,
            skipped: c.skipped,
            errors: c.errors,
            last_error: c.last_error,
            started_at: c.started_at.map(|t| t.to_rfc3339()),
            finished_at: c.finished_at.map(|t| t.to_rfc3339()),
            created_at: c.created_at.to_rfc3339(),
            ab: s.ab,
            ab_decide_at: c.ab_decide_at.map(|t| t.to_rfc3339()),
            ab_result: c.ab_result,
        }
    }
}

/// A draft.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignIn {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// An address of a verified sending domain, as in `POST /v1/messages`.
    pub from: String,
    pub reply_to: Option<String>,
    /// The template version's subject when absent.
    pub subject: Option<String>,
    /// A stored template; its copies are filled with each contact's properties, `email`
    /// and `name`.
    pub template: String,
    /// A version's tag; the active version when absent.
    pub version: Option<String>,
    /// Lists (subscribed contacts) and segments; each contact gets one copy.
    pub audience: Audience,
    /// RFC 3339; at once when scheduled without one.
    pub send_at: Option<String>,
    /// At most this many copies an hour.
    pub per_hour: Option<u32>,
    /// Pause when more copies than this have failed (10 by default).
    pub max_errors: Option<u32>,
    /// An A/B test: variants of the subject or the template sent to a sample first.
    pub ab: Option<AbTest>,
}

fn one_line(field: &str, s: &str) -> Result<(), ApiError> {
    if s.contains(['\r', '\n']) || s.len() > 998 {
        return Err(ApiError::invalid(
            field,
            "a subject is one line of at most 998 bytes",
        ));
    }
    Ok(())
}

impl CampaignIn {
    fn settings(self) -> Result<CampaignSettings, ApiError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.len() > 200 {
            return Err(ApiError::invalid(
                "name",
                "a campaign's name is 1 to 200 bytes",
            ));
        }
        mailbox("from".into(), &self.from)?;
        if let Some(r) = &self.reply_to {
            mailbox("reply_to".into(), r)?;
        }
        if let Some(s) = &self.subject {
            one_line("subject", s)?;
        }
        let mut ab = self.ab;
        if let Some(ab) = &mut ab {
            ab.check().map_err(|e| ApiError::invalid("ab", e))?;
            for (i, v) in ab.variants.iter_mut().enumerate() {
                if let Some(s) = &v.subject {
                    one_line(&format!("ab.variants[{i}].subject"), s)?;
                }
                v.template = v.template.take().map(|t| t.to_ascii_lowercase());
                v.version = v.version.take().map(|t| t.to_ascii_lowercase());
            }
        }
        let a = &self.audience;
        if a.lists.is_empty() && a.segments.is_empty() {
            return Err(ApiError::invalid(
                "audience",
                "name at least one list or segment",
            ));
        }
        if a.lists.len() + a.segments.len() > MAX_AUDIENCE_PARTS {
            return Err(ApiError::invalid(
                "audience",
                format!("at most {MAX_AUDIENCE_PARTS} lists and segments"),
            ));
        }
        if self.per_hour == Some(0) {
            return Err(ApiError::invalid("per_hour", "per_hour is at least 1"));
        }
        Ok(CampaignSettings {
            name,
            from: self.from,
            reply_to: self.reply_to,
            subject: self.subject,
            template: self.template.to_ascii_lowercase(),
            version: self.version.map(|v| v.to_ascii_lowercase()),
            audience: self.audience,
            send_at: super::time_param("send_at", self.send_at.as_deref())?,
            per_hour: self.per_hour,
            max_errors: self.max_errors.unwrap_or(10),
            ab,
        })
    }
}

/// The account's campaigns, newest first.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns",
    responses((status = 200, body = Vec<CampaignOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<CampaignOut>>, ApiError> {
    let all = state.store.campaigns(&auth.account_id).await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

/// Creates a draft. Its template must exist; its lists and segments must be the account's.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", request_body = CampaignIn,
    responses((status = 201, body = CampaignOut), (status = 404, description = "A list or segment of the audience does not exist", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<CampaignIn>,
) -> Result<(StatusCode, Json<CampaignOut>), ApiError> {
    let settings = req.settings()?;
    template_exists(&state, &auth.account_id, &settings).await?;
    let c = state
        .store
        .create_campaign(&auth.account_id, settings)
        .await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

async fn template_exists(
    state: &AppState,
    account: &kuvert_core::id::AccountId,
    s: &CampaignSettings,
) -> Result<(), ApiError> {
    let mut uses = vec![("template".to_owned(), &s.template, s.version.as_ref())];
    for (i, v) in s.ab.iter().flat_map(|ab| ab.variants.iter().enumerate()) {
        if let Some(t) = &v.template {
            uses.push((format!("ab.variants[{i}].template"), t, v.version.as_ref()));
        } else if v.version.is_some() {
            uses.push((
                format!("ab.variants[{i}].version"),
                &s.template,
                v.version.as_ref(),
            ));
        }
    }
    for (field, template, version) in uses {
        match state
            .store
            .template_version(account, template, version.map(String::as_str))
            .await
        {
            Ok(_) => {}
            Err(kuvert_store::StoreError::NotFound(_)) => {
                return Err(ApiError::invalid(
                    field,
                    format!("no template {template:?} with that version"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A campaign and its progress.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<Json<CampaignOut>, ApiError> {
    Ok(Json(
        state.store.campaign(&auth.account_id, &id).await?.into(),
    ))
}

/// Changes a draft (all of it).
#[utoipa::path(put, path = "/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)),
    request_body = CampaignIn,
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody),
        (status = 409, description = "Not a draft", body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CampaignIn>,
) -> Result<Json<CampaignOut>, ApiError> {
    let settings = req.settings()?;
    state.store.campaign(&auth.account_id, &id).await?;
    template_exists(&state, &auth.account_id, &settings).await?;
    let c = state
        .store
        .update_campaign(&auth.account_id, &id, settings)
        .await?;
    Ok(Json(c.into()))
}

/// Deletes a campaign that has sent nothing.
#[utoipa::path(delete, path = "/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_campaign(&auth.account_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionIn {
    /// For `schedule`: RFC 3339; the draft's `send_at`, else at once, when absent.
    pub send_at: Option<String>,
}

/// Moves a campaign: `schedule` (a draft), `unschedule` (back to draft), `pause`, `resume`,
/// `cancel`.
#[utoipa::path(post, path = "/v1/campaigns/{id}/{action}", tag = "campaigns",
    params(("id" = String, Path), ("action" = String, Path, description = "schedule, unschedule, pause, resume or cancel")),
    request_body = ActionIn,
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody),
        (status = 409, description = "The campaign's state does not allow it", body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn action(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<CampaignOut>, ApiError> {
    let next = kuvert_admin::campaigns::requested_state(&action)
        .ok_or_else(|| ApiError::not_found("campaign action"))?;
    // The body is optional: most actions need none.
    let req: ActionIn = if body.iter().all(u8::is_ascii_whitespace) {
        ActionIn::default()
    } else {
        crate::extract::from_json(&body)?
    };
    let send_at = super::time_param("send_at", req.send_at.as_deref())?;
    let c = state
        .store
        .set_campaign_state(&auth.account_id, &id, next, send_at)
        .await?;
    if matches!(next, CampaignState::Scheduled | CampaignState::Sending) {
        state.campaigns.notify_one();
    }
    Ok(Json(c.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignTestIn {
    /// 1 to 10 addresses.
    pub to: Vec<String>,
    /// Sample data for the template's variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

/// Sends the campaign's message to test addresses, filled with the variables given.
#[utoipa::path(post, path = "/v1/campaigns/{id}/test", tag = "campaigns",
    params(("id" = String, Path)), request_body = CampaignTestIn,
    responses((status = 202, body = SendResponse), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn test_send(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CampaignTestIn>,
) -> Result<(StatusCode, Json<SendResponse>), ApiError> {
    let c = state.store.campaign(&auth.account_id, &id).await?;
    let to = mailboxes("to", &req.to)?;
    let from = mailbox("from".into(), &c.settings.from)?;
    let using = TemplateUse {
        name: c.settings.template.clone(),
        version: c.settings.version.clone(),
        variables: req.variables,
    };
    let accepted = kuvert_admin::templates::test_send(
        &state.acceptor,
        &auth.account_id,
        &using,
        from,
        to,
        c.settings.subject.clone(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(accepted.into())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignStatsParams {
    /// `hour` (default for a campaign's first year), `day` (default after) or `month`, in UTC.
    #[param(pattern = "^(hour|day|month)$")]
    pub resolution: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LinkClicks {
    pub url: String,
    pub clicks: u64,
}

#[derive(Serialize, ToSchema)]
pub struct VariantStats {
    /// The variant's index in `ab.variants`.
    pub variant: usize,
    /// The tag its sample copies carry.
    pub tag: String,
    /// Each metric of the variant's sample copies.
    #[schema(value_type = Object)]
    pub totals: Map<String, Value>,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignStatsOut {
    pub campaign: String,
    pub state: CampaignState,
    /// Contacts the campaign reached: copies queued, contacts skipped and copies failed.
    pub recipients: u64,
    pub queued: u64,
    pub skipped: u64,
    pub errors: u64,
    /// The copies' counters (they carry the campaign's id as a tag), from its start to now:
    /// kept as aggregates after the raw events are purged.
    pub stats: super::stats::StatsOut,
    /// Clicks on each link of the copies, most first (at most 100).
    pub links: Vec<LinkClicks>,
    /// An A/B test's variants, by their sample copies.
    pub variants: Vec<VariantStats>,
}

/// A campaign's statistics: sent, delivered, bounced, opened and clicked (total and unique),
/// unsubscribed and complained, with rates, a time series and the clicks of each link.
#[utoipa::path(get, path = "/v1/campaigns/{id}/stats", tag = "campaigns",
    params(("id" = String, Path), CampaignStatsParams),
    responses((status = 200, body = CampaignStatsOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn stats(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    Path(id): Path<String>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<CampaignStatsParams>,
) -> Result<Json<CampaignStatsOut>, ApiError> {
    let c = state.store.campaign(&auth.account_id, &id).await?;
    let now = state.store.clock().now();
    let to = kuvert_core::Timestamp(now.millis() + 1);
    let from = c.started_at.unwrap_or(c.created_at).min(now);
    // Hours for the first year of a campaign, days after.
    let default = if now.millis() - from.millis() > 365 * 86_400_000 {
        "day"
    } else {
        "hour"
    };
    let resolution = super::stats::Resolution::parse(q.resolution.as_deref().unwrap_or(default))?;
    let first = resolution.first(from, to)?;
    let query = |tag: String| kuvert_store::StatsQuery {
        from: first,
        to,
        domain_id: None,
        tag: Some(tag),
    };
    let hourly = state
        .store
        .stats(&auth.account_id, &query(c.id.to_string()))
        .await?;
    let mut variants = Vec::new();
    for i in 0..c.settings.ab.as_ref().map_or(0, |ab| ab.variants.len()) {
        let tag = AbTest::variant_tag(c.id.as_str(), i);
        let hourly = state
            .store
            .stats(&auth.account_id, &query(tag.clone()))
            .await?;
        variants.push(VariantStats {
            variant: i,
            tag,
            totals: super::stats::summarize(hourly, first, to, resolution).totals,
        });
    }
    let links = state
        .store
        .campaign_links(&auth.account_id, &c.id, 100)
        .await?
        .into_iter()
        .map(|(url, clicks)| LinkClicks { url, clicks })
        .collect();
    Ok(Json(CampaignStatsOut {
        campaign: c.id.to_string(),
        state: c.state,
        recipients: c.sent + c.skipped + c.errors,
        queued: c.sent,
        skipped: c.skipped,
        errors: c.errors,
        stats: super::stats::summarize(hourly, first, to, resolution),
        links,
        variants,
    }))
}
