//! `/healthz`, `/readyz` and `/metrics` of the sidecar.
//!
//! Unlike git-sync's health, these keep telling the truth after the first
//! sync: `/healthz` fails if the loop stops making progress, `/readyz` says
//! whether every file has a valid published version, and both bodies show
//! each file's last outcome and error.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::engine::Status;

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

async fn metrics(State(s): State<Arc<Status>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}
