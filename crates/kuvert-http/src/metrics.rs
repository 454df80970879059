//! HTTP's counters for `/metrics`; what is accepted is counted by the acceptor, over every
//! entrance.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

#[derive(Default)]
pub struct Metrics {
    /// Responses by status class: 1xx..5xx.
    responses: [AtomicU64; 5],
    /// The queue depth and when it was counted: `/metrics` is public, so it counts at most
    /// once per [`QUEUE_DEPTH_EVERY`] however often it is asked, one request at a time.
    queue_depth: tokio::sync::Mutex<Option<(std::time::Instant, i64)>>,
}

const QUEUE_DEPTH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Metrics {
    pub async fn queue_depth(&self, store: &kuvert_store::Store) -> Option<i64> {
        let mut cached = self.queue_depth.lock().await;
        if let Some((at, n)) = *cached
            && at.elapsed() < QUEUE_DEPTH_EVERY
        {
            return Some(n);
        }
        let n = store.queue_depth().await.ok()?;
        *cached = Some((std::time::Instant::now(), n));
        Some(n)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP kuvert_http_responses_total HTTP responses by status class.\n# TYPE kuvert_http_responses_total counter"
        );
        for (i, n) in self.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "kuvert_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                n.load(Ordering::Relaxed)
            );
        }
        out
    }
}

pub async fn count_responses(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let response = next.run(req).await;
    let class = (response.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    state.metrics.responses[class].fetch_add(1, Ordering::Relaxed);
    response
}
