//! The HTTP surface: `/mcp` (and `/mcp/v1`) guarded by authentication, and
//! the unauthenticated `/health` and `/livez`.
//!
//! The guard in front of rmcp's Streamable HTTP service checks the Origin,
//! bounds and buffers the body, and authenticates the bearer token. A request
//! without a token is let through only for what a client must do before it
//! has one: the handshake (`initialize`, `server/discover`, `ping`,
//! notifications) and `tools/call authenticate_user`. A token that is present
//! but wrong is always refused, whatever the method.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::{BodyExt, Limited};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::auth::{AuthFailure, Principal};
use crate::client_ip::ClientIp;
use crate::config::HostPolicy;
use crate::sessions;
use crate::state::AppState;
use crate::tools::McpHandler;

/// The whole application router.
pub fn app(state: Arc<AppState>) -> Router {
    let tools = McpHandler::router();
    let handler_state = state.clone();
    let mut rmcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(state.config.max_body_bytes);
    rmcp_config = match &state.config.allowed_hosts {
        HostPolicy::Loopback => rmcp_config.with_allowed_hosts(["localhost", "127.0.0.1", "::1"]),
        HostPolicy::Any => rmcp_config.disable_allowed_hosts(),
        HostPolicy::List(list) => rmcp_config.with_allowed_hosts(list.clone()),
    };
    let mcp = StreamableHttpService::new(
        move || Ok(McpHandler::new(handler_state.clone(), tools.clone())),
        Arc::new(NeverSessionManager::default()),
        rmcp_config,
    );
    let guarded = Router::new()
        .route_service("/mcp", mcp.clone())
        .route_service("/mcp/v1", mcp)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/health", get(crate::health::health))
        .route("/livez", get(|| async { "ok\n" }))
        .merge(guarded)
        .with_state(state)
}

/// Methods a client may call before it holds a credential.
fn is_public(method: &str, tool: Option<&str>) -> bool {
    matches!(method, "initialize" | "ping" | "server/discover")
        || method.starts_with("notifications/")
        || (method == "tools/call" && tool == Some("authenticate_user"))
}

#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<PeekParams>,
}

#[derive(Deserialize)]
struct PeekParams {
    #[serde(default)]
    name: Option<String>,
}

impl Peek {
    fn is_public(&self) -> bool {
        let tool = self.params.as_ref().and_then(|p| p.name.as_deref());
        self.method.as_deref().is_some_and(|m| is_public(m, tool))
    }
}

/// Whether a JSON-RPC body (one message or a batch) may pass without a token.
fn body_is_public(body: &[u8]) -> bool {
    if let Ok(one) = serde_json::from_slice::<Peek>(body) {
        return one.is_public();
    }
    serde_json::from_slice::<Vec<Peek>>(body)
        .is_ok_and(|batch| !batch.is_empty() && batch.iter().all(Peek::is_public))
}

/// The bearer token in `Authorization`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticate a bearer token against the live stores: a session token
/// (signed, from `authenticate_user`) or an API token from `tokens.yaml`.
pub fn authenticate(state: &AppState, token: &str) -> Result<Principal, AuthFailure> {
    let now = OffsetDateTime::now_utc();
    if token.starts_with(sessions::PREFIX) {
        let user = sessions::verify(token, &state.session_keys.load(), &state.users.load(), now)
            .map_err(AuthFailure::Session)?;
        return Ok(Principal {
            subject: format!("user:{user}"),
            database: None,
        });
    }
    state.tokens.load().authenticate(token, now)
}

async fn guard(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::POST {
        // rmcp answers GET and DELETE with 405 in stateless mode.
        return next.run(req).await;
    }
    let ip = state.client_ip.resolve(peer, req.headers());
    if let Err(retry_after) = state.limiter.check(ip) {
        return too_many_failures(retry_after);
    }
    if !origin_allowed(&state, req.headers()) {
        return error_response(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let (mut parts, body) = req.into_parts();
    let limited = Limited::new(body, state.config.max_body_bytes).collect();
    let bytes: Bytes = match tokio::time::timeout(state.config.request_timeout, limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Ok(Err(_)) => {
            return error_response(StatusCode::BAD_REQUEST, "could not read the request body");
        }
        Err(_) => {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            );
        }
    };
    match bearer(&parts.headers) {
        Some(token) => match authenticate(&state, token) {
            Ok(principal) => {
                parts.extensions.insert(principal);
            }
            Err(failure) => {
                state.limiter.record_failure(ip);
                tracing::info!(client_ip = %ip, reason = failure.label(), "authentication failed");
                return unauthorized(failure);
            }
        },
        None if body_is_public(&bytes) => {}
        None => return unauthorized(AuthFailure::Missing),
    }
    parts.extensions.insert(ClientIp(ip));
    let request = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout(state.config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_response(StatusCode::GATEWAY_TIMEOUT, "request timed out"),
    }
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

fn unauthorized(failure: AuthFailure) -> Response {
    let challenge = match failure {
        AuthFailure::Missing => "Bearer realm=\"mcp\"",
        _ => "Bearer realm=\"mcp\", error=\"invalid_token\"",
    };
    let message = match failure {
        AuthFailure::Missing => "authentication required: send Authorization: Bearer <token>",
        AuthFailure::Expired | AuthFailure::Session(sessions::SessionFailure::Expired) => {
            "token expired"
        }
        AuthFailure::Unknown | AuthFailure::Session(_) => "invalid token",
    };
    let mut resp = error_response(StatusCode::UNAUTHORIZED, message);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}

pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_handshake_and_login_are_public() {
        assert!(body_is_public(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#
        ));
        assert!(body_is_public(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        ));
        assert!(body_is_public(
            br#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#
        ));
        assert!(body_is_public(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"authenticate_user","arguments":{}}}"#
        ));
        assert!(!body_is_public(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_knowledgebase"}}"#
        ));
        assert!(!body_is_public(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        ));
        assert!(!body_is_public(
            br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#
        ));
        assert!(!body_is_public(b"[]"));
        assert!(!body_is_public(b"not json"));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
