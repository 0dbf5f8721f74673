//! `GET /health`: readiness, with what this instance is serving.
//!
//! 200 when serving with tokens and a knowledge base loaded; 503 while
//! starting, while draining, while a required file has never loaded, or
//! while no credential could authenticate anyone (`no_credentials`: e.g.
//! `tokens: {}` and no users). The body says which, and shows every file's
//! generation, last error and any load under way, so an operator sees a bad
//! file without reading logs.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::data::DataFile;
use crate::state::{AppState, Phase};

/// `kb.embedding`: the embedder's provider, model and state (`ok`,
/// `failing`, or `none` when none is configured), and the live KB's
/// vectors (how many, their dimensions) or why it has none.
fn embedding(state: &AppState, kb: Option<&fleet_kb::search::Kb>) -> Value {
    let mut out = match &state.embedder {
        Some(e) => e.health(),
        None => json!({"provider": null, "model": null, "state": "none"}),
    };
    let vectors = kb.and_then(|k| k.vectors());
    out["vectors"] = json!(vectors.map_or(0, |v| v.len()));
    out["dimensions"] = json!(vectors.map(|v| v.dimensions()));
    out["no_vectors"] = json!(kb.and_then(|k| k.no_vectors()));
    out
}

pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let ready = state.is_ready();
    let status = match state.phase() {
        Phase::Draining => "draining",
        Phase::Starting => "starting",
        Phase::Serving if ready => "ok",
        Phase::Serving if state.files.required_loaded() => "no_credentials",
        Phase::Serving => "not_ready",
    };
    let files = state.files.snapshot();
    let kb = state.kb.load();
    let counts = state.credentials.counts();
    let kb_status = files.get(&DataFile::Kb);
    let tokens_status = files.get(&DataFile::Tokens);
    let last_reload_error = files
        .iter()
        .filter_map(|(f, s)| s.last_error.as_ref().map(|e| format!("{}: {e}", f.name())))
        .next();
    let body = json!({
        "status": status,
        "instance_id": state.config.instance_id,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "kb": {
            "loaded": kb.is_some(),
            "build_id": kb.as_ref().and_then(|k| k.info().build_id.clone()),
            "chunk_count": kb.as_ref().map(|k| k.info().chunk_count),
            "generation": kb_status.map(|s| s.generation),
            "indexed_at_load": kb.as_ref().map(|k| k.indexed_at_load()),
            "embedding": embedding(&state, kb.as_deref()),
        },
        "auth": {
            "tokens": counts.tokens,
            "users": counts.users,
            "session_keys": counts.session_keys,
            "can_authenticate": state.can_authenticate(),
            "generation": tokens_status.map(|s| s.generation),
            "oauth": state.oauth.as_ref().map(|rs| json!({
                "resource": rs.resource(),
                "issuers": rs.health(),
            })),
        },
        "reload": {
            "watching": state.watching(),
            "poll_interval_ms": state.config.reload.poll_interval.as_millis() as u64,
        },
        "databases": state.databases.health().await,
        "files": files.iter().map(|(f, s)| (f.name().to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
        "last_reload_error": last_reload_error,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
