//! `/metrics`: the one registry every part of the process registers its series in, and
//! HTTP's own counters; what is accepted is counted by the acceptor, over every entrance.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::AppState;

pub struct Metrics {
    registry: Registry,
    /// Responses by status class: 1xx..5xx.
    responses: [Counter; 5],
    queue: Gauge,
    /// The queue gauge alone, written only when the queue could be counted: a gauge stuck
    /// at its last value would hide a database that does not answer.
    queue_registry: Registry,
    /// When the queue was last counted: `/metrics` is public, so it counts at most once per
    /// [`QUEUE_DEPTH_EVERY`] however often it is asked, one request at a time.
    queue_counted: tokio::sync::Mutex<Option<std::time::Instant>>,
}

const QUEUE_DEPTH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Metrics {
    /// Takes the registry the other parts have registered in, and adds HTTP's series.
    pub fn new(mut registry: Registry) -> Self {
        let by_class = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let responses = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .map(|class| by_class.get_or_create(&[("class", class)]).clone());
        registry.register(
            "kuvert_http_responses",
            "HTTP responses by status class",
            by_class,
        );
        let queue = Gauge::default();
        let mut queue_registry = Registry::default();
        queue_registry.register(
            "kuvert_queue_recipients",
            "Recipients waiting for delivery",
            queue.clone(),
        );
        Self {
            registry,
            responses,
            queue,
            queue_registry,
            queue_counted: tokio::sync::Mutex::new(None),
        }
    }

    /// The registry in Prometheus text format, with the queue counted if it is due.
    pub async fn render(&self, store: &kuvert_store::Store) -> String {
        let queue = self.queue_depth(store).await;
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        if queue.is_some() {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.queue_registry)
                .expect("writing to a String does not fail");
        }
        out
    }

    async fn queue_depth(&self, store: &kuvert_store::Store) -> Option<i64> {
        let mut counted = self.queue_counted.lock().await;
        if let Some(at) = *counted
            && at.elapsed() < QUEUE_DEPTH_EVERY
        {
            return Some(self.queue.get());
        }
        let n = store.queue_depth().await.ok()?;
        self.queue.set(n);
        *counted = Some(std::time::Instant::now());
        Some(n)
    }
}

pub async fn count_responses(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let response = next.run(req).await;
    let class = (response.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    state.metrics.responses[class].inc();
    response
}
