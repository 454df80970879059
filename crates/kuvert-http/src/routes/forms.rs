//! The public subscribe form and the confirmation link of double opt-in. No key is needed:
//! a list's form works once its account turns it on, and a confirmation link is good by its
//! signature. Anyone can reach these, so each is rate-limited per client network, and a
//! form's answer is the same whatever came of it (subscribed already, suppressed, sent):
//! it tells a stranger nothing about an address.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{Html, IntoResponse, Response};
use kuvert_core::account::AccountStatus;
use kuvert_core::optin::{Confirmation, parse_token};
use kuvert_store::{Confirmed, OptInRequest, StoreError};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// Largest form body taken: an address, a name and a few hidden fields.
const MAX_FORM_BYTES: usize = 8 * 1024;

/// Confirmation mails one address may be sent per hour, over every list of the instance.
pub const MAILS_PER_ADDRESS_PER_HOUR: u32 = 3;

/// Subscribe requests worked at once, after their answers; more are dropped.
pub const MAX_FORM_WORK: usize = 32;

/// What a subscribe form posts (`application/x-www-form-urlencoded`). Other fields (a submit
/// button's name, say) are ignored.
#[derive(Deserialize, ToSchema)]
pub struct FormIn {
    /// The address to subscribe.
    #[schema(max_length = 320)]
    pub email: String,
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// A honeypot: a field the form hides from people. A post that fills it is a robot's,
    /// answered as any other and otherwise ignored.
    #[serde(default)]
    pub website: String,
}

fn limited(state: &AppState, peer: SocketAddr) -> Result<(), ApiError> {
    super::per_network(&state.form_hits, peer)
}

use kuvert_template::escape_html as escape;

fn page(title: &str, body: &str) -> Response {
    (
        [
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (axum::http::header::X_FRAME_OPTIONS, "DENY"),
            // The link's token is in the URL: no page it leads to learns it.
            (axum::http::header::REFERRER_POLICY, "no-referrer"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
             <body><h1>{title}</h1>{body}</body></html>"
        )),
    )
        .into_response()
}

/// The answer to every accepted form post, whatever came of it.
fn check_your_inbox() -> Response {
    page(
        "Almost done",
        "<p>If the address can receive our mail, a message with a confirmation link is on \
         its way. Your subscription starts when you follow it.</p>",
    )
}

/// A subscribe form's post: the subscription waits for the confirmation link of a mail
/// sent to the address. A list takes posts once its account sets `public_form`.
#[utoipa::path(post, path = "/f/{list}", tag = "forms", params(("list" = String, Path, description = "the list's id")),
    request_body(content = FormIn, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/html", description = "the same page whatever came of it"),
        (status = 404, body = ErrorBody, description = "no such list, or its form is off"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn subscribe(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(list): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    limited(&state, peer)?;
    let (account, list) = match state.store.list_by_id(&list).await {
        Ok(found) => found,
        Err(StoreError::NotFound(_)) => return Err(ApiError::not_found("form")),
        Err(e) => return Err(e.into()),
    };
    if !list.settings.public_form
        || state.store.account_state(&account).await?.status != AccountStatus::Active
    {
        return Err(ApiError::not_found("form"));
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::payload_too_large())?;
    let form: FormIn = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| ApiError::invalid("body", format!("not a form this route takes: {e}")))?;
    let address = super::address("email", form.email.trim())?;
    let name = super::text_field("name", form.name, 200)?;
    let name = name.as_deref().map(str::trim);
    if !form.website.is_empty() {
        tracing::debug!(list = %list.id, "a form post filled the honeypot; ignored");
        return Ok(check_your_inbox());
    }
    // However many lists and accounts ask, an address gets few confirmation mails (a
    // `+tag` makes no other address of it).
    let who = state.store.lookup_hash(&untagged(address.as_str()));
    if !state
        .form_addresses
        .allow_key(who, std::time::Instant::now())
    {
        return Ok(check_your_inbox());
    }
    // The work is done after the answer, so that how long the answer takes says nothing of
    // the address; a full queue drops the request (the poster can send the form again).
    let Ok(permit) = state.form_work.clone().try_acquire_owned() else {
        tracing::warn!(list = %list.id, "too many subscribe requests at once; one dropped");
        return Ok(check_your_inbox());
    };
    let name = name.map(str::to_owned);
    tokio::spawn(async move {
        let _permit = permit;
        match state
            .optin
            .ask(&account, &list, &address, name.as_deref(), true)
            .await
        {
            Ok(OptInRequest::Send(_)) => {}
            Ok(other) => {
                tracing::debug!(list = %list.id, outcome = ?other, "form post without a mail")
            }
            // The account's sender may be refused (a domain not verified, a quota): the person
            // at the form cannot mend that, and the account sees it in its log.
            Err(e) => {
                tracing::warn!(list = %list.id, error = %e, "a confirmation mail was not sent")
            }
        }
    });
    Ok(check_your_inbox())
}

/// The address without a `+tag` in its local part, for counting what it is sent.
fn untagged(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(l, _)| l);
            format!("{local}@{domain}")
        }
        None => address.to_owned(),
    }
}

/// What a genuine, unexpired confirmation link of an active account asks for; anything else
/// is no link.
async fn confirmation(
    state: &AppState,
    peer: SocketAddr,
    token: &str,
) -> Result<Confirmation, ApiError> {
    limited(state, peer)?;
    let now = state.store.clock().now();
    let c =
        parse_token(state.store.tracking_key(), token, now).ok_or(ApiError::not_found("link"))?;
    // A restricted account processes nothing.
    if state.store.account_state(&c.account).await?.status != AccountStatus::Active {
        return Err(ApiError::not_found("link"));
    }
    Ok(c)
}

/// A confirmation link, followed: a page with a button. Mail scanners follow links, so a
/// GET confirms nothing.
#[utoipa::path(get, path = "/s/{token}", tag = "forms", params(("token" = String, Path)),
    responses((status = 200, content_type = "text/html"), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn confirm_page(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let c = confirmation(&state, peer, &token).await?;
    let list = state
        .store
        .list_settings(&c.account, c.list.as_str())
        .await?;
    Ok(page(
        "Confirm your subscription",
        &format!(
            "<p>Receive the mail of the list \u{201c}{}\u{201d}?</p>\
             <form method=\"post\" action=\"{}\"><button type=\"submit\">Yes, subscribe me</button></form>",
            escape(&list.settings.name),
            escape(&token)
        ),
    ))
}

/// The page's button: the subscription starts, and the consent is recorded.
#[utoipa::path(post, path = "/s/{token}", tag = "forms", params(("token" = String, Path)),
    responses((status = 200, content_type = "text/html"), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let c = confirmation(&state, peer, &token).await?;
    let source = peer.ip().to_canonical().to_string();
    let done = state.store.confirm_opt_in(&c, &source).await?;
    Ok(page(
        "Subscribed",
        match done {
            Confirmed::Now => "<p>Thank you: your subscription is confirmed.</p>",
            Confirmed::Already => "<p>Your subscription was confirmed already.</p>",
        },
    ))
}
