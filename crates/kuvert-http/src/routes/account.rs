use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kuvert_core::account::{CompanyProfile, UserProfile};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::FullAccess;

#[derive(Serialize, ToSchema)]
pub struct AccountOut {
    pub id: String,
    /// `free` or `premium`.
    pub plan: String,
    /// `eu` or `us`: where the account's data is kept.
    pub region: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    pub company: Option<String>,
    pub country: Option<String>,
    pub vat_id: Option<String>,
    pub postal_address: Option<String>,
    pub created_at: String,
    pub limits: LimitsOut,
    pub users: Vec<UserOut>,
}

#[derive(Serialize, ToSchema)]
pub struct LimitsOut {
    pub monthly_quota: u64,
    pub sent_this_month: u64,
    pub event_retention_days: u32,
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: String,
    pub email: String,
    /// `owner`, `admin`, `developer` or `viewer`.
    pub role: String,
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
    let sent = state
        .store
        .monthly_usage(&a.id, state.store.clock().now())
        .await?;
    let CompanyProfile {
        company,
        country,
        vat_id,
        postal_address,
    } = a.profile;
    Ok(Json(AccountOut {
        id: a.id.to_string(),
        plan: a.plan.to_string(),
        region: a.region.to_string(),
        status: a.status.to_string(),
        company,
        country,
        vat_id,
        postal_address,
        created_at: a.created_at.to_rfc3339(),
        limits: LimitsOut {
            monthly_quota: limits.monthly_quota,
            sent_this_month: sent,
            event_retention_days: limits.event_retention_days,
        },
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
                    role: u.role.to_string(),
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
