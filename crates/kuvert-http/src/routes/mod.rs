pub mod account;
pub mod capture;
pub mod domains;
pub mod events;
pub mod keys;
pub mod messages;
pub mod ops;
pub mod stats;
pub mod suppressions;
pub mod tracking;
pub mod webhooks;

use kuvert_core::Timestamp;

use crate::error::ApiError;

/// Page sizes: a default, and the most one request may ask for (as Mailgun's events API).
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 300;

pub fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "limit",
            format!("limit is {n}; it must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

pub fn time_param(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|v| {
            Timestamp::parse_rfc3339(v).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("{field} must be an RFC 3339 time such as 2026-11-23T10:00:00Z"),
                )
            })
        })
        .transpose()
}
