//! The server's Prometheus metrics, served on `GET /metrics`.
//!
//! Requests by MCP method, tool and outcome, their latency, requests in
//! flight, authentication failures by reason, rate-limited requests, tool
//! calls a credential's permissions refused (by tool), reloads
//! by file and outcome, the live generation of each file, the knowledge
//! base's size, knowledge-base searches by mode and query embeddings
//! (their time, their failures by provider and reason), OAuth issuers' key
//! fetches and keys held, each database's new connections, health and
//! cloud-identity and TLS-file state, and build information.

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
    /// Grants with `role_claim:` left out of a token, by reason.
    pub role_claim_refusals: Family<ReasonLabel, Counter>,
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
    pub databases: DatabaseMetrics,
}

/// A configured database, by its name in the config (no host, no user).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatabaseLabel {
    pub database: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatabaseOutcomeLabels {
    pub database: String,
    pub outcome: &'static str,
}

/// The databases' connection metrics, handed to [`crate::pg::Databases`]
/// (cheap to clone).
#[derive(Clone, Default)]
pub struct DatabaseMetrics {
    pub connects: Family<DatabaseOutcomeLabels, Counter>,
    pub up: Family<DatabaseLabel, Gauge>,
    pub credential_ok: Family<DatabaseLabel, Gauge>,
    pub tls_files_error: Family<DatabaseLabel, Gauge>,
}

impl DatabaseMetrics {
    fn label(database: &str) -> DatabaseLabel {
        DatabaseLabel {
            database: database.to_string(),
        }
    }

    /// A new connection was made (`ok`) or could not be (`error`).
    pub fn connect(&self, database: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.connects
            .get_or_create(&DatabaseOutcomeLabels {
                database: database.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn set_up(&self, database: &str, up: bool) {
        self.up.get_or_create(&Self::label(database)).set(up.into());
    }

    pub fn set_credential_ok(&self, database: &str, ok: bool) {
        self.credential_ok
            .get_or_create(&Self::label(database))
            .set(ok.into());
    }

    pub fn set_tls_files_error(&self, database: &str, error: bool) {
        self.tls_files_error
            .get_or_create(&Self::label(database))
            .set(error.into());
    }
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
        r.register(
            "oauth_role_claim_refusals",
            "oauth_permissions grants with role_claim left out of an accepted token (it grants nothing), by reason (missing, not_a_string, not_allowed)",
            oauth.role_claim_refusals.clone(),
        );
        let databases = DatabaseMetrics::default();
        r.register(
            "database_connects",
            "New connections to each configured database, by outcome (ok, error); errors include a host that is not the kind target_session_attrs asks for and a cloud identity that gave no password",
            databases.connects.clone(),
        );
        r.register(
            "database_up",
            "1 when the database answered its last health ping",
            databases.up.clone(),
        );
        r.register(
            "database_credential_ok",
            "For a database with cloud identity (auth: aws-rds-iam, gcp-iam, azure-entra): 1 when the last token fetch worked; 0 while the token endpoint fails (existing connections keep working, /health says why)",
            databases.credential_ok.clone(),
        );
        r.register(
            "database_tls_files_error",
            "1 while a database's TLS files changed on disk and do not load (the last good ones keep serving; /health says why)",
            databases.tls_files_error.clone(),
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
            databases,
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
