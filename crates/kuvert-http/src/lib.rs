//! Kuvert's HTTP API: `/v1` (JSON, authenticated by API key), `/healthz`, `/metrics`, and the
//! OpenAPI document at `/v1/openapi.json`, generated from the handlers themselves.

mod error;
mod extract;
mod metrics;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use kuvert_core::domain::DomainSettings;
use kuvert_dns::Dns;
use kuvert_store::Store;
use kuvert_submit::Acceptor;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

pub use error::ApiError;
pub use metrics::Metrics;
pub use routes::messages::submission_from_json;

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub acceptor: Acceptor,
    pub dns: Dns,
    pub domain_settings: DomainSettings,
    pub metrics: Metrics,
    /// More of `/metrics`, from parts this crate does not know (the delivery engine).
    pub more_metrics: Option<MetricsAppender>,
    /// `[webhooks] allow_private`: endpoints on private addresses are accepted.
    pub allow_private_webhooks: bool,
    /// Turns true when the server stops: long requests (the live log) end then, so that a
    /// graceful shutdown does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Kuvert's own mail to account holders.
    pub notices: kuvert_admin::notices::Notices,
    /// `[retention] deleted_accounts`: how long a deleted account's rows remain.
    pub account_purge_after: std::time::Duration,
    /// Password confirmations per account (`DELETE /v1/account`).
    pub password_attempts: kuvert_core::ratelimit::RateLimiter<kuvert_core::id::AccountId>,
    /// Requests to the tracking links per client network.
    pub tracking_hits: kuvert_core::ratelimit::RateLimiter,
    /// Live logs open per account.
    pub streams: std::sync::Mutex<std::collections::HashMap<kuvert_core::id::AccountId, u32>>,
}

/// Password confirmations an account may try: this many, then one more per three minutes.
pub const PASSWORD_ATTEMPTS: u32 = 5;

/// A fresh limiter of password confirmations per account.
pub fn password_attempts() -> kuvert_core::ratelimit::RateLimiter<kuvert_core::id::AccountId> {
    kuvert_core::ratelimit::RateLimiter::every(
        PASSWORD_ATTEMPTS,
        std::time::Duration::from_secs(15 * 60),
        PASSWORD_ATTEMPTS,
    )
}

/// Appends Prometheus text to `/metrics`.
pub type MetricsAppender = Box<dyn Fn(&mut String) + Send + Sync>;

#[derive(OpenApi)]
#[openapi(
    info(title = "Kuvert API", description = "Self-hosted email delivery. Authenticate with `Authorization: Bearer KEY`, or HTTP Basic with user `api` and the key as password."),
    paths(
        routes::messages::send,
        routes::messages::get,
        routes::events::list,
        routes::events::stream,
        routes::capture::list,
        routes::stats::get,
        routes::webhooks::create,
        routes::webhooks::list,
        routes::webhooks::get,
        routes::webhooks::update,
        routes::webhooks::remove,
        routes::webhooks::deliveries,
        routes::suppressions::list,
        routes::suppressions::add,
        routes::suppressions::remove,
        routes::domains::list,
        routes::domains::add,
        routes::domains::get,
        routes::domains::remove,
        routes::domains::verify,
        routes::domains::set_tracking,
        routes::keys::list,
        routes::keys::create,
        routes::keys::revoke,
        routes::account::get,
        routes::account::update_tracking,
        routes::account::delete,
        routes::account::export,
        routes::account::update,
        routes::account::update_user,
        routes::account::restrict,
        routes::account::privacy_requests,
        routes::account::audit,
        routes::account::grant_support,
        routes::account::support_grant,
        routes::account::revoke_support,
        routes::tracking::open,
        routes::tracking::click,
        routes::tracking::unsubscribe_page,
        routes::tracking::unsubscribe,
        routes::ops::healthz,
        routes::ops::metrics,
    ),
    modifiers(&SecuritySchemes, &CommonErrors)
)]
pub struct ApiDoc;

/// The answers every route of a kind can give, documented once rather than on each
/// handler: a keyed route's 401 (no or unknown key) and 403 (scope, account state); a body's
/// 400 (not JSON), 413 (too large), 415 (not `application/json`) and 422 (a field refused);
/// a query's 422.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                let keyed = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let body = op.request_body.is_some();
                let query = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query)
                });
                let mut add = |code: &str, what: &str| {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(what).into());
                };
                if keyed {
                    add("401", "no key, or one that is not valid");
                    add(
                        "403",
                        "the key's scope or the account's state does not allow it",
                    );
                }
                if body {
                    add("400", "the body is not JSON");
                    add("413", "the body is larger than this server accepts");
                    add("415", "the body is not application/json");
                    add("422", "a field is refused; `field` names it");
                }
                if query {
                    add("422", "a query parameter is refused; `field` names it");
                }
            }
        }
    }
}

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

/// The whole HTTP service.
pub fn router(state: Arc<AppState>) -> Router {
    // Attachments arrive base64-encoded inside JSON: a message at the size limit needs 4/3 of
    // it, plus room for the rest of the request.
    let body_limit = state.acceptor.limits().max_message_bytes / 3 * 4 + 1024 * 1024;
    let openapi = Arc::new(openapi_json());
    Router::new()
        .route("/v1/messages", post(routes::messages::send))
        .route("/v1/messages/{id}", get(routes::messages::get))
        .route("/v1/events", get(routes::events::list))
        .route("/v1/events/stream", get(routes::events::stream))
        .route("/v1/capture", get(routes::capture::list))
        .route("/v1/stats", get(routes::stats::get))
        .route(
            "/v1/webhooks",
            get(routes::webhooks::list).post(routes::webhooks::create),
        )
        .route(
            "/v1/webhooks/{id}",
            get(routes::webhooks::get)
                .patch(routes::webhooks::update)
                .delete(routes::webhooks::remove),
        )
        .route(
            "/v1/webhooks/{id}/deliveries",
            get(routes::webhooks::deliveries),
        )
        .route(
            "/v1/suppressions",
            get(routes::suppressions::list).post(routes::suppressions::add),
        )
        .route(
            "/v1/suppressions/{address}",
            axum::routing::delete(routes::suppressions::remove),
        )
        .route(
            "/v1/domains",
            get(routes::domains::list).post(routes::domains::add),
        )
        .route(
            "/v1/domains/{name}",
            get(routes::domains::get).delete(routes::domains::remove),
        )
        .route("/v1/domains/{name}/verify", post(routes::domains::verify))
        .route(
            "/v1/domains/{name}/tracking",
            axum::routing::put(routes::domains::set_tracking),
        )
        .route(
            "/v1/keys",
            get(routes::keys::list).post(routes::keys::create),
        )
        .route("/v1/keys/{id}", axum::routing::delete(routes::keys::revoke))
        .route(
            "/v1/account",
            get(routes::account::get)
                .patch(routes::account::update)
                .delete(routes::account::delete),
        )
        .route(
            "/v1/users/{id}",
            axum::routing::patch(routes::account::update_user),
        )
        .route(
            "/v1/account/restriction",
            axum::routing::put(routes::account::restrict),
        )
        .route("/v1/audit", get(routes::account::audit))
        .route(
            "/v1/support/grant",
            get(routes::account::support_grant)
                .put(routes::account::grant_support)
                .delete(routes::account::revoke_support),
        )
        .route(
            "/v1/privacy/requests",
            get(routes::account::privacy_requests),
        )
        .route("/v1/account/export", get(routes::account::export))
        .route(
            "/v1/account/tracking",
            axum::routing::patch(routes::account::update_tracking),
        )
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        (*doc).clone(),
                    )
                }
            }),
        )
        .route("/o/{token}", get(routes::tracking::open))
        .route("/c/{token}", get(routes::tracking::click))
        .route(
            "/u/{token}",
            get(routes::tracking::unsubscribe_page).post(routes::tracking::unsubscribe),
        )
        .route("/healthz", get(routes::ops::healthz))
        .route("/metrics", get(routes::ops::metrics))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_responses,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                refuse_declared_oversize(req, next, body_limit)
            },
        ))
        .with_state(state)
}

/// A body whose declared length is past the limit is refused before any of it is read: the
/// client learns at once, and the server neither reads nor buffers what it would throw away.
async fn refuse_declared_oversize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    limit: usize,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::payload_too_large().into_response();
    }
    next.run(req).await
}

/// Bounds of the HTTP server itself, before any route runs.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Connections at once; one more is closed at once (the public routes are reachable
    /// by anyone, so a client that opens many must not starve the API).
    pub max_connections: usize,
    /// A request's header must arrive whole within this, or its connection is closed: a
    /// client that trickles bytes cannot hold a connection open (slowloris).
    pub header_read_timeout: std::time::Duration,
}

/// Serves the API on `listener` until `shutdown` completes, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let stopping = state.stopping.clone();
    let app = router(state);
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many HTTP connections; closing a new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let mut app = app.clone();
                async move {
                    use tower_service::Service as _;
                    app.call(req.map(axum::body::Body::new)).await
                }
            });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    let _ = stopping.send(true);
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
