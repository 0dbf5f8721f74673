//! The HTTP surface: `/mcp` (and `/mcp/v1`) guarded by authentication, and
//! the unauthenticated `/health` and `/livez`.
//!
//! The guard in front of rmcp's Streamable HTTP service checks the Origin,
//! bounds and buffers the body, and authenticates the bearer token. A request
//! without a token is let through only for what a client must do before it
//! has one: the handshake (`initialize`, `server/discover`, `ping`,
//! notifications) and `tools/call authenticate_user`. A token that is present
//! but wrong is always refused, whatever the method.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::{BodyExt, Limited};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::auth::{AuthFailure, Principal};
use crate::client_ip::ClientIp;
use crate::config::HostPolicy;
use crate::envelope::{Body as MessageBody, Envelope};
use crate::sessions;
use crate::state::AppState;
use crate::tools::McpHandler;

type Rmcp = StreamableHttpService<McpHandler, NeverSessionManager>;

/// The service every connection runs. `/mcp` and `/mcp/v1` go straight to
/// the guard and rmcp, the hot path with no router or middleware in between;
/// everything else goes through the axum router. Cheap to clone.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

struct AppInner {
    state: Arc<AppState>,
    rmcp: Rmcp,
    router: Router,
}

impl App {
    pub fn new(state: Arc<AppState>) -> App {
        let tools = McpHandler::router(&state);
        let handler_state = state.clone();
        let mut rmcp_config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_max_request_body_bytes(state.config.max_body_bytes);
        rmcp_config = match &state.config.allowed_hosts {
            HostPolicy::Loopback => {
                rmcp_config.with_allowed_hosts(["localhost", "127.0.0.1", "::1"])
            }
            HostPolicy::Any => rmcp_config.disable_allowed_hosts(),
            HostPolicy::List(list) => rmcp_config.with_allowed_hosts(list.clone()),
        };
        let rmcp = StreamableHttpService::new(
            move || Ok(McpHandler::new(handler_state.clone(), tools.clone())),
            Arc::new(NeverSessionManager::default()),
            rmcp_config,
        );
        let router = Router::new()
            .route("/health", get(crate::health::health))
            .route("/livez", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .with_state(state.clone());
        App(Arc::new(AppInner {
            state,
            rmcp,
            router,
        }))
    }

    /// Answer one request from `peer`.
    pub async fn call(&self, req: Request, peer: SocketAddr) -> Response {
        let App(inner) = self;
        let response = match req.uri().path() {
            "/mcp" | "/mcp/v1" if req.method() == Method::POST => {
                // rmcp's future is large and not needed for a replayed
                // answer: boxed, it stays out of the future every request
                // builds and hyper moves.
                guard(&inner.state, peer, req, |req| {
                    Box::pin(inner.rmcp.handle(req))
                })
                .await
            }
            // rmcp answers GET and DELETE with 405 in stateless mode.
            "/mcp" | "/mcp/v1" => inner.rmcp.handle(req).await.map(Body::new),
            _ => match inner.router.clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
        };
        close_while_draining(&inner.state, response)
    }
}

/// `/metrics`, in the format the scraper asks for.
async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) =
        fleet_common::metrics_text::negotiate(accept, state.metrics.encode());
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// While draining, every answer closes its connection, so that when the
/// listener stops no load balancer holds an idle keep-alive connection it
/// might send a request on as it closes.
fn close_while_draining(state: &AppState, mut response: Response) -> Response {
    if state.phase() == crate::state::Phase::Draining {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Methods a client may call before it holds a credential.
fn is_public(method: &str, tool: Option<&str>) -> bool {
    matches!(method, "initialize" | "ping" | "server/discover")
        || method.starts_with("notifications/")
        || (method == "tools/call" && tool == Some("authenticate_user"))
}

/// Whether `msg` may pass without a token, given the tool it names.
fn message_is_public(msg: &Envelope, tool: Option<&str>) -> bool {
    msg.method.as_deref().is_some_and(|m| is_public(m, tool))
}

/// What the guard needs to know of a JSON-RPC body: whether it may pass
/// without a token, and its method and tool as bounded metric labels.
struct Inspected {
    public: bool,
    method: &'static str,
    tool: &'static str,
}

fn inspect(body: &MessageBody) -> Inspected {
    match body {
        MessageBody::One(one) => {
            // The tool is read from the params once, for both uses.
            let tool = one.tool();
            Inspected {
                public: message_is_public(one, tool.as_deref()),
                method: label_of(one.method.as_deref(), KNOWN_METHODS, "none"),
                tool: label_of(tool.as_deref(), KNOWN_TOOLS, ""),
            }
        }
        MessageBody::Batch(batch) => Inspected {
            // A batch passes without a token only if every message in it may.
            public: !batch.is_empty()
                && batch
                    .iter()
                    .all(|m| message_is_public(m, m.tool().as_deref())),
            method: "batch",
            tool: "",
        },
        MessageBody::Invalid => Inspected {
            public: false,
            method: "invalid",
            tool: "",
        },
    }
}

/// What a request's `Authorization` says.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No bearer token (no header, or another scheme).
    None,
    Bearer(&'a str),
    /// The header more than once: which one counts would be a guess that a
    /// proxy and this server could make differently, so it is refused.
    Ambiguous,
}

/// The bearer token in `Authorization`, if any.
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Credential::None;
    };
    if all.next().is_some() {
        return Credential::Ambiguous;
    }
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    token.map_or(Credential::None, Credential::Bearer)
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

/// Tools whose names may appear as metric labels; anything else is "other".
const KNOWN_TOOLS: &[&str] = &[
    "search_knowledgebase",
    "authenticate_user",
    "query_database",
    "get_schema_info",
    "execute_explain",
    "count_rows",
];

/// JSON-RPC methods that may appear as metric labels.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

/// What the guard learned of a request, for its log line and metrics.
struct Seen {
    method: &'static str,
    tool: &'static str,
    outcome: &'static str,
    client_ip: Option<std::net::IpAddr>,
}

fn label_of(
    value: Option<&str>,
    known: &'static [&'static str],
    none: &'static str,
) -> &'static str {
    match value {
        None => none,
        Some(v) if v.starts_with("notifications/") => "notification",
        Some(v) => known.iter().find(|k| **k == v).copied().unwrap_or("other"),
    }
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `X-Request-Id` to use: the client's if it is sane, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

/// 16 random lowercase hex digits.
fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = rand::random::<u64>();
    (0..16)
        .rev()
        .map(|i| char::from(HEX[((n >> (i * 4)) & 0xf) as usize]))
        .collect()
}

/// Check, authenticate, count and log one MCP POST; `rmcp` answers it if it
/// passes.
async fn guard<F, B>(
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
    state
        .metrics
        .request(seen.method, seen.tool, seen.outcome, elapsed.as_secs_f64());
    tracing::info!(
        request_id = %id,
        method = seen.method,
        tool = seen.tool,
        status = response.status().as_u16(),
        outcome = seen.outcome,
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
        outcome: "rejected",
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
            seen.outcome = "timeout";
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
        seen.outcome = "timeout";
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
        seen.outcome = "rate_limited";
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
        Credential::Bearer(token) => match authenticate(state, token) {
            Ok(principal) => Some(principal),
            Err(failure) => return refuse(state, ip, failure, &mut seen),
        },
        Credential::Ambiguous => return refuse(state, ip, AuthFailure::Ambiguous, &mut seen),
        Credential::None if body.public => None,
        Credential::None => {
            state.metrics.auth_failure(AuthFailure::Missing.label());
            seen.outcome = "unauthorized";
            return (unauthorized(AuthFailure::Missing), seen);
        }
    };
    // A client pushed over the limit by a concurrent failure is refused
    // even with a good credential: no guess made after the limit counts.
    if principal.is_some()
        && let Err(retry_after) = state.limiter.check(ip)
    {
        state.metrics.rate_limited.inc();
        seen.outcome = "rate_limited";
        return (too_many_failures(retry_after), seen);
    }
    if let Some(answer) = malformed(&message, &bytes) {
        seen.outcome = "rpc_error";
        return (answer, seen);
    }
    let replayable = match &message {
        MessageBody::One(one) => crate::replay::Replayable::of(one, &parts.headers),
        _ => None,
    };
    drop(message);
    if let Some(answer) = replayable.as_ref().and_then(|r| state.replies.answer(r)) {
        state.metrics.replayed.inc();
        seen.outcome = "ok";
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
            seen.outcome = "timeout";
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
        seen.outcome = "rpc_error";
        return (not_a_message(&bytes), seen);
    }
    if !response.status().is_success() {
        seen.outcome = "rejected";
        return (response, seen);
    }
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            seen.outcome = "error";
            return (Response::from_parts(parts, Body::empty()), seen);
        }
    };
    seen.outcome = classify(&bytes);
    if let Some(r) = replayable
        && seen.outcome == "ok"
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
        outcome: "unauthorized",
        client_ip: seen.client_ip,
    };
    if let Err(retry_after) = state.limiter.record_failure(ip) {
        state.metrics.rate_limited.inc();
        return (
            too_many_failures(retry_after),
            Seen {
                outcome: "rate_limited",
                ..seen
            },
        );
    }
    (unauthorized(failure), seen)
}

/// The JSON-RPC error for a body rmcp would not answer as JSON-RPC: not
/// JSON (-32700), not a request (-32600: a batch, no method, not JSON-RPC
/// 2.0), both with 400 as the MCP transport asks; or params that do not fit
/// the method (-32602, in a 200 answer like any JSON-RPC error). `None` for
/// a body that rmcp should answer.
fn malformed(message: &MessageBody, bytes: &[u8]) -> Option<Response> {
    let one = match message {
        MessageBody::Invalid => return Some(not_a_message(bytes)),
        MessageBody::Batch(_) => {
            return Some(rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                "Invalid Request: JSON-RPC batches are not supported; send one message per request",
            ));
        }
        MessageBody::One(one) => one,
    };
    if one.jsonrpc.as_deref() != Some("2.0") {
        return Some(rpc_error(
            StatusCode::BAD_REQUEST,
            one.id,
            INVALID_REQUEST,
            "Invalid Request: `jsonrpc` must be \"2.0\"",
        ));
    }
    if one.method.is_none() && !one.other_members {
        return Some(rpc_error(
            StatusCode::BAD_REQUEST,
            one.id,
            INVALID_REQUEST,
            "Invalid Request: no `method`",
        ));
    }
    let why = one.check_params().err()?;
    Some(match one.id {
        // A notification is never answered, not even with an error.
        None => StatusCode::ACCEPTED.into_response(),
        Some(id) => rpc_error(
            StatusCode::OK,
            Some(id),
            INVALID_PARAMS,
            &format!("Invalid params: {why}"),
        ),
    })
}

const PARSE_ERROR: i32 = -32700;
const INVALID_REQUEST: i32 = -32600;
const INVALID_PARAMS: i32 = -32602;

/// 400 for a body that is not one JSON-RPC message: -32700 if it is not
/// JSON at all, -32600 if it is JSON of another shape.
fn not_a_message(bytes: &[u8]) -> Response {
    if serde_json::from_slice::<serde_json::Value>(bytes).is_ok() {
        rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            INVALID_REQUEST,
            "Invalid Request: not a JSON-RPC message object",
        )
    } else {
        rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            PARSE_ERROR,
            "Parse error: the body is not JSON",
        )
    }
}

/// A JSON-RPC error object answering the message with `id` (null if unknown).
fn rpc_error(
    status: StatusCode,
    id: Option<&serde_json::value::RawValue>,
    code: i32,
    message: &str,
) -> Response {
    let id = id.map_or("null", |id| id.get());
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".to_string());
    let body =
        format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Tell a tool error or a JSON-RPC error from success in a 2xx answer.
/// Inside JSON strings quotes are escaped, so these byte patterns only match
/// keys of the message itself.
fn classify(bytes: &[u8]) -> &'static str {
    let has = |pattern: &[u8]| bytes.windows(pattern.len()).any(|w| w == pattern);
    if has(br#""isError":true"#) {
        "tool_error"
    } else if has(br#""error":{"#) {
        "rpc_error"
    } else {
        "ok"
    }
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

fn unauthorized(failure: AuthFailure) -> Response {
    let challenge = match failure {
        AuthFailure::Missing => "Bearer realm=\"mcp\"",
        AuthFailure::Ambiguous => "Bearer realm=\"mcp\", error=\"invalid_request\"",
        _ => "Bearer realm=\"mcp\", error=\"invalid_token\"",
    };
    let status = match failure {
        AuthFailure::Ambiguous => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    };
    let message = match failure {
        AuthFailure::Missing => "authentication required: send Authorization: Bearer <token>",
        AuthFailure::Ambiguous => "send exactly one Authorization header",
        AuthFailure::Expired | AuthFailure::Session(sessions::SessionFailure::Expired) => {
            "token expired"
        }
        AuthFailure::Unknown | AuthFailure::Session(_) => "invalid token",
    };
    let mut resp = error_response(status, message);
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

    fn inspect(body: &[u8]) -> Inspected {
        super::inspect(&MessageBody::parse(body))
    }

    #[test]
    fn only_the_handshake_and_login_are_public() {
        assert!(inspect(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#).public);
        assert!(inspect(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).public);
        assert!(inspect(br#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#).public);
        assert!(inspect(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"authenticate_user","arguments":{}}}"#
        ).public);
        assert!(!inspect(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_knowledgebase"}}"#
        ).public);
        assert!(!inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).public);
        assert!(!inspect(
            br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#
        ).public);
        assert!(!inspect(b"[]").public);
        assert!(!inspect(b"not json").public);
    }

    #[test]
    fn new_request_ids_are_16_hex_digits_and_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), Credential::None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(credential(&h), Credential::Bearer("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(credential(&h), Credential::None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(credential(&h), Credential::None);
        let two = crate::test_support::headers(&[
            ("authorization", "Bearer good"),
            ("authorization", "Bearer other"),
        ]);
        assert_eq!(credential(&two), Credential::Ambiguous);
    }
}
