//! `/healthz`, `/readyz` and `/metrics` of the sidecar.
//!
//! Unlike git-sync's health, these keep telling the truth after the first
//! sync: `/healthz` fails if the loop stops making progress, `/readyz` says
//! whether every file has a valid published version, and both bodies show
//! each file's last outcome and error.
//!
//! The listener holds no connection longer than it must: request headers
//! are due within [`DEADLINES`]`.header`, an idle keep-alive connection is
//! closed after [`DEADLINES`]`.idle`, and at most [`LIMITS`] connections are
//! open at once (probes and a scraper need a handful).

use std::sync::Arc;
use std::time::Duration;

use fleet_common::conn::{ConnLimits, DeadlineIo, Deadlines, Limits};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::engine::Status;

/// Header and idle deadlines of every connection.
pub const DEADLINES: Deadlines = Deadlines {
    header: Duration::from_secs(10),
    idle: Duration::from_secs(60),
};

/// Connections open at once, in all and per client IP.
pub const LIMITS: Limits = Limits {
    total: 64,
    per_ip: 16,
};

/// Serve [`app`] on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, status: Arc<Status>) {
    let app = app(status);
    let limits = ConnLimits::new(LIMITS);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limits.acquire(peer.ip(), false) else {
            tracing::debug!(%peer, "connection refused: too many open");
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let io = TokioIo::new(DeadlineIo::new(stream, DEADLINES));
            let served = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .header_read_timeout(None)
                .serve_connection(io, service)
                .await;
            if let Err(err) = served {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
}

pub fn app(status: Arc<Status>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(status)
}

async fn healthz(State(s): State<Arc<Status>>) -> impl IntoResponse {
    let code = if s.live() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(s.report()))
}

async fn readyz(State(s): State<Arc<Status>>) -> impl IntoResponse {
    let code = if s.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(s.report()))
}

/// `/metrics`, in the format the scraper asks for.
async fn metrics(State(s): State<Arc<Status>>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = fleet_common::metrics_text::negotiate(accept, s.metrics.encode());
    ([(header::CONTENT_TYPE, content_type)], body)
}
