//! Who is looking: a viewer logs in with the node's bearer token (from the wallet-signed
//! challenge of `POST /v1/auth/challenge` + `/v1/auth/login`, or from `reef dashboard login`)
//! and gets it back as an `HttpOnly`, `SameSite=Strict` cookie, which the pages' requests and
//! their `EventSource` then carry. Without one the viewer is a stranger and sees what is public.

use alloy_primitives::Address;
use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use super::{DashError, Dashboard, Result};
use crate::openapi;

/// The session cookie's name.
pub const COOKIE: &str = "reef_session";

/// The viewer of a dashboard request: an address when logged in, `None` for a stranger.
#[derive(Debug, Clone, Copy)]
pub struct Viewer(pub Option<Address>);

impl Viewer {
    /// Whether the viewer is `who` (compared as addresses, whatever the spelling).
    pub fn is(&self, who: &str) -> bool {
        self.0.is_some_and(|me| who.parse::<Address>().is_ok_and(|a| a == me))
    }
}

/// The token a request carries: the session cookie, else an `Authorization: Bearer` header.
fn token_of(parts: &Parts) -> Option<String> {
    let from_cookie = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string());
    from_cookie.or_else(|| {
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
    })
}

impl FromRequestParts<Dashboard> for Viewer {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, d: &Dashboard) -> Result<Self> {
        let Some(token) = token_of(parts).filter(|t| !t.is_empty()) else {
            return Ok(Self(None));
        };
        // An unknown or expired token is a stranger (the page offers to log in again).
        Ok(Self(d.node.token_address(&token).await?))
    }
}

/// Who the session is.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::SessionInfo)]
pub struct SessionInfo {
    /// The logged-in address, or `null` for a stranger.
    #[schema(value_type = Option<openapi::Address>, required)]
    pub address: Option<Address>,
}

/// A login: the bearer token to exchange for the session cookie.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = dashboard::NewSession)]
pub struct NewSession {
    /// A token from `POST /v1/auth/login` or `reef dashboard login` (letters and digits, at
    /// most 200).
    pub token: String,
}

fn cookie(value: &str, max_age: u64) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .map_err(|_| DashError::BadRequest("the token is not a plain string".into()))
}

/// `POST /v1/dashboard/session {"token": …}`: checks the token, sets the session cookie.
#[utoipa::path(post, path = "/v1/dashboard/session", operation_id = "dashboard_login", tag = "dashboard",
    description = "Trades a bearer token for the dashboard's session: an `HttpOnly`, `SameSite=Strict` cookie `reef_session` that lives as long as the node's tokens (`--token-ttl-secs`).",
    request_body = NewSession,
    responses(
        (status = 200, description = "Logged in: the token's address, and the cookie", body = SessionInfo,
            headers(("Set-Cookie" = String, description = "`reef_session=<token>; Path=/; HttpOnly; SameSite=Strict; Max-Age=<ttl>`"))),
        (status = 400, description = "A malformed body, or a token that is not letters and digits (bad_request)", body = openapi::ErrorBody),
        (status = 401, description = "An unknown or expired token (unauthenticated)", body = openapi::ErrorBody),
    ))]
pub async fn login(
    State(d): State<Dashboard>,
    body: std::result::Result<Json<NewSession>, axum::extract::rejection::JsonRejection>,
) -> Result<Response> {
    let Json(s) = body.map_err(|e| DashError::BadRequest(format!("malformed login: {e}")))?;
    let token = s.token.trim();
    if token.is_empty() || token.len() > 200 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(DashError::BadRequest(
            "a token is the hex string `reef dashboard login` prints".into(),
        ));
    }
    let address = d.node.token_address(token).await?.ok_or_else(|| {
        DashError::Unauthenticated("unknown or expired token; log in again".into())
    })?;
    let mut r = Json(SessionInfo { address: Some(address) }).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie(token, d.node.config().token_ttl_secs)?);
    Ok(r)
}

/// `GET /v1/dashboard/session`: who the cookie (or bearer token) is.
#[utoipa::path(get, path = "/v1/dashboard/session", operation_id = "dashboard_session", tag = "dashboard",
    description = "Who the session cookie (else the bearer token) is; `address` is `null` for a stranger, an unknown or an expired token.",
    responses(
        (status = 200, description = "The viewer", body = SessionInfo),
    ),
    security((), ("session" = []), ("bearer" = [])))]
pub async fn whoami(viewer: Viewer) -> Json<SessionInfo> {
    Json(SessionInfo { address: viewer.0 })
}

/// `DELETE /v1/dashboard/session`: forgets the cookie (the token itself stays valid until it
/// expires, as for every other client of the node).
#[utoipa::path(delete, path = "/v1/dashboard/session", operation_id = "dashboard_logout", tag = "dashboard",
    description = "Drops the session cookie (the token itself stays valid until it expires).",
    responses(
        (status = 200, description = "Logged out: `address` is `null`, and the cookie is cleared", body = SessionInfo,
            headers(("Set-Cookie" = String, description = "`reef_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`"))),
    ))]
pub async fn logout() -> Result<Response> {
    let mut r = Json(SessionInfo { address: None }).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie("", 0)?);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::token_of;

    fn parts(headers: &[(&str, &str)]) -> axum::http::request::Parts {
        let mut b = Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_wins_over_a_bearer_header() {
        assert_eq!(token_of(&parts(&[])), None);
        let p = parts(&[("cookie", "a=1; reef_session=abc ; b=2")]);
        assert_eq!(token_of(&p).as_deref(), Some("abc"));
        let p = parts(&[("cookie", "x=1"), ("cookie", "reef_session=def")]);
        assert_eq!(token_of(&p).as_deref(), Some("def"));
        let p = parts(&[("authorization", "Bearer tok")]);
        assert_eq!(token_of(&p).as_deref(), Some("tok"));
        let p = parts(&[("authorization", "Bearer tok"), ("cookie", "reef_session=c")]);
        assert_eq!(token_of(&p).as_deref(), Some("c"));
        // A cookie whose name only ends like ours is not ours.
        let p = parts(&[("cookie", "not_reef_session=zzz")]);
        assert_eq!(token_of(&p), None);
    }
}
