//! `mcp-server`: a stateless Model Context Protocol server for fleets.
//!
//! The layout, one concern a room:
//!
//! - [`cli`] parses the command line; [`config`] resolves flags, config
//!   file and defaults into one [`config::Config`] with its option structs.
//! - [`data`] reads the local data files only: what is known of each
//!   ([`data::table`]), loading one into the live stores ([`data::load`]),
//!   the audit of a vouched KB, and the reloader that notices a change.
//! - [`state`] holds every live store as an immutable generation, and the
//!   server's life-cycle phase.
//! - [`auth`] decides who a request comes from: API tokens, users,
//!   stateless sessions, and the failed-auth limit per client.
//! - [`http`] is the HTTP surface: dispatch, the guard in front of rmcp,
//!   JSON-RPC errors, replayed answers and `/health`.
//! - [`tools`] are the MCP tools, served through rmcp's tool router; the
//!   read-only Postgres tools are [`pg`]; [`embedding`] embeds search
//!   queries (a local model, or a provider over HTTP) for semantic and
//!   hybrid search. [`catalog`] is the live `tools.yaml`: curated SQL
//!   tools, prompts and the built-ins' switches, and the one gate deciding
//!   which tools a caller sees and may call.
//! - [`server`] runs the hyper accept loop and the explicit shutdown path
//!   (closing its port without resetting a queued connection:
//!   [`listener`]); [`metrics`] is `/metrics`.
//! - [`commands`] are the one-shot commands (`kb build`, `token add`, ...)
//!   and [`demo`] the demo.
//!
//! Imports flow one way, down this list's dependencies: `config`, `pg`,
//! `catalog` and the stores below `state`, `state` below `data::load`,
//! `http` and `tools`, and `server` above them all.

pub mod auth;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod demo;
pub mod embedding;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod pg;
pub mod server;
pub mod state;
pub mod tools;

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
    if let Some(oauth) = &state.oauth {
        oauth.start();
    }
    tracing::info!(listen = %state.config.listen, "listening");
    let timings = state.config.shutdown;
    let serving = tokio::spawn(server::serve(listener, state.clone(), timings, shutdown));
    server::load_all(&state).await;
    data::reloader::spawn(state.clone(), state.config.reload);
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
