//! Health and metrics, for the operator's monitoring; no authentication.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::AppState;

/// 200 while the database answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200), (status = 503)))]
pub async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut out = state.metrics.render();
    if let Some(more) = &state.more_metrics {
        more(&mut out);
    }
    state.acceptor.render_metrics(&mut out);
    let commits = state.store.commit_stats();
    let _ = writeln!(
        out,
        "# HELP kuvert_commit_transactions_total Group-commit transactions.\n# TYPE kuvert_commit_transactions_total counter"
    );
    let _ = writeln!(
        out,
        "kuvert_commit_transactions_total {}",
        commits.transactions
    );
    let _ = writeln!(
        out,
        "# HELP kuvert_commit_messages_total Messages written by group commit.\n# TYPE kuvert_commit_messages_total counter"
    );
    let _ = writeln!(out, "kuvert_commit_messages_total {}", commits.messages);
    if let Some(depth) = state.metrics.queue_depth(&state.store).await {
        let _ = writeln!(
            out,
            "# HELP kuvert_queue_recipients Recipients waiting for delivery.\n# TYPE kuvert_queue_recipients gauge"
        );
        let _ = writeln!(out, "kuvert_queue_recipients {depth}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
