//! Kuvert's HTTP API: `/v1` (JSON, authenticated by API key), `/healthz`, `/metrics`, and the
//! OpenAPI document at `/v1/openapi.json`, generated from the handlers themselves.

mod error;
mod extract;
pub mod mailgun;
pub mod mailjet;
mod metrics;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use kuvert_core::domain::DomainSettings;
use kuvert_dns::Dns;
use kuvert_store::Store;
use kuvert_submit::Acceptor;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use metrics::Metrics;
pub use routes::forms::MAX_FORM_WORK;
pub use routes::messages::submission_from_json;

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub acceptor: Acceptor,
    pub dns: Dns,
    pub domain_settings: DomainSettings,
    /// `/metrics`: the process's one registry.
    pub metrics: Metrics,
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
    /// Posts to the public subscribe forms and confirmation links per client network.
    pub form_hits: kuvert_core::ratelimit::RateLimiter,
    /// Confirmation mails per address (by its instance lookup hash), over every list.
    pub form_addresses: kuvert_core::ratelimit::RateLimiter<String>,
    /// Subscribe requests being worked after their answers (`forms::MAX_FORM_WORK`).
    pub form_work: Arc<tokio::sync::Semaphore>,
    /// Double opt-in: confirmation mails and their links.
    pub optin: kuvert_admin::contacts::optin::OptIn,
    /// Wakes the import runner after an upload.
    pub imports: std::sync::Arc<tokio::sync::Notify>,
    /// Wakes the campaign runner (a campaign was scheduled or resumed).
    pub campaigns: std::sync::Arc<tokio::sync::Notify>,
    /// `[contacts] max_import_bytes`.
    pub max_import_bytes: u64,
    /// `[contacts] disposable_domains`.
    pub disposable_domains: Vec<String>,
    /// Live logs open per account.
    pub streams: std::sync::Mutex<std::collections::HashMap<kuvert_core::id::AccountId, u32>>,
}

/// A fresh limiter of confirmation mails per address.
pub fn form_addresses() -> kuvert_core::ratelimit::RateLimiter<String> {
    kuvert_core::ratelimit::RateLimiter::every(
        routes::forms::MAILS_PER_ADDRESS_PER_HOUR,
        std::time::Duration::from_secs(3600),
        routes::forms::MAILS_PER_ADDRESS_PER_HOUR,
    )
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

#[derive(OpenApi)]
#[openapi(
    info(title = "Kuvert API", description = "Self-hosted email delivery. Authenticate with `Authorization: Bearer KEY`, or HTTP Basic with user `api` and the key as password."),
    modifiers(&SecuritySchemes)
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

/// Every documented route with its handler, registered once: the router and the OpenAPI
/// document are both made from this list, so that they cannot disagree.
fn api() -> OpenApiRouter<Arc<AppState>> {
    use routes::*;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(messages::send))
        .routes(routes!(messages::get))
        .routes(routes!(events::list))
        .routes(routes!(events::stream))
        .routes(routes!(capture::list))
        .routes(routes!(stats::get))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::remove))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(suppressions::list, suppressions::add))
        .routes(routes!(suppressions::remove))
        .routes(routes!(domains::list, domains::add))
        .routes(routes!(domains::get, domains::remove))
        .routes(routes!(domains::verify))
        .routes(routes!(domains::set_tracking))
        .routes(routes!(domains::add_key))
        .routes(routes!(domains::rotate_key))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(account::get, account::update, account::delete))
        .routes(routes!(account::update_tracking))
        .routes(routes!(account::export))
        .routes(routes!(account::update_user))
        .routes(routes!(account::restrict))
        .routes(routes!(account::privacy_requests))
        .routes(routes!(account::audit))
        .routes(routes!(
            account::grant_support,
            account::support_grant,
            account::revoke_support
        ))
        .routes(routes!(contacts::list, contacts::create))
        .routes(routes!(contacts::get, contacts::update, contacts::remove))
        .routes(routes!(contacts::bulk_delete))
        .routes(routes!(contacts::export))
        .routes(routes!(
            contacts::properties_list,
            contacts::properties_create
        ))
        .routes(routes!(contacts::properties_delete))
        .routes(routes!(contacts::lists, contacts::list_create))
        .routes(routes!(
            contacts::list_get,
            contacts::list_update,
            contacts::list_delete
        ))
        .routes(routes!(contacts::validate))
        .routes(routes!(imports::create, imports::list))
        .routes(routes!(imports::get, imports::cancel))
        .routes(routes!(imports::confirm))
        .routes(routes!(imports::errors))
        .routes(routes!(segments::list, segments::create))
        .routes(routes!(segments::get, segments::remove))
        .routes(routes!(segments::preview))
        .routes(routes!(templates::list, templates::create))
        .routes(routes!(
            templates::get,
            templates::update,
            templates::remove
        ))
        .routes(routes!(templates::add_version))
        .routes(routes!(
            templates::get_version,
            templates::update_version,
            templates::remove_version
        ))
        .routes(routes!(templates::preview))
        .routes(routes!(templates::test_send))
        .routes(routes!(campaigns::list, campaigns::create))
        .routes(routes!(
            campaigns::get,
            campaigns::update,
            campaigns::remove
        ))
        .routes(routes!(campaigns::test_send))
        .routes(routes!(campaigns::stats))
        .routes(routes!(campaigns::action))
        .routes(routes!(tracking::open))
        .routes(routes!(tracking::click))
        .routes(routes!(tracking::unsubscribe_page, tracking::unsubscribe))
        .routes(routes!(tracking::unsubscribe_all))
        .routes(routes!(forms::subscribe))
        .routes(routes!(forms::confirm_page, forms::confirm))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::metrics))
}

/// The routes and their document, with the answers every route of a kind can give.
fn routes_and_document() -> (Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = api().split_for_parts();
    utoipa::Modify::modify(&CommonErrors, &mut doc);
    (router, doc)
}

pub fn openapi_json() -> String {
    routes_and_document()
        .1
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

/// A path no route serves, answered in the shape of the API it looks like: a client of
/// Mailgun's or Mailjet's API calling an endpoint Kuvert does not serve yet gets an error it
/// can read.
fn not_served(path: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    const WHY: &str = "this endpoint is not served by this server (see its compatibility table)";
    let mailjet = [
        "/v3/REST/",
        "/v3/DATA/",
        "/v3.1/",
        "/v4/REST/",
        "/v4/contacts",
    ];
    if mailjet.iter().any(|p| path.starts_with(p)) {
        mailjet::MjError::new(axum::http::StatusCode::NOT_FOUND, WHY).into_response()
    } else if ["/v3/", "/v4/", "/v5/"].iter().any(|p| path.starts_with(p)) {
        mailgun::MgError::new(axum::http::StatusCode::NOT_FOUND, WHY).into_response()
    } else {
        ApiError::not_found("route").into_response()
    }
}

/// The whole HTTP service.
pub fn router(state: Arc<AppState>) -> Router {
    // Attachments arrive base64-encoded inside JSON: a message at the size limit needs 4/3 of
    // it, plus room for the rest of the request.
    let body_limit = state.acceptor.limits().max_message_bytes / 3 * 4 + 1024 * 1024;
    // An import's CSV is streamed into the store, with its own bound.
    let import_limit = state.max_import_bytes;
    let (api, doc) = routes_and_document();
    let openapi = Arc::new(
        doc.to_pretty_json()
            .expect("the OpenAPI document serialises"),
    );
    api.merge(mailgun::router())
        .merge(mailjet::router())
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
        .fallback(|uri: axum::http::Uri| async move { not_served(uri.path()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_responses,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let limit = if req.method() == axum::http::Method::POST
                    && req.uri().path() == "/v1/imports"
                {
                    usize::try_from(import_limit).unwrap_or(usize::MAX)
                } else {
                    body_limit
                };
                refuse_declared_oversize(req, next, limit)
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
