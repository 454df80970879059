pub mod account;
pub mod campaigns;
pub mod capture;
pub mod contacts;
pub mod domains;
pub mod events;
pub mod forms;
pub mod imports;
pub mod keys;
pub mod messages;
pub mod ops;
pub mod segments;
pub mod stats;
pub mod suppressions;
pub mod templates;
pub mod tracking;
pub mod webhooks;

use std::net::SocketAddr;

use axum::http::StatusCode;
use kuvert_core::page::PageSize;
use kuvert_core::ratelimit::RateLimiter;
use kuvert_core::{EmailAddress, Timestamp};

use crate::error::{ApiError, ErrorCode};

/// Takes one request of `peer`'s network from `limiter` (the routes anyone can reach), or
/// answers 429.
pub fn per_network(limiter: &RateLimiter, peer: SocketAddr) -> Result<(), ApiError> {
    if limiter.allow(peer.ip(), std::time::Instant::now()) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        "too many requests from your network; try again in a minute",
    ))
}

/// An address a request names in `field`, or the answer that it is none.
pub fn address(field: &str, a: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(a).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidAddress,
            format!("{a:?}: {e}"),
        )
        .field(field)
    })
}

/// An optional text field of at most `max` bytes; blank is none.
pub fn text_field(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match v {
        Some(t) if t.len() > max => Err(ApiError::invalid(
            field,
            format!("{field} is longer than {max} bytes"),
        )),
        other => Ok(other.filter(|t| !t.trim().is_empty())),
    }
}

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

/// Bytes gathered before a chunk of a streamed answer is sent.
const CHUNK: usize = 64 * 1024;

/// A streamed answer's way to the response body.
pub struct ChunkSink {
    tx: tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl kuvert_admin::export::ExportSink for ChunkSink {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), kuvert_admin::AdminError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx
                .send(Ok(chunk.into()))
                .await
                .map_err(|_| kuvert_admin::AdminError::Export("the client went away".into()))?;
        }
        Ok(())
    }
}

/// An answer written as it is made, through a small channel: memory holds a chunk, not the
/// whole. An error half-way ends the body abnormally, so the client sees a cut, not a
/// whole file.
pub fn streamed<F, Fut>(content_type: &str, filename: &str, write: F) -> axum::response::Response
where
    F: FnOnce(ChunkSink) -> Fut + Send + 'static,
    Fut: Future<Output = (ChunkSink, Result<(), kuvert_admin::AdminError>)> + Send + 'static,
{
    use axum::response::IntoResponse;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let sink = ChunkSink {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let (mut sink, done) = write(sink).await;
        let last = match done {
            Ok(()) => Ok(axum::body::Bytes::from(std::mem::take(&mut sink.buf))),
            Err(e) => {
                tracing::warn!(error = %e, "a streamed answer stopped half-way");
                Err(std::io::Error::other(e.to_string()))
            }
        };
        let _ = sink.tx.send(last).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type.to_owned()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}
