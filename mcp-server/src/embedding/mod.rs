//! Query embeddings for semantic and hybrid search: the configured
//! embedder ([`Embedder`]), local or over HTTP, and how its failures are
//! counted, logged and shown.
//!
//! Layout: `settings.rs` resolves the `kb_embedding_*` settings
//! ([`EmbeddingSettings`]); `provider.rs` speaks the providers' APIs
//! ([`ProviderClient`], [`Failure`]); this file owns the embedder of the
//! process: it loads the local model once, tells the KB loader which
//! vectors to expect ([`Embedder::vector_source`]), embeds queries, and
//! keeps the provider's state for `/health`.
//!
//! A failure never fails a search: the tool answers with the keyword
//! ranking, marked keyword-only. It is counted in
//! `mcp_kb_embedding_failures_total{provider, reason}` and logged once per
//! burst: the first failure after a success, then at most once a
//! [`LOG_INTERVAL`] with the number of failures in between, and the
//! recovery once.

mod provider;
mod settings;

pub use provider::{Failure, ProviderClient};
pub use settings::{Backend, EmbeddingSettings, Given, ProviderName, resolve};

use std::sync::Mutex;
use std::time::{Duration, Instant};

use fleet_kb::embed::{MAX_EMBED_BYTES, StaticModel};
use fleet_kb::vectors::VectorSource;
use serde_json::{Value, json};

use crate::metrics::Metrics;

/// Failures of one burst are logged at most this often.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

enum Active {
    Local(Box<StaticModel>),
    Http(ProviderClient),
}

#[derive(Default)]
struct Status {
    failing: bool,
    last_error: Option<String>,
    last_logged: Option<Instant>,
    /// Failures since the last log line.
    unlogged: u64,
    /// Failures since the last success.
    in_burst: u64,
}

/// The process's query embedder.
pub struct Embedder {
    active: Active,
    timeout: Duration,
    status: Mutex<Status>,
}

impl Embedder {
    /// Make the embedder of `settings`; loads the local model (blocking),
    /// failing with its path when it is not a usable model.
    pub fn new(settings: &EmbeddingSettings) -> anyhow::Result<Embedder> {
        let active = match &settings.backend {
            Backend::Local { dir } => Active::Local(Box::new(StaticModel::load(dir)?)),
            Backend::Http(p) => Active::Http(ProviderClient::new(p.clone(), settings.timeout)?),
        };
        Ok(Embedder {
            active,
            timeout: settings.timeout,
            status: Mutex::new(Status::default()),
        })
    }

    /// Which vectors of a KB this embedder's queries can be compared with.
    pub fn vector_source(&self) -> VectorSource {
        match &self.active {
            Active::Local(m) => VectorSource::Local(m.identity().clone()),
            Active::Http(c) => VectorSource::Provider {
                provider: c.settings().provider,
                dimensions: c.settings().dimensions,
            },
        }
    }

    /// `local` or the provider's name: the metric label.
    pub fn provider(&self) -> &'static str {
        match &self.active {
            Active::Local(_) => "local",
            Active::Http(c) => c.settings().provider.as_str(),
        }
    }

    fn model(&self) -> String {
        match &self.active {
            Active::Local(m) => m.identity().to_string(),
            Active::Http(c) => c.settings().model.clone(),
        }
    }

    /// The model's name: the local model's directory name, or the
    /// provider's model.
    pub fn model_name(&self) -> &str {
        match &self.active {
            Active::Local(m) => &m.identity().name,
            Active::Http(c) => &c.settings().model,
        }
    }

    /// How many dimensions the model gives, when known (always for the
    /// local model; for a provider, when configured or well known).
    pub fn dimensions(&self) -> Option<usize> {
        match &self.active {
            Active::Local(m) => Some(m.dimensions()),
            Active::Http(c) => c.settings().dimensions,
        }
    }

    /// The unit vector of `text`, which must have `dims` dimensions (the
    /// KB's); a provider gets at most the timeout. Counts and logs failures.
    pub async fn embed(
        &self,
        text: &str,
        dims: usize,
        metrics: &Metrics,
    ) -> Result<Vec<f32>, Failure> {
        self.embed_as(
            text,
            Some(dims),
            "the knowledge base's vectors have",
            metrics,
        )
        .await
    }

    /// The unit vector of `text` as the model gives it (of the model's
    /// [`Embedder::dimensions`] when they are known), for the pgvector
    /// tools. Counted and logged as [`Embedder::embed`].
    pub async fn embed_text(&self, text: &str, metrics: &Metrics) -> Result<Vec<f32>, Failure> {
        self.embed_as(text, self.dimensions(), "the configured model has", metrics)
            .await
    }

    /// Embed `text`; a vector of other dimensions than `dims` is a failure
    /// that says `whose` dimensions they are.
    async fn embed_as(
        &self,
        text: &str,
        dims: Option<usize>,
        whose: &str,
        metrics: &Metrics,
    ) -> Result<Vec<f32>, Failure> {
        let text = fleet_kb::query::head(text, MAX_EMBED_BYTES);
        let started = Instant::now();
        let result = match &self.active {
            Active::Local(m) => m
                .embed(text)
                .ok_or_else(|| Failure::Invalid("no token the model knows".into())),
            Active::Http(c) => match tokio::time::timeout(self.timeout, c.embed(text)).await {
                Ok(r) => r,
                Err(_) => Err(Failure::Timeout),
            },
        };
        let result = result.and_then(|mut v| {
            if let Some(dims) = dims
                && v.len() != dims
            {
                return Err(Failure::Invalid(format!(
                    "{} dimensions, {whose} {dims}",
                    v.len()
                )));
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if !(norm.is_finite() && norm > 0.0) {
                return Err(Failure::Invalid("a vector of no length".into()));
            }
            v.iter_mut().for_each(|x| *x /= norm);
            Ok(v)
        });
        metrics
            .embedding_seconds
            .observe(started.elapsed().as_secs_f64());
        self.record(result.as_ref().err(), metrics);
        result
    }

    fn record(&self, failure: Option<&Failure>, metrics: &Metrics) {
        let Ok(mut s) = self.status.lock() else {
            return;
        };
        let provider = self.provider();
        match failure {
            None => {
                if s.failing {
                    tracing::info!(
                        provider,
                        failures = s.in_burst,
                        "embedding provider answers again: searches are hybrid again"
                    );
                }
                s.failing = false;
                s.in_burst = 0;
                s.unlogged = 0;
            }
            Some(f) => {
                metrics.embedding_failure(provider, f.reason());
                s.in_burst += 1;
                s.unlogged += 1;
                s.last_error = Some(f.describe());
                let due = !s.failing || s.last_logged.is_none_or(|t| t.elapsed() >= LOG_INTERVAL);
                s.failing = true;
                if due {
                    tracing::warn!(
                        provider,
                        reason = f.reason(),
                        failures = s.unlogged,
                        "{}: searches answer with the keyword ranking (counted in mcp_kb_embedding_failures_total; logged again in {}s at most)",
                        f.describe(),
                        LOG_INTERVAL.as_secs()
                    );
                    s.last_logged = Some(Instant::now());
                    s.unlogged = 0;
                }
            }
        }
    }

    /// For `/health`: provider, model, state (`ok`, `failing`) and the last
    /// failure.
    pub fn health(&self) -> Value {
        let (state, last_error) = match self.status.lock() {
            Ok(s) => (
                if s.failing { "failing" } else { "ok" },
                s.last_error.clone(),
            ),
            Err(_) => ("unknown", None),
        };
        json!({
            "provider": self.provider(),
            "model": self.model(),
            "state": state,
            "last_error": last_error,
        })
    }
}
