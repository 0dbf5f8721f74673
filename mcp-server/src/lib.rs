//! `mcp-server`: a stateless Model Context Protocol server for fleets.
//!
//! It reads local files only ([`files`]), reloads them when they change
//! ([`reloader`]) and keeps each as an immutable generation in [`state`]. It
//! authenticates API tokens ([`auth`]), users ([`users`]) and stateless
//! sessions ([`sessions`]) behind a failed-auth limit per client
//! ([`rate_limit`], [`client_ip`]), offers read-only Postgres tools ([`pg`]),
//! serves MCP over Streamable HTTP through rmcp ([`http`], [`tools`]; each
//! body is parsed once by [`envelope`], and answers that never change are
//! replayed by [`replay`]) under a hyper accept loop with an explicit
//! shutdown path ([`server`], which closes its port without resetting a
//! queued connection: [`listener`]), and reports its readiness on `/health`
//! ([`health`]) and its workings on `/metrics` ([`metrics`]).

pub mod auth;
pub mod cli;
pub mod client_ip;
pub mod commands;
pub mod config;
pub mod demo;
pub mod envelope;
pub mod files;
pub mod fingerprint;
pub mod health;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod pg;
pub mod rate_limit;
pub mod reloader;
pub mod replay;
pub mod server;
pub mod sessions;
pub mod state;
pub mod tools;
pub mod users;

use state::AppState;

/// Serve with `config` until SIGTERM or SIGINT, then shut down in order.
/// `on_listening` runs once the socket is bound and files are loaded.
pub async fn run(
    config: config::Config,
    on_listening: impl FnOnce(&AppState),
) -> anyhow::Result<()> {
    let shutdown = fleet_common::signals::termination_signal()?;
    let listener = server::bind(config.listen).await?;
    let state = AppState::new(config)?;
    tracing::info!(listen = %state.config.listen, "listening");
    let timings = state.config.shutdown;
    let serving = tokio::spawn(server::serve(listener, state.clone(), timings, shutdown));
    server::load_all(&state).await;
    reloader::spawn(state.clone(), state.config.reload);
    // A SIGTERM during start-up has already made it Draining: keep that.
    state.start_serving();
    tracing::info!(ready = state.is_ready(), "serving");
    on_listening(&state);
    serving.await??;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    use axum::http::{HeaderMap, HeaderValue};

    /// A header map from static pairs, repeated names appended.
    pub fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }
}
