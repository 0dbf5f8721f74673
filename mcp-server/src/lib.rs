//! `mcp-server`: a stateless Model Context Protocol server for fleets.
//!
//! It reads local files only ([`files`]), keeps each as an immutable
//! generation in [`state`], authenticates bearer tokens ([`auth`]), serves
//! MCP over Streamable HTTP through rmcp ([`http`], [`tools`]) under a hyper
//! accept loop with an explicit shutdown path ([`server`]), and reports its
//! readiness on `/health` ([`health`]).

pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod files;
pub mod health;
pub mod http;
pub mod logging;
pub mod server;
pub mod state;
pub mod tools;

use std::sync::Arc;

use state::{AppState, Phase};

/// Serve with `config` until SIGTERM or SIGINT, then shut down in order.
/// `on_listening` runs once the socket is bound and files are loaded.
pub async fn run(
    config: config::Config,
    on_listening: impl FnOnce(&AppState),
) -> anyhow::Result<()> {
    let shutdown = server::termination_signal()?;
    let listener = server::bind(config.listen).await?;
    let state = AppState::new(config);
    tracing::info!(listen = %state.config.listen, "listening");
    let timings = state.config.shutdown;
    let serving = tokio::spawn(server::serve(listener, state.clone(), timings, shutdown));
    server::load_all(&state).await;
    state.set_phase(Phase::Serving);
    tracing::info!(ready = state.is_ready(), "serving");
    on_listening(&state);
    serving.await??;
    tracing::info!("stopped");
    Ok(())
}

/// Re-exported for tests and tools that embed the server.
pub use state::AppState as State;
pub type SharedState = Arc<AppState>;
