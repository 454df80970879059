//! Extractors: JSON bodies with errors that name the field, and API-key authentication.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kuvert_core::account::AccountStatus;
use kuvert_core::apikey::{Scope, hash_key};
use kuvert_store::KeyAuth;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

/// A JSON body. Broken JSON is `400 malformed_json`; JSON of the wrong shape is
/// `422 invalid_field` with the path of the offending field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            if !ct.starts_with("application/json") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::UnsupportedMediaType,
                    format!("expected Content-Type: application/json, got {ct:?}"),
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await?;
        from_json(&bytes).map(Self)
    }
}

/// A JSON body read as `ApiJson` reads it, with the same errors.
pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every request body is an object; serde would also read a struct from an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidField,
            "the body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                let mut err = ApiError::invalid(path.clone(), format!("{path}: {inner}"));
                if path == "." {
                    err.field = None;
                    err.message = inner.to_string();
                }
                Err(err)
            } else {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::MalformedJson,
                    format!("the body is not valid JSON: {inner}"),
                ))
            }
        }
    }
}

/// A request made with a valid API key of an active account.
/// `Authorization: Bearer KEY`, or HTTP Basic with any user (Mailgun clients send `api`) and
/// the key as password.
pub struct Auth(pub KeyAuth);

/// Like [`Auth`], but the key must have the `full` scope: every endpoint except sending.
pub struct FullAccess(pub KeyAuth);

fn key_from_header(parts: &Parts) -> Result<String, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "an API key is needed: Authorization: Bearer KEY, or Basic with user api",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not readable"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiError::unauthorized("the Basic credentials are not valid base64"))?;
        let (_user, key) = decoded
            .split_once(':')
            .ok_or_else(|| ApiError::unauthorized("Basic credentials need user:key"))?;
        return Ok(key.to_owned());
    }
    Err(ApiError::unauthorized("use the Bearer or Basic scheme"))
}

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let key = key_from_header(parts)?;
        let auth = state
            .store
            .authenticate(&hash_key(&key))
            .await?
            .ok_or_else(|| ApiError::unauthorized("the API key is not valid"))?;
        // A restricted account may still read and rectify its data and lift the
        // restriction; sending refuses it (`accept`).
        if !matches!(
            auth.account_status,
            AccountStatus::Active | AccountStatus::Restricted
        ) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AccountInactive,
                format!("the account is {}", auth.account_status),
            ));
        }
        Ok(Self(auth))
    }
}

impl FromRequestParts<Arc<AppState>> for FullAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Auth(auth) = Auth::from_request_parts(parts, state).await?;
        if auth.scope != Scope::Full {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::InsufficientScope,
                format!(
                    "this key has the {} scope; this endpoint needs a full key",
                    auth.scope
                ),
            ));
        }
        // Every use of a full key reads or changes the account's data: the audit log has it
        // before the handler runs (and the request fails if it cannot be written).
        // The path can name a person (`/v1/suppressions/ann@example.com`): the route goes
        // in clear, the path itself sealed.
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_canonical().to_string());
        let path = parts.uri.path();
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or("(unmatched)", |m| m.as_str());
        state
            .store
            .audit(
                &auth.account_id,
                kuvert_core::account::ActorKind::Key,
                auth.key_id.as_str(),
                &format!("{} {route}", parts.method),
                (path != route).then_some(path),
                ip.as_deref(),
            )
            .await?;
        Ok(Self(auth))
    }
}

/// Query parameters; a malformed one is `422 invalid_field` in the usual error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let uri = &parts.uri;
        // An empty value is refused, not read as absent: the document says so (minLength 1).
        if let Some(name) = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find_map(|(name, value)| value.is_empty().then_some(name))
        {
            return Err(ApiError::invalid(
                name,
                format!("{name} is empty; leave it out instead"),
            ));
        }
        axum::extract::Query::<T>::try_from_uri(uri)
            .map(|q| Self(q.0))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::InvalidField,
                    e.body_text(),
                )
            })
    }
}

/// A count given as a JSON number: `663` or `663.0` (JSON does not tell the two apart, and
/// neither does the OpenAPI `integer`); a fraction or a negative number is refused.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = f64::deserialize(d)?;
    if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(serde::de::Error::custom(format!(
            "{n} is not a whole number from 0 to {}",
            u32::MAX
        )))
    }
}
