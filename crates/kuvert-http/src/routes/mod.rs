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
use kuvert_core::page::PageSize;

use crate::error::ApiError;

/// The page size a list's `limit` asks for, or the answer to one out of bounds.
pub fn limit(size: PageSize, asked: Option<u32>) -> Result<u32, ApiError> {
    size.of(asked)
        .map_err(|e| ApiError::invalid("limit", e.to_string()))
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
