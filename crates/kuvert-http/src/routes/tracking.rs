//! The public tracking endpoints: the open pixel, the click redirect and the unsubscribe
//! page. No key is needed; the signed token in the path is the authority, so a forged or
//! altered one is a plain 404, and the redirect can only go where a message of ours linked.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kuvert_core::event::Interaction;
use kuvert_core::tracking::{
    AccountTracking, ClientClass, Link, client_class, parse_token, truncate_ip,
};
use kuvert_store::{Engagement, RecipientRef};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// A coarse class of the client, not its user agent.
fn agent_class(headers: &HeaderMap) -> ClientClass {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    client_class(ua)
}

/// The recipient a token names, when the token is genuine and of the kind the route serves,
/// with its account's tracking settings.
async fn recipient(
    state: &AppState,
    peer: SocketAddr,
    token: &str,
    kind: fn(&Link) -> bool,
) -> Result<(RecipientRef, Link, AccountTracking), ApiError> {
    // Anyone may follow these links, and each one is a write: a rate per client network.
    super::per_network(&state.tracking_hits, peer)?;
    let t = parse_token(state.store.tracking_key(), token)
        .filter(|t| kind(&t.link))
        .ok_or(ApiError::not_found("link"))?;
    let r = state
        .store
        .recipient_ref(&t.recipient)
        .await?
        // A token is good only for the account whose message carried it.
        .filter(|r| r.account_id == t.account)
        .ok_or(ApiError::not_found("link"))?;
    let link = t.link;
    let account = state.store.account_state(&r.account_id).await?;
    let mut settings = account.tracking;
    if account.status != kuvert_core::account::AccountStatus::Active {
        // A restricted account processes nothing: the links still answer, and count nothing.
        settings.mode = kuvert_core::tracking::TrackingMode::Off;
    }
    Ok((r, link, settings))
}

fn details(peer: SocketAddr, headers: &HeaderMap, settings: &AccountTracking) -> Interaction {
    let ip = match settings.truncate_ip {
        true => truncate_ip(peer.ip()),
        false => peer.ip().to_canonical().to_string(),
    };
    Interaction {
        client: Some(agent_class(headers)),
        ip: Some(ip),
        url: None,
    }
}

/// The open pixel: records an open, answers a 1×1 GIF that is never cached.
#[utoipa::path(get, path = "/o/{token}", tag = "tracking", params(("token" = String, Path)),
    responses((status = 200, content_type = "image/gif"), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn open(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let (r, _, settings) = recipient(&state, peer, &token, |l| *l == Link::Open).await?;
    let data = details(peer, &headers, &settings);
    state
        .store
        .record_engagement(&r, &Engagement::Open, data, settings.mode)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/gif"),
            (
                header::CACHE_CONTROL,
                "no-cache, no-store, must-revalidate, private",
            ),
            (header::PRAGMA, "no-cache"),
            (header::EXPIRES, "0"),
        ],
        PIXEL,
    )
        .into_response())
}

/// The click redirect: records the click, then 302 to where the message linked.
#[utoipa::path(get, path = "/c/{token}", tag = "tracking", params(("token" = String, Path)),
    responses((status = 302, description = "to the link's original URL"), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn click(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let (r, link, settings) =
        recipient(&state, peer, &token, |l| matches!(l, Link::Click(_))).await?;
    let Link::Click(url) = link else {
        unreachable!("the filter passed only clicks")
    };
    // Links are checked when rewritten; one that still cannot be a header is no link.
    let location =
        header::HeaderValue::try_from(url.as_str()).map_err(|_| ApiError::not_found("link"))?;
    let mut data = details(peer, &headers, &settings);
    data.url = Some(url);
    state
        .store
        .record_engagement(&r, &Engagement::Click, data, settings.mode)
        .await?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            ),
        ],
    )
        .into_response())
}

/// GET of an unsubscribe link: a page with a button. Mail scanners follow GET links, so a
/// GET alone never unsubscribes anyone.
#[utoipa::path(get, path = "/u/{token}", tag = "tracking", params(("token" = String, Path)),
    responses((status = 200, content_type = "text/html"), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn unsubscribe_page(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    recipient(&state, peer, &token, |l| *l == Link::Unsubscribe).await?;
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>\
         <body><h1>Unsubscribe</h1><p>Stop receiving these e-mails?</p>\
         <form method=\"post\" action=\"{token}\"><button type=\"submit\">Unsubscribe</button></form></body></html>"
    ))
    .into_response())
}

/// POST of an unsubscribe link (RFC 8058 one-click, or the page's button): done at once. A
/// campaign's copy leaves the campaign's lists, and the answer offers to leave every list.
#[utoipa::path(post, path = "/u/{token}", tag = "tracking", params(("token" = String, Path)),
    responses((status = 200, content_type = "text/html"), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn unsubscribe(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    unsubscribe_from(&state, peer, &headers, &token, Engagement::Unsubscribe).await
}

/// POST from the page after an unsubscribe: off every list of the sender's account.
#[utoipa::path(post, path = "/u/{token}/all", tag = "tracking", params(("token" = String, Path)),
    responses((status = 200, content_type = "text/html"), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn unsubscribe_all(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    unsubscribe_from(&state, peer, &headers, &token, Engagement::LeaveAll).await
}

async fn unsubscribe_from(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    token: &str,
    what: Engagement,
) -> Result<Response, ApiError> {
    let (r, _, settings) = recipient(state, peer, token, |l| *l == Link::Unsubscribe).await?;
    let data = details(peer, headers, &settings);
    let done = state
        .store
        .record_engagement(&r, &what, data, settings.mode)
        .await?;
    let mut names = Vec::new();
    for id in &done.lists {
        if let Ok(list) = state.store.list(&r.account_id, id).await {
            names.push(kuvert_template::escape_html(&list.settings.name));
        }
    }
    let said = if done.everything {
        "You are unsubscribed from every list of this sender.".to_owned()
    } else if !names.is_empty() {
        format!("You are unsubscribed from: {}.", names.join(", "))
    } else {
        "You are unsubscribed.".to_owned()
    };
    // The form posts to this token's own /all (the page is at /u/{token}).
    let offer = if done.everything || done.suppressed {
        String::new()
    } else {
        let token = kuvert_template::escape_html(token);
        format!(
            "<form method=\"post\" action=\"{token}/all\"><p>Or stop every e-mail of this sender's lists:</p>\
             <button type=\"submit\">Leave every list</button></form>"
        )
    };
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribed</title></head>\
         <body><p>{said}</p>{offer}</body></html>"
    ))
    .into_response())
}
