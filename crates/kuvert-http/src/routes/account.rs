use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kuvert_core::account::{
    AccountStatus, CompanyProfile, Plan, PrivacyRight, Region, RequestState, Role, UserProfile,
};
use kuvert_core::policy::PolicyDocument;
use kuvert_core::tracking::{AccountTracking, TrackingMode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ApiJson, FullAccess};

#[derive(Serialize, ToSchema)]
pub struct AccountOut {
    pub id: String,
    pub plan: Plan,
    /// Where the account's data is kept.
    pub region: Region,
    pub status: AccountStatus,
    /// While sending is paused (`status` is `suspended`): why, with the figures.
    pub paused: Option<PausedOut>,
    pub company: Option<String>,
    pub country: Option<String>,
    pub vat_id: Option<String>,
    pub postal_address: Option<String>,
    pub created_at: String,
    pub limits: LimitsOut,
    pub tracking: TrackingSettings,
    /// The privacy policy's and the terms' versions in force and pending.
    pub policies: Vec<PolicyOut>,
    pub users: Vec<UserOut>,
}

/// Why sending is paused: the reason in words and its figures.
#[derive(Serialize, ToSchema)]
pub struct PausedOut {
    pub reason: String,
    pub figures: kuvert_core::reputation::Pause,
}

#[derive(Serialize, ToSchema)]
pub struct PolicyOut {
    pub document: PolicyDocument,
    pub in_force: Option<PolicyVersionOut>,
    /// Published, taking effect later (at least 30 days after its publication).
    pub pending: Option<PolicyVersionOut>,
}

#[derive(Serialize, ToSchema)]
pub struct PolicyVersionOut {
    pub version: String,
    pub effective_at: String,
    pub url: Option<String>,
}

/// The account's tracking: privacy mode and the defaults of its messages.
#[derive(Serialize, ToSchema)]
pub struct TrackingSettings {
    pub mode: TrackingMode,
    /// Messages track opens unless their domain or they say otherwise.
    pub opens: bool,
    pub clicks: bool,
    /// Opens and clicks keep the client's address cut to /24 or /48.
    pub truncate_ip: bool,
    /// Messages with one of these tags get a one-click unsubscribe link.
    pub unsubscribe_tags: Vec<String>,
}

impl From<AccountTracking> for TrackingSettings {
    fn from(t: AccountTracking) -> Self {
        Self {
            mode: t.mode,
            opens: t.opens,
            clicks: t.clicks,
            truncate_ip: t.truncate_ip,
            unsubscribe_tags: t.unsubscribe_tags,
        }
    }
}

/// Changes to the tracking settings; what is left out stays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingPatch {
    /// `full`, `aggregate` or `off`.
    #[schema(pattern = "^(full|aggregate|off)$")]
    pub mode: Option<String>,
    pub opens: Option<bool>,
    pub clicks: Option<bool>,
    pub truncate_ip: Option<bool>,
    pub unsubscribe_tags: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct LimitsOut {
    pub monthly_quota: u64,
    pub sent_this_month: u64,
    /// Today's limit (UTC), lower than the plan's during a new account's warm-up.
    pub daily_limit: u64,
    pub sent_today: u64,
    pub hourly_limit: u64,
    pub sent_this_hour: u64,
    /// Whether the account is in its warm-up: its daily limit doubles each day.
    pub warming_up: bool,
    pub event_retention_months: u32,
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub salutation: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub created_at: String,
}

/// The account of the key, its limits and its users.
#[utoipa::path(get, path = "/v1/account", tag = "account", responses((status = 200, body = AccountOut)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<AccountOut>, ApiError> {
    let a = state.store.account(&auth.account_id).await?;
    let users = state.store.users(&auth.account_id).await?;
    let limits = state.acceptor.plan_limits(a.plan);
    let tracking = state.store.account_state(&a.id).await?.tracking.into();
    let versions = state.store.policy_versions().await?;
    let now = state.store.clock().now();
    let out = |v: Option<&kuvert_core::policy::PolicyVersion>| {
        v.map(|v| PolicyVersionOut {
            version: v.version.clone(),
            effective_at: v.effective_at.to_rfc3339(),
            url: v.url.clone(),
        })
    };
    let policies = [
        kuvert_core::policy::PolicyDocument::Privacy,
        kuvert_core::policy::PolicyDocument::Terms,
    ]
    .into_iter()
    .map(|d| {
        let (in_force, pending) = kuvert_core::policy::standing(&versions, d, now);
        PolicyOut {
            document: d,
            in_force: out(in_force),
            pending: out(pending),
        }
    })
    .collect();
    // The account's usage and warm-up, as a submission now would see them.
    let context = state.store.sending_context(&a.id, "", now).await?;
    let quotas = kuvert_core::quota::quotas(&limits, context.warmup_from, now);
    let used = |period| context.used.of(period);
    let limit = |period| {
        quotas
            .iter()
            .find(|q| q.period == period)
            .map_or(0, |q| q.limit)
    };
    use kuvert_core::quota::QuotaPeriod::{Day, Hour, Month};
    let CompanyProfile {
        company,
        country,
        vat_id,
        postal_address,
    } = a.profile;
    Ok(Json(AccountOut {
        id: a.id.to_string(),
        plan: a.plan,
        region: a.region,
        status: a.status,
        paused: state.store.suspension(&a.id).await?.map(|p| PausedOut {
            reason: p.to_string(),
            figures: p,
        }),
        company,
        country,
        vat_id,
        postal_address,
        created_at: a.created_at.to_rfc3339(),
        limits: LimitsOut {
            monthly_quota: limit(Month),
            sent_this_month: used(Month),
            daily_limit: limit(Day),
            sent_today: used(Day),
            hourly_limit: limit(Hour),
            sent_this_hour: used(Hour),
            warming_up: limit(Day) < limits.daily_limit,
            event_retention_months: limits.event_retention_months,
        },
        tracking,
        policies,
        users: users
            .into_iter()
            .map(|u| {
                let UserProfile {
                    salutation,
                    first_name,
                    last_name,
                    phone,
                } = u.profile;
                UserOut {
                    id: u.id.to_string(),
                    email: u.email,
                    role: u.role,
                    salutation,
                    first_name,
                    last_name,
                    phone,
                    created_at: u.created_at.to_rfc3339(),
                }
            })
            .collect(),
    }))
}

/// Changes the account's tracking settings (privacy mode and defaults).
#[utoipa::path(patch, path = "/v1/account/tracking", tag = "account", request_body = TrackingPatch,
    responses((status = 200, body = TrackingSettings), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn update_tracking(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(patch): ApiJson<TrackingPatch>,
) -> Result<Json<TrackingSettings>, ApiError> {
    let mut t = state.store.account_state(&auth.account_id).await?.tracking;
    if let Some(mode) = patch.mode {
        t.mode = match mode.as_str() {
            "full" => TrackingMode::Full,
            "aggregate" => TrackingMode::Aggregate,
            "off" => TrackingMode::Off,
            _ => {
                return Err(ApiError::invalid("mode", "mode is full, aggregate or off"));
            }
        };
    }
    t.opens = patch.opens.unwrap_or(t.opens);
    t.clicks = patch.clicks.unwrap_or(t.clicks);
    t.truncate_ip = patch.truncate_ip.unwrap_or(t.truncate_ip);
    if let Some(tags) = patch.unsubscribe_tags {
        t.unsubscribe_tags = tags;
    }
    state
        .store
        .set_account_tracking(&auth.account_id, &t)
        .await?;
    Ok(Json(t.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    /// The owner's password.
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    /// `closed`: nothing works any more for the account, and its data can no longer be read.
    pub status: AccountStatus,
    /// When the last of its rows is removed (at most 90 days later).
    pub purged_by: String,
}

/// Deletes the account, confirmed with the owner's password: it stops sending at once, its
/// keys are revoked, its data key is destroyed, and the owner gets a confirmation e-mail.
#[utoipa::path(delete, path = "/v1/account", tag = "account", request_body = DeleteAccount,
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<DeleteAccount>,
) -> Result<Json<Deleted>, ApiError> {
    // A stolen key must not be a way to guess the owner's password: a few tries per account
    // and quarter of an hour, as SMTP AUTH is slowed.
    if !state
        .password_attempts
        .allow_key(auth.account_id.clone(), std::time::Instant::now())
    {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyAttempts,
            "too many password attempts for this account; try again in 15 minutes",
        ));
    }
    let purged_by = kuvert_admin::deletion::delete_account(
        &state.store,
        &state.notices,
        &auth.account_id,
        kuvert_admin::deletion::Requester::Owner {
            password: &req.password,
        },
        state.account_purge_after,
    )
    .await?;
    Ok(Json(Deleted {
        id: auth.account_id.to_string(),
        status: AccountStatus::Closed,
        purged_by: purged_by.to_rfc3339(),
    }))
}

/// A copy of every personal datum held about the account and its users (access and
/// portability, the holder's rights): profile, users, keys' metadata, domains, webhooks,
/// suppressions, messages and recipients, events within retention, captured mail.
#[utoipa::path(get, path = "/v1/account/export", tag = "account",
    responses((status = 200, content_type = "application/json", description = "the export; sections are named after tables, fields after columns")),
    security(("api_key" = []), ("basic" = [])))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<axum::response::Response, ApiError> {
    let by = format!("API key {}", auth.key_id);
    kuvert_admin::rights::record_access(&state.store, &auth.account_id, &by).await?;
    let name = format!("kuvert-{}.json", auth.account_id);
    let (store, account) = (state.store.clone(), auth.account_id.clone());
    Ok(super::streamed(
        "application/json",
        &name,
        move |mut sink| async move {
            let done = kuvert_admin::export::write_export(&store, &account, &mut sink).await;
            (sink, done)
        },
    ))
}

/// Changes to the account's company fields; a field left out stays, `""` clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    pub company: Option<String>,
    pub country: Option<String>,
    pub vat_id: Option<String>,
    pub postal_address: Option<String>,
}

/// `Some("")` clears, `Some(v)` sets, `None` keeps.
fn patched(old: Option<String>, new: Option<String>) -> Option<String> {
    match new {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(v),
        None => old,
    }
}

/// Rectifies the account's company fields (the holder's right to rectification).
#[utoipa::path(patch, path = "/v1/account", tag = "account", request_body = AccountPatch,
    responses((status = 200, body = AccountOut)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(patch): ApiJson<AccountPatch>,
) -> Result<Json<AccountOut>, ApiError> {
    let old = state.store.account(&auth.account_id).await?.profile;
    let profile = CompanyProfile {
        company: patched(old.company, patch.company),
        country: patched(old.country, patch.country),
        vat_id: patched(old.vat_id, patch.vat_id),
        postal_address: patched(old.postal_address, patch.postal_address),
    };
    let by = format!("API key {}", auth.key_id);
    kuvert_admin::rights::rectify_account(&state.store, &auth.account_id, &profile, &by).await?;
    get(State(state), FullAccess(auth)).await
}

/// Changes to a user; a field left out stays, `""` clears it (not the e-mail).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[schema(pattern = "^[a-z0-9_+-]{1,64}@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$")]
    pub email: Option<String>,
    pub salutation: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

/// Rectifies a user of the account (the user's right to rectification).
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "account", params(("id" = String, Path)),
    request_body = UserPatch,
    responses((status = 200, body = AccountOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn update_user(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    axum::extract::Path(id): axum::extract::Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<AccountOut>, ApiError> {
    let user = state
        .store
        .users(&auth.account_id)
        .await?
        .into_iter()
        .find(|u| u.id.as_str() == id)
        .ok_or(ApiError::not_found("user"))?;
    let p = user.profile;
    let profile = UserProfile {
        salutation: patched(p.salutation, patch.salutation),
        first_name: patched(p.first_name, patch.first_name),
        last_name: patched(p.last_name, patch.last_name),
        phone: patched(p.phone, patch.phone),
    };
    let email = patch.email.unwrap_or(user.email);
    let by = format!("API key {}", auth.key_id);
    kuvert_admin::rights::rectify_user(
        &state.store,
        &auth.account_id,
        &user.id,
        &email,
        &profile,
        &by,
    )
    .await?;
    get(State(state), FullAccess(auth)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restriction {
    /// `true`: on hold (data stored, nothing processed); `false`: active again.
    pub restricted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct StatusOut {
    /// `active` or `restricted`.
    pub status: AccountStatus,
}

/// Puts the account on hold (the holder's right to restriction of processing) or takes it off:
/// while on hold it stores its data and sends, tracks and delivers nothing.
#[utoipa::path(put, path = "/v1/account/restriction", tag = "account", request_body = Restriction,
    responses((status = 200, body = StatusOut)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn restrict(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<Restriction>,
) -> Result<Json<StatusOut>, ApiError> {
    let by = format!("API key {}", auth.key_id);
    kuvert_admin::rights::restrict(&state.store, &auth.account_id, req.restricted, &by).await?;
    let status = state.store.account_state(&auth.account_id).await?.status;
    Ok(Json(StatusOut { status }))
}

#[derive(Serialize, ToSchema)]
pub struct PrivacyRequestOut {
    pub id: String,
    pub right: PrivacyRight,
    pub requested_by: Option<String>,
    pub state: RequestState,
    pub created_at: String,
    /// A month after it came in: every request is answered within one month.
    pub due_at: String,
    pub done_at: Option<String>,
    pub overdue: bool,
}

/// The account's privacy requests, open ones first (the most overdue at the top).
#[utoipa::path(get, path = "/v1/privacy/requests", tag = "account",
    responses((status = 200, body = Vec<PrivacyRequestOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn privacy_requests(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<Vec<PrivacyRequestOut>>, ApiError> {
    let now = state.store.clock().now();
    let list = state.store.privacy_requests(Some(&auth.account_id)).await?;
    Ok(Json(
        list.into_iter()
            .map(|r| PrivacyRequestOut {
                overdue: r.overdue(now),
                id: r.id.to_string(),
                right: r.right,
                requested_by: r.requested_by,
                state: r.state,
                created_at: r.created_at.to_rfc3339(),
                due_at: r.due_at.to_rfc3339(),
                done_at: r.done_at.map(|t| t.to_rfc3339()),
            })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct AuditOut {
    pub seq: i64,
    pub actor_kind: kuvert_core::account::ActorKind,
    pub actor: String,
    /// What was done, naming no one: for a request, its method and route
    /// (`DELETE /v1/suppressions/{address}`).
    pub action: String,
    /// The particulars (a request's path), kept sealed.
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub created_at: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries before this `seq` (the last of the previous page).
    pub before: Option<i64>,
    /// 1 to 1,000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The account's audit log, newest first: who read or changed what, when, from where.
#[utoipa::path(get, path = "/v1/audit", tag = "account", params(AuditQuery),
    responses((status = 200, body = Vec<AuditOut>)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditOut>>, ApiError> {
    let limit = super::limit(kuvert_core::page::AUDIT, q.limit)?;
    let entries = state
        .store
        .audit_log(&auth.account_id, q.before, limit)
        .await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditOut {
                seq: e.seq,
                actor_kind: e.actor_kind,
                actor: e.actor,
                action: e.action,
                detail: e.detail,
                ip: e.ip,
                created_at: e.created_at.to_rfc3339(),
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantIn {
    /// How long support may see the account's data: 1 to 720 hours.
    #[schema(minimum = 1, maximum = 720)]
    #[serde(deserialize_with = "crate::extract::whole_number")]
    pub hours: u32,
}

#[derive(Serialize, ToSchema)]
pub struct GrantOut {
    /// `None`: support cannot see the account's data.
    pub expires_at: Option<String>,
}

/// Lets support see the account's data for some hours (without a grant it sees nothing); every
/// look is in the audit log.
#[utoipa::path(put, path = "/v1/support/grant", tag = "account", request_body = GrantIn,
    responses((status = 200, body = GrantOut), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn grant_support(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
    ApiJson(req): ApiJson<GrantIn>,
) -> Result<Json<GrantOut>, ApiError> {
    let by = format!("API key {}", auth.key_id);
    kuvert_admin::support::grant(&state.store, &auth.account_id, &by, req.hours).await?;
    support_grant(State(state), FullAccess(auth)).await
}

/// The support grant in force, if any.
#[utoipa::path(get, path = "/v1/support/grant", tag = "account",
    responses((status = 200, body = GrantOut)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn support_grant(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<Json<GrantOut>, ApiError> {
    let grant = state.store.support_grant(&auth.account_id).await?;
    Ok(Json(GrantOut {
        expires_at: grant.map(|g| g.expires_at.to_rfc3339()),
    }))
}

/// Ends support's access now.
#[utoipa::path(delete, path = "/v1/support/grant", tag = "account",
    responses((status = 204)),
    security(("api_key" = []), ("basic" = [])))]
pub async fn revoke_support(
    State(state): State<Arc<AppState>>,
    FullAccess(auth): FullAccess,
) -> Result<axum::http::StatusCode, ApiError> {
    state.store.revoke_support_grants(&auth.account_id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
