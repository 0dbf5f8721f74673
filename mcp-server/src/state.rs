//! The state every request shares: the live stores, file statuses and the
//! server's life-cycle phase.
//!
//! Each store is an immutable generation behind an [`arc_swap::ArcSwap`]: a request
//! takes the current generation once and uses it to the end, while a reload
//! swaps in the next one atomically. Nothing here is ever half-loaded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use fleet_kb::search::Kb;

use crate::auth::client_ip::ClientIpResolver;
use crate::auth::rate_limit::FailureLimiter;
use crate::auth::{AuthFailure, Credentials, Principal};
use crate::config::Config;
use crate::data::FileTable;
use crate::metrics::Metrics;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Serving = 1,
    Draining = 2,
}

pub struct AppState {
    pub config: Config,
    pub started_at: Instant,
    /// The live tokens, users and session keys.
    pub credentials: Credentials,
    pub kb: ArcSwapOption<Kb>,
    /// The live `tools.yaml`: curated tools, prompts, built-in switches.
    pub catalog: ArcSwap<crate::catalog::Catalog>,
    pub files: FileTable,
    pub limiter: FailureLimiter,
    pub client_ip: ClientIpResolver,
    pub metrics: Metrics,
    /// The Postgres tools' databases (possibly none).
    pub databases: crate::pg::Databases,
    /// Answers of `tools/list` and `ping`, learned from rmcp.
    pub replies: crate::http::replay::Replies,
    /// Embeds search queries, when semantic search is configured.
    pub embedder: Option<crate::embedding::Embedder>,
    /// Checks OAuth access tokens, when issuers are configured.
    pub oauth: Option<Arc<crate::auth::oauth::ResourceServer>>,
    /// Knowledge-base searches that may run at once: two per core (one
    /// per core left cores idle between one search and the next: 3,100
    /// searches/s against 4,000 at 16 in flight). A search is CPU work from
    /// start to end; more at once would only share the cores and multiply
    /// the working memory each holds (4 MB at 1,000,000 chunks: 276 MB of
    /// anonymous memory at 64 connections without this limit, 48 MB with
    /// it), so the rest wait their turn here, holding no thread.
    pub searches: tokio::sync::Semaphore,
    phase: AtomicU8,
    /// Woken when the phase leaves `Starting`.
    left_starting: tokio::sync::Notify,
    watching: AtomicBool,
}

impl AppState {
    /// Build the state; fails only on a database configuration error (it
    /// never connects, so a database that is down does not stop start-up)
    /// or a local embedding model that cannot be loaded (blocking: it is
    /// read and hashed here).
    pub fn new(config: Config) -> anyhow::Result<Arc<AppState>> {
        let embedder = config
            .embedding
            .as_ref()
            .map(crate::embedding::Embedder::new)
            .transpose()?;
        let files = FileTable::new(&config.files);
        let limiter = FailureLimiter::new(config.auth.failure_limit, config.auth.failure_window);
        let client_ip = ClientIpResolver::new(config.auth.trusted_proxies.clone());
        let metrics = Metrics::new(&config.instance_id);
        let oauth = config
            .oauth
            .clone()
            .map(|s| crate::auth::oauth::ResourceServer::new(s, metrics.oauth.clone()))
            .transpose()?
            .map(Arc::new);
        let databases = crate::pg::Databases::new(config.databases.clone())?;
        databases.attach_metrics(metrics.databases.clone());
        Ok(Arc::new(AppState {
            config,
            started_at: Instant::now(),
            credentials: Credentials::default(),
            kb: ArcSwapOption::empty(),
            catalog: ArcSwap::from_pointee(crate::catalog::Catalog::default()),
            files,
            limiter,
            client_ip,
            metrics,
            databases,
            replies: Default::default(),
            embedder,
            oauth,
            searches: tokio::sync::Semaphore::new(2 * fleet_common::cores()),
            phase: AtomicU8::new(Phase::Starting as u8),
            left_starting: tokio::sync::Notify::new(),
            watching: AtomicBool::new(false),
        }))
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        self.metrics
            .draining
            .set(i64::from(phase == Phase::Draining));
        if phase != Phase::Starting {
            self.left_starting.notify_waiters();
        }
    }

    /// Starting → Serving; a server already draining stays draining.
    pub fn start_serving(&self) {
        let _ = self.phase.compare_exchange(
            Phase::Starting as u8,
            Phase::Serving as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.left_starting.notify_waiters();
    }

    /// Wait, at most `limit`, until start-up is over (the first load of
    /// every file is done, or a SIGTERM came); whether it is.
    ///
    /// The port answers while the files load, for `/health`. A balancer with
    /// passive checks only (nginx) sends an MCP request there as soon as it
    /// connects: answered at once, it would fail for want of tokens (401)
    /// or of the KB (a tool error). It waits for them instead.
    pub async fn wait_past_start(&self, limit: std::time::Duration) -> bool {
        let notified = self.left_starting.notified();
        tokio::pin!(notified);
        // Registered before the check, so a wake-up in between is not lost.
        notified.as_mut().enable();
        if self.phase() != Phase::Starting {
            return true;
        }
        let _ = tokio::time::timeout(limit, notified).await;
        self.phase() != Phase::Starting
    }

    /// Whether every data directory has a live inotify watch (otherwise the
    /// reloader relies on polling alone).
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed)
    }

    pub fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::Relaxed);
    }

    /// Ready for traffic: serving, with tokens and a knowledge base loaded,
    /// and at least one credential that can authenticate.
    pub fn is_ready(&self) -> bool {
        self.phase() == Phase::Serving && self.files.required_loaded() && self.can_authenticate()
    }

    /// Whether anyone at all can authenticate: an API token, a user with a
    /// session key to sign their session, or a trusted OAuth issuer's
    /// token. An instance that cannot is no use to anyone (every request
    /// would get 401), so it reports not ready rather than answer 200 on
    /// `/health`.
    pub fn can_authenticate(&self) -> bool {
        self.oauth.is_some() || self.credentials.can_authenticate()
    }

    /// Whether answers of lists and reads may differ between callers (some
    /// credential has permissions or a database binding, or OAuth grants
    /// are configured): they are then `cacheScope: private`, and a replayed
    /// answer is keyed by it (see [`crate::tools`]).
    pub fn answers_vary_by_caller(&self) -> bool {
        self.credentials.vary_by_caller() || self.oauth.as_ref().is_some_and(|o| o.has_grants())
    }

    /// Authenticate a bearer token: an OAuth access token when issuers are
    /// configured and it has a JWT's shape, else an API or session token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        match &self.oauth {
            Some(rs) if crate::auth::oauth::jwt::looks_like_jwt(token) => {
                rs.authenticate(token).await.map_err(AuthFailure::OAuth)
            }
            _ => self.credentials.authenticate(token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn requests_wait_for_the_end_of_start_up() {
        let config = Config::resolve(crate::cli::ServeArgs::default()).unwrap();
        let state = AppState::new(config).unwrap();
        assert!(!state.wait_past_start(Duration::from_millis(30)).await);
        let waiter = {
            let state = state.clone();
            tokio::spawn(async move { state.wait_past_start(Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished());
        let t = std::time::Instant::now();
        state.start_serving();
        assert!(waiter.await.unwrap());
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(state.wait_past_start(Duration::ZERO).await);
        // A SIGTERM during start-up ends the wait too.
        let config = Config::resolve(crate::cli::ServeArgs::default()).unwrap();
        let state = AppState::new(config).unwrap();
        let waiter = {
            let state = state.clone();
            tokio::spawn(async move { state.wait_past_start(Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        state.set_phase(Phase::Draining);
        assert!(waiter.await.unwrap());
    }
}
