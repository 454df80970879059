//! Counters for `/metrics`. A handful of atomics: no metrics library is needed for this.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kuvert_core::event::RecipientStatus;
use kuvert_submit::Accepted;

use crate::AppState;

#[derive(Default)]
pub struct Metrics {
    /// Responses by status class: 1xx..5xx.
    responses: [AtomicU64; 5],
    messages_accepted: AtomicU64,
    recipients_queued: AtomicU64,
    recipients_dropped: AtomicU64,
}

impl Metrics {
    pub fn accepted(&self, a: &Accepted) {
        self.messages_accepted.fetch_add(1, Ordering::Relaxed);
        let dropped = a
            .recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Dropped)
            .count() as u64;
        self.recipients_dropped
            .fetch_add(dropped, Ordering::Relaxed);
        self.recipients_queued
            .fetch_add(a.recipients.len() as u64 - dropped, Ordering::Relaxed);
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
        for (name, help, v) in [
            (
                "kuvert_messages_accepted_total",
                "Messages accepted.",
                &self.messages_accepted,
            ),
            (
                "kuvert_recipients_queued_total",
                "Recipients queued for delivery.",
                &self.recipients_queued,
            ),
            (
                "kuvert_recipients_dropped_total",
                "Recipients dropped at acceptance (suppressed).",
                &self.recipients_dropped,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
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
