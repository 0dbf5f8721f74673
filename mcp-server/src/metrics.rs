//! The server's Prometheus metrics, served on `GET /metrics`.
//!
//! Requests by MCP method, tool and outcome, their latency, requests in
//! flight, authentication failures by reason, rate-limited requests, tool
//! calls a credential's permissions refused (by tool), reloads
//! by file and outcome, the live generation of each file, the knowledge
//! base's size, knowledge-base searches by mode and query embeddings
//! (their time, their failures by provider and reason), OAuth issuers' key
//! fetches and keys held, and build information.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub tool: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// A tool's name: a built-in or a curated tool of `tools.yaml` (a bounded
/// set the operator writes), or `unknown`; never anything about a
/// credential.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabel {
    pub tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmbeddingFailureLabels {
    pub provider: &'static str,
    pub reason: &'static str,
}

/// An OAuth issuer (its configured URL: no secret) and how a fetch of its
/// keys went (`ok`, `error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerFetchLabels {
    pub issuer: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerLabel {
    pub issuer: String,
}

/// The OAuth issuers' key fetches and keys held, handed to
/// [`crate::auth::oauth::ResourceServer`] (cheap to clone).
#[derive(Clone, Default)]
pub struct OAuthMetrics {
    pub key_fetches: Family<IssuerFetchLabels, Counter>,
    pub keys: Family<IssuerLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub file: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabel {
    pub file: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub instance: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<MethodLabel, Histogram>,
    pub in_flight: Gauge,
    pub auth_failures: Family<ReasonLabel, Counter>,
    pub rate_limited: Counter,
    pub tool_calls_denied: Family<ToolLabel, Counter>,
    pub replayed: Counter,
    pub reloads: Family<ReloadLabels, Counter>,
    pub file_generation: Family<FileLabel, Gauge>,
    pub kb_chunks: Gauge,
    pub kb_generation: Gauge,
    pub draining: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub last_reload: Family<FileLabel, Gauge<f64, AtomicU64>>,
    pub file_error: Family<FileLabel, Gauge>,
    pub credentials: Family<KindLabel, Gauge>,
    pub connections_refused: Family<ReasonLabel, Counter>,
    pub kb_searches: Family<ModeLabel, Counter>,
    pub embedding_failures: Family<EmbeddingFailureLabels, Counter>,
    pub embedding_seconds: Histogram,
    pub oauth: OAuthMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

impl Metrics {
    pub fn new(instance: &str) -> Metrics {
        let mut r = Registry::with_prefix("mcp");
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "requests",
            "MCP requests by JSON-RPC method, tool and outcome (ok, tool_error, rpc_error, unauthorized, rate_limited, rejected, timeout)",
            requests.clone(),
        );
        let latency = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0002, 2.0, 18))
        });
        r.register(
            "request_duration_seconds",
            "Time to answer a request on /mcp",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        r.register(
            "requests_in_flight",
            "Requests on /mcp being answered now",
            in_flight.clone(),
        );
        let auth_failures = Family::<ReasonLabel, Counter>::default();
        r.register(
            "auth_failures",
            "Refused credentials by reason",
            auth_failures.clone(),
        );
        let rate_limited = Counter::default();
        r.register(
            "rate_limited_requests",
            "Requests refused with 429 because their client IP is over the failed-auth limit",
            rate_limited.clone(),
        );
        let tool_calls_denied = Family::<ToolLabel, Counter>::default();
        r.register(
            "tool_calls_denied",
            "Tool calls refused because the credential may not call the tool or use the database, by tool (unknown: a name that is no tool here)",
            tool_calls_denied.clone(),
        );
        let replayed = Counter::default();
        r.register(
            "replayed_responses",
            "tools/list and ping requests answered from rmcp's earlier identical answer",
            replayed.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        r.register(
            "reloads",
            "Data file loads by file and outcome (applied, error)",
            reloads.clone(),
        );
        let file_generation = Family::<FileLabel, Gauge>::default();
        r.register(
            "file_generation",
            "Versions of each data file loaded so far",
            file_generation.clone(),
        );
        let last_reload = Family::<FileLabel, Gauge<f64, AtomicU64>>::default();
        r.register(
            "file_last_reload_timestamp_seconds",
            "Unix time each data file was last loaded",
            last_reload.clone(),
        );
        let file_error = Family::<FileLabel, Gauge>::default();
        r.register(
            "file_load_error",
            "1 while the data file on disk cannot be loaded (the previous version, if any, keeps serving; /health says why)",
            file_error.clone(),
        );
        let credentials = Family::<KindLabel, Gauge>::default();
        r.register(
            "credentials_loaded",
            "Credentials that can authenticate, by kind (tokens, users, session_keys); all zero means nobody can",
            credentials.clone(),
        );
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        r.register(
            "connections_refused",
            "Connections closed on arrival because a limit was reached (per_ip, total)",
            connections_refused.clone(),
        );
        let kb_searches = Family::<ModeLabel, Counter>::default();
        r.register(
            "kb_searches",
            "search_knowledgebase searches by the mode they ran in (keyword, semantic, hybrid, keyword_only: semantic or hybrid wanted but no query vector could be had)",
            kb_searches.clone(),
        );
        let embedding_failures = Family::<EmbeddingFailureLabels, Counter>::default();
        r.register(
            "kb_embedding_failures",
            "Queries the embedding provider could not embed, by provider and reason (timeout, unavailable, rate_limited, rejected, invalid); each search answered with the keyword ranking",
            embedding_failures.clone(),
        );
        let embedding_seconds = Histogram::new(exponential_buckets(0.00002, 2.0, 18));
        r.register(
            "kb_embedding_duration_seconds",
            "Time to embed a search query (in-process or through the provider)",
            embedding_seconds.clone(),
        );
        let oauth = OAuthMetrics::default();
        r.register(
            "oauth_key_fetches",
            "Fetches of an OAuth issuer's keys (discovery and JWKS), by issuer and outcome (ok, error); after an error the keys held keep serving",
            oauth.key_fetches.clone(),
        );
        r.register(
            "oauth_keys",
            "Signing keys held for an OAuth issuer (0: none of its tokens can be checked)",
            oauth.keys.clone(),
        );
        let kb_chunks = Gauge::default();
        r.register(
            "kb_chunks",
            "Chunks in the live knowledge base",
            kb_chunks.clone(),
        );
        let kb_generation = Gauge::default();
        r.register(
            "kb_generation",
            "Generation of the live knowledge base",
            kb_generation.clone(),
        );
        let draining = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        r.register("draining", "1 while shutting down", draining.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        r.register("build_info", "Version of this server", build.clone());
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                instance: instance.to_string(),
            })
            .set(1);
        Metrics {
            registry: r,
            requests,
            latency,
            in_flight,
            auth_failures,
            rate_limited,
            tool_calls_denied,
            replayed,
            reloads,
            file_generation,
            kb_chunks,
            kb_generation,
            draining,
            last_reload,
            file_error,
            credentials,
            connections_refused,
            kb_searches,
            embedding_failures,
            embedding_seconds,
            oauth,
        }
    }

    /// A search ran in `mode`.
    pub fn kb_search(&self, mode: &'static str) {
        self.kb_searches.get_or_create(&ModeLabel { mode }).inc();
    }

    /// A query could not be embedded.
    pub fn embedding_failure(&self, provider: &'static str, reason: &'static str) {
        self.embedding_failures
            .get_or_create(&EmbeddingFailureLabels { provider, reason })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Count one request on /mcp. Every label is a static string (the
    /// guard maps what clients send onto a fixed set), so this allocates
    /// nothing.
    pub fn request(
        &self,
        method: &'static str,
        tool: &'static str,
        outcome: &'static str,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                tool,
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabel { method })
            .observe(seconds);
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A call of `tool` was refused by the credential's permissions. The
    /// caller gives a known tool's name or `unknown` (see
    /// [`crate::catalog::gate`]).
    pub fn tool_denied(&self, tool: &str) {
        self.tool_calls_denied
            .get_or_create(&ToolLabel {
                tool: tool.to_string(),
            })
            .inc();
    }

    pub fn reload(&self, file: &'static str, outcome: &'static str) {
        self.reloads
            .get_or_create(&ReloadLabels { file, outcome })
            .inc();
    }
}
