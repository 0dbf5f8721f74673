//! Command-line interface: every command and flag of `mcp-server`.
//!
//! Each flag also reads an environment variable `MCP_<FLAG>`; a flag given on
//! the command line wins over its variable, which wins over the YAML config
//! file (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-server",
    version,
    about = "Stateless Postgres MCP server for fleets"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over Streamable HTTP from the files in the data directory.
    Serve(Box<ServeArgs>),
    /// Build a KB from the bundled documentation, mint a token and serve on
    /// 127.0.0.1:8080: the fastest way to see it work.
    Demo(DemoArgs),
    /// Knowledge-base tools.
    #[command(subcommand)]
    Kb(KbCommand),
    /// API-token tools.
    #[command(subcommand)]
    Token(TokenCommand),
    /// User tools.
    #[command(subcommand)]
    User(UserCommand),
    /// Validate every file in a data directory; exit non-zero on any error.
    Check(CheckArgs),
    /// Ask the running server's /health over loopback: exit 0 when it is
    /// ready, 1 when it is not (starting, draining, no credentials, not
    /// listening). For container health checks in an image without a shell.
    Healthcheck(HealthcheckArgs),
}

pub use fleet_common::logging::LogFormat;

/// Declares [`ServeArgs`] from one list: each setting's flag, variable and
/// config-file key come from the same field, and [`ServeArgs::or`] merges
/// two sources without naming a field again.
macro_rules! serve_settings {
    ($( $(#[$meta:meta])* $name:ident : $ty:ty, )*) => {
        /// The settings of `mcp-server serve`, as given: every one optional.
        /// Parsed from flags and `MCP_*` variables, and from the YAML config
        /// file (the same names, without `--`); [`crate::config::Config`]
        /// resolves them over the defaults.
        #[derive(Debug, Clone, Default, Args, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct ServeArgs {
            $( $(#[$meta])* pub $name: Option<$ty>, )*
        }

        impl ServeArgs {
            /// Each setting from `self`, else from `other`.
            pub fn or(self, other: ServeArgs) -> ServeArgs {
                ServeArgs { $( $name: self.$name.or(other.$name), )* }
            }
        }
    };
}

serve_settings! {
    /// Address to listen on [default: 0.0.0.0:8080].
    #[arg(long, env = "MCP_LISTEN")]
    listen: String,
    /// Directory holding tokens.yaml, users.yaml, session.key, kb.db and tools.yaml [default: /data].
    #[arg(long, env = "MCP_DATA_DIR")]
    data_dir: PathBuf,
    /// API tokens file [default: DATA_DIR/tokens.yaml].
    #[arg(long, env = "MCP_TOKENS_FILE")]
    tokens_file: PathBuf,
    /// Users file [default: DATA_DIR/users.yaml].
    #[arg(long, env = "MCP_USERS_FILE")]
    users_file: PathBuf,
    /// Session signing key file [default: DATA_DIR/session.key].
    #[arg(long, env = "MCP_SESSION_KEY_FILE")]
    session_key_file: PathBuf,
    /// Knowledge base [default: DATA_DIR/kb.db].
    #[arg(long, env = "MCP_KB_FILE")]
    kb_file: PathBuf,
    /// Curated tools, prompts and built-in switches; optional [default: DATA_DIR/tools.yaml].
    #[arg(long, env = "MCP_TOOLS_FILE")]
    tools_file: PathBuf,
    /// Directory where the server may keep search index files it makes
    /// (`<sha256>.kbidx`), reused across restarts; never the data directory
    /// [default: none: an unnamed temporary file per KB].
    #[arg(long, env = "MCP_INDEX_CACHE_DIR")]
    index_cache_dir: PathBuf,
    /// Who embeds search queries for semantic and hybrid search: an HTTP
    /// provider whose vectors pgEdge's builder stored in kb.db (openai,
    /// voyage, ollama, gemini), or `local`: the model of
    /// --kb-embedding-model-dir, in-process [default: none: keyword search].
    #[arg(long, env = "MCP_KB_EMBEDDING_PROVIDER")]
    kb_embedding_provider: crate::embedding::ProviderName,
    /// The provider's model, as its API names it [default: openai
    /// text-embedding-3-small, voyage voyage-3, ollama nomic-embed-text,
    /// gemini gemini-embedding-001].
    #[arg(long, env = "MCP_KB_EMBEDDING_MODEL")]
    kb_embedding_model: String,
    /// The local static model's directory (a `*.safetensors` table and a
    /// `tokenizer.json`), the one `kb build --embed-model` used.
    #[arg(long, env = "MCP_KB_EMBEDDING_MODEL_DIR")]
    kb_embedding_model_dir: PathBuf,
    /// The provider's base URL [default: openai https://api.openai.com/v1,
    /// voyage https://api.voyageai.com/v1, ollama http://localhost:11434,
    /// gemini https://generativelanguage.googleapis.com/v1beta].
    #[arg(long, env = "MCP_KB_EMBEDDING_URL")]
    kb_embedding_url: String,
    /// File holding the provider's API key [default: the variable
    /// PGEDGE_KB_<PROVIDER>_API_KEY, else <PROVIDER>_API_KEY, e.g. OPENAI_API_KEY].
    #[arg(long, env = "MCP_KB_EMBEDDING_API_KEY_FILE")]
    kb_embedding_api_key_file: PathBuf,
    /// Dimensions of the provider model's vectors; a KB whose vectors have
    /// another is refused at load [default: known for the default models].
    #[arg(long, env = "MCP_KB_EMBEDDING_DIMENSIONS")]
    kb_embedding_dimensions: usize,
    /// Longest wait for the provider to embed a query; past it, the search
    /// answers with the keyword ranking [default: 2s].
    #[arg(long, env = "MCP_KB_EMBEDDING_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    kb_embedding_timeout: std::time::Duration,
    /// The URL clients use for /mcp, e.g. https://mcp.example.com/mcp: the
    /// audience OAuth access tokens must carry (RFC 8707) and the resource
    /// the metadata at /.well-known/oauth-protected-resource advertises.
    #[arg(long, env = "MCP_OAUTH_RESOURCE")]
    oauth_resource: String,
    /// A trusted OAuth issuer (its `iss`); its keys are found through its
    /// discovery document [default: none: OAuth off]. Several: the config
    /// file's `oauth_issuers`.
    #[arg(long, env = "MCP_OAUTH_ISSUER")]
    oauth_issuer: String,
    /// Comma-separated scopes every token of --oauth-issuer must carry.
    #[arg(long, env = "MCP_OAUTH_SCOPES", value_delimiter = ',')]
    oauth_scopes: Vec<String>,
    /// Trusted issuers, each with its audience and scopes (config file only).
    #[arg(skip)]
    oauth_issuers: Vec<crate::auth::oauth::settings::IssuerConfig>,
    /// What tokens may use, by scope or claim (config file only) [default:
    /// everything].
    #[arg(skip)]
    oauth_permissions: Vec<crate::auth::oauth::settings::GrantConfig>,
    /// Comma-separated PostgreSQL roles that an oauth_permissions grant's
    /// `role_claim:` may name; a token whose claim names another role gets
    /// nothing from that grant [default: none].
    #[arg(long, env = "MCP_OAUTH_ROLE_CLAIM_ALLOWED", value_delimiter = ',')]
    oauth_role_claim_allowed: Vec<String>,
    /// How often each issuer's keys are fetched again; an unknown key id
    /// fetches them sooner [default: 10m].
    #[arg(long, env = "MCP_OAUTH_JWKS_REFRESH", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    oauth_jwks_refresh: std::time::Duration,
    /// Clock skew tolerated on a token's exp and nbf, at most 5m [default: 60s].
    #[arg(long, env = "MCP_OAUTH_CLOCK_SKEW", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    oauth_clock_skew: std::time::Duration,
    /// YAML configuration file; flags and MCP_* variables override it.
    #[arg(long, env = "MCP_CONFIG")]
    #[serde(skip)]
    config: PathBuf,
    /// Name of this instance in logs, /health and metrics [default: hostname].
    #[arg(long, env = "MCP_INSTANCE_ID")]
    instance_id: String,
    /// Log format [default: text on a terminal, json otherwise].
    #[arg(long, env = "MCP_LOG_FORMAT")]
    log_format: LogFormat,
    /// Comma-separated Host values accepted on /mcp [default: loopback names
    /// when listening on loopback, any host otherwise].
    #[arg(long, env = "MCP_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Comma-separated browser origins accepted on /mcp, e.g.
    /// `https://app.example.com`; `*` accepts any [default: same origin only].
    #[arg(long, env = "MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Largest request body accepted, in bytes [default: 1048576].
    #[arg(long, env = "MCP_MAX_BODY_BYTES")]
    max_body_bytes: usize,
    /// Watch data directories with inotify; polling runs either way [default: true].
    #[arg(long, env = "MCP_WATCH")]
    watch: bool,
    /// How often to poll the data files for changes [default: 1s].
    #[arg(long, env = "MCP_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    poll_interval: std::time::Duration,
    /// Comma-separated CIDRs of proxies whose X-Forwarded-For / X-Real-IP are
    /// believed, e.g. 10.0.0.0/8 [default: none].
    #[arg(long, env = "MCP_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<String>,
    /// Failed authentications per client IP within the window before 429 [default: 10].
    #[arg(long, env = "MCP_AUTH_FAILURE_LIMIT")]
    auth_failure_limit: usize,
    /// The failed-authentication window [default: 60s].
    #[arg(long, env = "MCP_AUTH_FAILURE_WINDOW", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    auth_failure_window: std::time::Duration,
    /// Lifetime of session tokens from authenticate_user [default: 24h].
    #[arg(long, env = "MCP_SESSION_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    session_ttl: std::time::Duration,
    /// How long an idle keep-alive connection is kept open between
    /// requests. Keep it longer than your load balancer's upstream idle
    /// timeout [default: 75s].
    #[arg(long, env = "MCP_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    idle_timeout: std::time::Duration,
    /// How long a request's headers may take to arrive, from its first byte
    /// (or from the connection's start) [default: 10s].
    #[arg(long, env = "MCP_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    header_timeout: std::time::Duration,
    /// Connections open at once; more are closed on arrival [default: 4096].
    #[arg(long, env = "MCP_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Connections open at once from one client IP (trusted proxies are
    /// exempt); more are closed on arrival [default: 256].
    #[arg(long, env = "MCP_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: usize,
    /// Longest a request may take, body included [default: 60s].
    #[arg(long, env = "MCP_REQUEST_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    request_timeout: std::time::Duration,
    /// After SIGTERM, keep serving with /health at 503 this long [default: 5s].
    #[arg(long, env = "MCP_DRAIN_DELAY", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    drain_delay: std::time::Duration,
    /// Then wait this long for in-flight requests [default: 20s].
    #[arg(long, env = "MCP_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_opt")]
    shutdown_timeout: std::time::Duration,
    /// Postgres databases (config file only); without them the `PG*`
    /// variables name one.
    #[arg(skip)]
    databases: Vec<crate::pg::DatabaseConfig>,
}

/// Durations in the config file are written as in flags: `5s`, `1m30s`.
mod humantime_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, env = "MCP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Keep the demo's files here instead of a temporary directory.
    #[arg(long, env = "MCP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Build kb.db from a directory of Markdown, reStructuredText, HTML and text.
    Build(KbBuildArgs),
}

#[derive(Debug, Args)]
pub struct KbBuildArgs {
    /// Directory of documentation, read recursively.
    #[arg(long, env = "MCP_DOCS")]
    pub docs: PathBuf,
    /// Knowledge base to write (atomically).
    #[arg(long, env = "MCP_OUT")]
    pub out: PathBuf,
    /// Project name recorded on every chunk [default: the docs directory name].
    #[arg(long, env = "MCP_PROJECT")]
    pub project: Option<String>,
    /// Project version recorded on every chunk.
    #[arg(long, env = "MCP_PROJECT_VERSION", default_value = "latest")]
    pub project_version: String,
    /// Embed every chunk with the local static model in this directory
    /// (a `*.safetensors` table and a `tokenizer.json`) for semantic and
    /// hybrid search; the model is recorded in the KB.
    #[arg(long, env = "MCP_EMBED_MODEL")]
    pub embed_model: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token, print it once, store only its SHA-256.
    Add(TokenAddArgs),
    /// List the tokens: id, expiry, database, permissions, annotation; never
    /// a hash.
    List(TokenListArgs),
    /// Remove a token by id; the file is written atomically.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// tokens.yaml to read.
    #[arg(long, env = "MCP_TOKENS_FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// tokens.yaml to update (written atomically).
    #[arg(long, env = "MCP_TOKENS_FILE")]
    pub file: PathBuf,
    /// The token's id, as `token list` shows it.
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct TokenAddArgs {
    /// tokens.yaml to update (created if missing; written atomically).
    #[arg(long, env = "MCP_TOKENS_FILE")]
    pub file: PathBuf,
    /// What the token is for.
    #[arg(long, env = "MCP_ANNOTATION")]
    pub annotation: String,
    /// Lifetime such as 90d, 12h, 30m, or `never`.
    #[arg(long, env = "MCP_EXPIRES", default_value = "never")]
    pub expires: String,
    /// Bind the token to one configured database.
    #[arg(long, env = "MCP_DATABASE")]
    pub database: Option<String>,
    /// Only these tools (comma-separated; `*` for all, `""` for none).
    /// Without it: every tool.
    #[arg(long, value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// The Postgres tools only on these databases (comma-separated; `*`
    /// for all, `""` for none). Without it: every database.
    #[arg(long, value_delimiter = ',')]
    pub databases: Option<Vec<String>>,
    /// The PostgreSQL role the token's tool calls run as (`SET LOCAL
    /// ROLE`). Without it: the server's login role.
    #[arg(long)]
    pub role: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, or set a user's password; the password is read from
    /// MCP_PASSWORD or the first line of stdin. The file is written atomically.
    Add(UserAddArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// users.yaml to update (created if missing).
    #[arg(long, env = "MCP_USERS_FILE")]
    pub file: PathBuf,
    #[arg(long, env = "MCP_USERNAME")]
    pub username: String,
    #[arg(long, env = "MCP_ANNOTATION", default_value = "")]
    pub annotation: String,
    /// Password hash: bcrypt (cost 12, as pgEdge) or argon2id.
    #[arg(long, default_value = "bcrypt", value_parser = ["bcrypt", "argon2id"])]
    pub hash: String,
    /// Write the user as disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Only these tools for the user's sessions (comma-separated; `*` for
    /// all, `""` for none). Without it: the user's `tools:` is kept as it
    /// is (a new user: every tool).
    #[arg(long, value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// The Postgres tools only on these databases (comma-separated; `*`
    /// for all, `""` for none). Without it: kept as it is (a new user:
    /// every database).
    #[arg(long, value_delimiter = ',')]
    pub databases: Option<Vec<String>>,
    /// The PostgreSQL role the user's tool calls run as (`""`: none, the
    /// server's login role). Without it: kept as it is (a new user: none).
    #[arg(long)]
    pub role: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Data directory to validate.
    #[arg(long, env = "MCP_DATA_DIR", default_value = "/data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The address `serve` listens on; an unspecified address (0.0.0.0,
    /// `[::]`) is probed on loopback.
    #[arg(long, env = "MCP_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// A path that must answer 200; repeat to probe several.
    #[arg(long = "path", value_name = "PATH", default_value = "/health")]
    pub paths: Vec<String>,
    /// Give up on a path after this long.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The settings table of docs/configuration.md, as (flag, variable,
    /// default) rows.
    fn documented() -> Vec<(String, String, String)> {
        let doc = include_str!("../../docs/configuration.md");
        doc.lines()
            .skip_while(|l| !l.starts_with("| flag | environment | default |"))
            .skip(2)
            .take_while(|l| l.starts_with("| `--"))
            .map(|l| {
                let cells: Vec<String> = l
                    .split('|')
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .collect();
                (cells[1].clone(), cells[2].clone(), cells[3].clone())
            })
            .collect()
    }

    #[test]
    fn every_serve_setting_is_documented_with_its_variable_and_default() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("a serve command");
        let docs = documented();
        let mut flags = Vec::new();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let flag = format!("--{long}");
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let row = docs
                .iter()
                .find(|(f, _, _)| *f == flag)
                .unwrap_or_else(|| panic!("{flag} is not in the table of docs/configuration.md"));
            assert_eq!(row.1, env, "{flag}: the table names another variable");
            // A literal default in the table is the one the help shows.
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let literal = !row.2.contains(' ') && row.2 != "none" && row.2 != "hostname";
            if literal {
                assert!(
                    help.contains(&format!("[default: {}]", row.2)),
                    "{flag}: the table's default {} is not the help's ({help})",
                    row.2
                );
            }
            flags.push(flag);
        }
        for (flag, _, _) in &docs {
            assert!(
                flags.contains(flag),
                "the docs list {flag}, which serve does not take"
            );
        }
    }

    #[test]
    fn a_flag_wins_over_the_file_setting_by_setting() {
        let flags = ServeArgs {
            listen: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        let file: ServeArgs =
            serde_norway::from_str("listen: 127.0.0.1:2\ndrain_delay: 3s\n").expect("valid");
        let merged = flags.or(file);
        assert_eq!(merged.listen.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(merged.drain_delay, Some(std::time::Duration::from_secs(3)));
        assert!(serde_norway::from_str::<ServeArgs>("no_such_setting: 1\n").is_err());
        assert!(serde_norway::from_str::<ServeArgs>("config: /etc/x.yaml\n").is_err());
    }
}
