//! The guard in front of rmcp: each MCP POST is bounded and read, checked
//! (start-up, failed-auth limit, Origin), authenticated, checked as
//! JSON-RPC, answered from the replay cache or passed to rmcp, then counted
//! and logged with its [`Outcome`].

use std::future::Future;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, Limited};

use crate::auth::client_ip::ClientIp;
use crate::auth::oauth::OAuthFailure;
use crate::auth::oauth::jwt::JwtFailure;
use crate::auth::sessions;
use crate::auth::{AuthFailure, Credential, credential};
use crate::http::envelope::Body as MessageBody;
use crate::http::error_response;
use crate::http::inspect::{X_REQUEST_ID, inspect, request_id};
use crate::http::jsonrpc::{classify, malformed, not_a_message};
use crate::http::outcome::Outcome;
use crate::state::AppState;

/// What the guard learned of a request, for its log line and metrics.
struct Seen {
    method: &'static str,
    tool: &'static str,
    outcome: Outcome,
    client_ip: Option<std::net::IpAddr>,
}

/// Check, authenticate, count and log one MCP POST; `rmcp` answers it if it
/// passes.
pub(crate) async fn guard<F, B>(
    state: &AppState,
    peer: SocketAddr,
    req: Request,
    rmcp: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = axum::http::Response<B>>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let start = std::time::Instant::now();
    let id = request_id(req.headers());
    state.metrics.in_flight.inc();
    let (mut response, seen) = guarded(state, peer, req, rmcp).await;
    state.metrics.in_flight.dec();
    let elapsed = start.elapsed();
    state.metrics.request(
        seen.method,
        seen.tool,
        seen.outcome.label(),
        elapsed.as_secs_f64(),
    );
    tracing::info!(
        request_id = %id,
        method = seen.method,
        tool = seen.tool,
        status = response.status().as_u16(),
        outcome = seen.outcome.label(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        client_ip = %seen.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}

async fn guarded<F, B>(
    state: &AppState,
    peer: SocketAddr,
    req: Request,
    rmcp: impl FnOnce(Request) -> F,
) -> (Response, Seen)
where
    F: Future<Output = axum::http::Response<B>>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let ip = state.client_ip.resolve(peer, req.headers());
    let mut seen = Seen {
        method: "unknown",
        tool: "",
        outcome: Outcome::Rejected,
        client_ip: Some(ip),
    };
    // The body is read first, even for a request about to be refused: an
    // answer that leaves a body unread must close the connection, and a
    // close with unread bytes is a reset that can destroy the answer before
    // the client reads it. A body that cannot be read whole closes it.
    let (mut parts, body) = req.into_parts();
    let limited = Limited::new(body, state.config.max_body_bytes).collect();
    let bytes: Bytes = match tokio::time::timeout(state.config.request_timeout, limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
            let answer = error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
            return (closing(answer), seen);
        }
        Ok(Err(_)) => {
            let answer = error_response(StatusCode::BAD_REQUEST, "could not read the request body");
            return (closing(answer), seen);
        }
        Err(_) => {
            seen.outcome = Outcome::Timeout;
            let answer = error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            );
            return (closing(answer), seen);
        }
    };
    // Still loading its files: wait for them rather than answer 401 or a
    // tool error for want of them (see `AppState::wait_past_start`).
    if !state.wait_past_start(state.config.request_timeout).await {
        seen.outcome = Outcome::Timeout;
        let mut answer = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "still starting: the data files are not loaded yet",
        );
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return (answer, seen);
    }
    if let Err(retry_after) = state.limiter.check(ip) {
        state.metrics.rate_limited.inc();
        seen.outcome = Outcome::RateLimited;
        return (too_many_failures(retry_after), seen);
    }
    if !origin_allowed(state, &parts.headers) {
        return (
            error_response(StatusCode::FORBIDDEN, "origin not allowed"),
            seen,
        );
    }
    let message = MessageBody::parse(&bytes);
    let body = inspect(&message);
    (seen.method, seen.tool) = (body.method, body.tool);
    let principal = match credential(&parts.headers) {
        Credential::Bearer(token) => match state.authenticate(token).await {
            Ok(principal) => Some(principal),
            // A good token short of a scope is no guess: 403, not counted
            // toward the failed-auth limit.
            Err(failure @ AuthFailure::OAuth(OAuthFailure::InsufficientScope)) => {
                state.metrics.auth_failure(failure.label());
                seen.outcome = Outcome::Forbidden;
                return (insufficient_scope(state), seen);
            }
            Err(failure) => return refuse(state, ip, failure, &mut seen),
        },
        Credential::Ambiguous => return refuse(state, ip, AuthFailure::Ambiguous, &mut seen),
        Credential::None if body.public => None,
        Credential::None => {
            state.metrics.auth_failure(AuthFailure::Missing.label());
            seen.outcome = Outcome::Unauthorized;
            return (unauthorized(state, AuthFailure::Missing), seen);
        }
    };
    // A client pushed over the limit by a concurrent failure is refused
    // even with a good credential: no guess made after the limit counts.
    if principal.is_some()
        && let Err(retry_after) = state.limiter.check(ip)
    {
        state.metrics.rate_limited.inc();
        seen.outcome = Outcome::RateLimited;
        return (too_many_failures(retry_after), seen);
    }
    if let Some(answer) = malformed(&message, &bytes) {
        seen.outcome = Outcome::RpcError;
        return (answer, seen);
    }
    let replayable = match &message {
        MessageBody::One(one) => crate::http::replay::Replayable::of(
            one,
            &parts.headers,
            state.catalog.load().epoch(),
            state.answers_vary_by_caller(),
            &principal
                .as_ref()
                .map(crate::auth::Principal::fingerprint)
                .unwrap_or_default(),
        ),
        _ => None,
    };
    drop(message);
    if let Some(answer) = replayable.as_ref().and_then(|r| state.replies.answer(r)) {
        state.metrics.replayed.inc();
        seen.outcome = Outcome::Ok;
        return (answer, seen);
    }
    let sent_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if let Some(principal) = principal {
        parts.extensions.insert(principal);
    }
    parts.extensions.insert(ClientIp(ip));
    let request = Request::from_parts(parts, Body::from(bytes.clone()));
    let response = match tokio::time::timeout(state.config.request_timeout, rmcp(request)).await {
        Ok(response) => response.map(Body::new),
        Err(_) => {
            seen.outcome = Outcome::Timeout;
            return (
                error_response(StatusCode::GATEWAY_TIMEOUT, "request timed out"),
                seen,
            );
        }
    };
    if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE && sent_json {
        // JSON that rmcp could not decode as a message although the guard
        // could read its envelope (a value it skipped is malformed): a
        // JSON-RPC error, not a media-type one.
        seen.outcome = Outcome::RpcError;
        return (not_a_message(&bytes), seen);
    }
    if !response.status().is_success() {
        seen.outcome = Outcome::Rejected;
        return (response, seen);
    }
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            seen.outcome = Outcome::Error;
            return (Response::from_parts(parts, Body::empty()), seen);
        }
    };
    seen.outcome = classify(&bytes);
    if let Some(r) = replayable
        && seen.outcome == Outcome::Ok
    {
        state.replies.learn(r, parts.status, &parts.headers, &bytes);
    }
    (Response::from_parts(parts, Body::from(bytes)), seen)
}

/// Count a refused credential and answer it: 401 (400 for an ambiguous
/// one), or 429 if this failure is one over the limit. The limiter checks
/// and counts in one step, so concurrent guesses cannot overshoot it.
fn refuse(
    state: &AppState,
    ip: std::net::IpAddr,
    failure: AuthFailure,
    seen: &mut Seen,
) -> (Response, Seen) {
    state.metrics.auth_failure(failure.label());
    let seen = Seen {
        method: seen.method,
        tool: seen.tool,
        outcome: Outcome::Unauthorized,
        client_ip: seen.client_ip,
    };
    if let Err(retry_after) = state.limiter.record_failure(ip) {
        state.metrics.rate_limited.inc();
        return (
            too_many_failures(retry_after),
            Seen {
                outcome: Outcome::RateLimited,
                ..seen
            },
        );
    }
    (unauthorized(state, failure), seen)
}

/// `response` with `Connection: close`: the request's body was not read to
/// its end, so the connection cannot carry another request.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 429 for a client over the failed-authentication limit.
fn too_many_failures(retry_after: std::time::Duration) -> Response {
    let mut resp = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed authentications; retry later",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The MCP spec asks servers to validate `Origin` against DNS rebinding. A
/// request with no Origin (any non-browser client) passes; a browser's
/// Origin must be the request's own host or on the allow-list.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
    let allowed = &state.config.allowed_origins;
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let origin_authority = origin.split_once("://").map(|(_, rest)| rest);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((origin_authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// 401 (400 for an ambiguous credential). With OAuth on, the challenge
/// points to the protected-resource metadata and names the scopes
/// (RFC 9728 §5.1), which is how an MCP client finds the issuer.
fn unauthorized(state: &AppState, failure: AuthFailure) -> Response {
    let error = match failure {
        AuthFailure::Missing => None,
        AuthFailure::Ambiguous => Some("invalid_request"),
        _ => Some("invalid_token"),
    };
    let challenge = match (&state.oauth, error) {
        (Some(rs), error) => rs.challenge(error),
        (None, None) => HeaderValue::from_static("Bearer realm=\"mcp\""),
        (None, Some("invalid_request")) => {
            HeaderValue::from_static("Bearer realm=\"mcp\", error=\"invalid_request\"")
        }
        (None, Some(_)) => {
            HeaderValue::from_static("Bearer realm=\"mcp\", error=\"invalid_token\"")
        }
    };
    let status = match failure {
        AuthFailure::Ambiguous => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    };
    let message = match failure {
        AuthFailure::Missing => "authentication required: send Authorization: Bearer <token>",
        AuthFailure::Ambiguous => "send exactly one Authorization header",
        AuthFailure::Expired
        | AuthFailure::Session(sessions::SessionFailure::Expired)
        | AuthFailure::OAuth(OAuthFailure::Invalid(JwtFailure::Expired)) => "token expired",
        AuthFailure::Unknown | AuthFailure::Session(_) | AuthFailure::OAuth(_) => "invalid token",
    };
    let mut resp = error_response(status, message);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    resp
}

/// 403 for an OAuth token without a scope this server requires.
fn insufficient_scope(state: &AppState) -> Response {
    let mut resp = error_response(
        StatusCode::FORBIDDEN,
        "the access token lacks a scope this server requires",
    );
    if let Some(rs) = &state.oauth {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            rs.challenge(Some("insufficient_scope")),
        );
    }
    resp
}
