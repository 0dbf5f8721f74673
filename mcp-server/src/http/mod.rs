//! The HTTP surface: `/mcp` (and `/mcp/v1`) guarded by authentication, and
//! the unauthenticated `/health`, `/livez` and `/metrics`.
//!
//! [`App`] dispatches: an MCP POST goes through the guard ([`guard`]) to
//! rmcp's Streamable HTTP service, everything else through a small axum
//! router. The guard bounds and buffers the body, parses it once
//! ([`envelope`]), reads what it needs of it ([`inspect`]), checks the
//! Origin and authenticates the bearer token ([`crate::auth`]). A request
//! without a token is let through only for what a client must do before it
//! has one: the handshake (`initialize`, `server/discover`, `ping`,
//! notifications) and `tools/call authenticate_user`. A token that is present
//! but wrong is always refused, whatever the method. Bodies rmcp would not
//! answer as JSON-RPC get their JSON-RPC error from [`jsonrpc`]; answers that
//! never change are replayed ([`replay`]); `/health` is [`health`].

pub mod envelope;
pub mod guard;
pub mod health;
pub mod inspect;
pub mod jsonrpc;
pub mod outcome;
pub mod replay;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tower::ServiceExt;

use crate::config::HostPolicy;
use crate::state::AppState;
use crate::tools::McpHandler;
use guard::guard;

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
            .route("/health", get(crate::http::health::health))
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
            path if path.starts_with(crate::auth::oauth::WELL_KNOWN) => {
                protected_resource(&inner.state, req.method(), path)
            }
            _ => match inner.router.clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
        };
        close_while_draining(&inner.state, response)
    }
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`: the RFC 9728
/// document, public and cacheable, readable from a browser client's origin.
/// 404 when OAuth is off.
fn protected_resource(state: &AppState, method: &Method, path: &str) -> Response {
    let Some(document) = state.oauth.as_ref().and_then(|rs| rs.metadata_at(path)) else {
        return error_response(StatusCode::NOT_FOUND, "not found");
    };
    if method != Method::GET && method != Method::HEAD {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        document,
    )
        .into_response()
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

pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
