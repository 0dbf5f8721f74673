//! The server's resolved configuration.
//!
//! Precedence, highest first: command-line flag, `MCP_*` environment variable
//! (both handled by clap), the YAML file named by `--config`, built-in default.
//! The YAML file uses the flags' names with underscores:
//!
//! ```yaml
//! listen: 0.0.0.0:8080
//! data_dir: /data
//! allowed_hosts: [mcp.example.com]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;

use crate::cli::{LogFormat, ServeArgs};

/// Paths of the files the server reads.
#[derive(Debug, Clone)]
pub struct DataFiles {
    pub tokens: PathBuf,
    pub users: PathBuf,
    pub session_key: PathBuf,
    pub kb: PathBuf,
    pub tools: PathBuf,
}

impl DataFiles {
    /// The standard file names inside `dir`.
    pub fn in_dir(dir: &Path) -> DataFiles {
        DataFiles {
            tokens: dir.join("tokens.yaml"),
            users: dir.join("users.yaml"),
            session_key: dir.join("session.key"),
            kb: dir.join("kb.db"),
            tools: dir.join("tools.yaml"),
        }
    }
}

/// Which `Host` headers `/mcp` accepts (DNS-rebinding protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// Only loopback names: the default when listening on loopback, where a
    /// browser on the same machine is the threat.
    Loopback,
    /// Any host: the default on other addresses, where traffic arrives through
    /// a load balancer under names this instance cannot know.
    Any,
    /// Exactly these hosts (`name` or `name:port`).
    List(Vec<String>),
}

/// How the reloader notices changed files.
#[derive(Debug, Clone, Copy)]
pub struct ReloadOptions {
    /// Whether to watch directories with inotify (polling always runs).
    pub watch: bool,
    pub poll_interval: Duration,
}

/// Timings of an orderly shutdown.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownTimings {
    /// How long to keep serving, with `/health` at 503, after the signal.
    pub drain_delay: Duration,
    /// How long to wait for in-flight requests once accepting has stopped.
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub files: DataFiles,
    /// Where the server keeps search index files it makes itself (none: an
    /// unnamed temporary file per KB generation).
    pub index_cache_dir: Option<PathBuf>,
    pub instance_id: String,
    pub log_format: LogFormat,
    pub allowed_hosts: HostPolicy,
    /// Browser origins accepted besides the request's own; `*` accepts any.
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub shutdown: ShutdownTimings,
    pub reload: ReloadOptions,
    pub auth: AuthOptions,
    pub request_timeout: Duration,
    /// Deadlines on each connection's request heads and idle time.
    pub deadlines: fleet_common::conn::Deadlines,
    /// Bounds on open connections, in all and per client IP.
    pub connections: fleet_common::conn::Limits,
    /// Databases for the Postgres tools (none: the tools are not offered).
    pub databases: Vec<crate::pg::DatabaseConfig>,
    /// Who embeds queries for semantic and hybrid search (none: keyword
    /// search only).
    pub embedding: Option<crate::embedding::EmbeddingSettings>,
    /// The OAuth resource server (none: API and session tokens only).
    pub oauth: Option<crate::auth::oauth::settings::OAuthSettings>,
}

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    pub trusted_proxies: Vec<IpNet>,
    pub failure_limit: usize,
    pub failure_window: Duration,
    pub session_ttl: Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            trusted_proxies: Vec::new(),
            failure_limit: 10,
            failure_window: Duration::from_secs(60),
            session_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_DATA_DIR: &str = "/data";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

impl Config {
    /// Merge flags and environment (already in `args`) over the config file
    /// over the defaults.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                fleet_common::yaml::from_str::<ServeArgs>(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?
            }
            None => ServeArgs::default(),
        };
        let s = args.or(file);
        let listen_text = s.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text
            .parse()
            .with_context(|| format!("listen address {listen_text:?} is not IP:PORT"))?;
        let data_dir = s
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let defaults = DataFiles::in_dir(&data_dir);
        let files = DataFiles {
            tokens: s.tokens_file.unwrap_or(defaults.tokens),
            users: s.users_file.unwrap_or(defaults.users),
            session_key: s.session_key_file.unwrap_or(defaults.session_key),
            kb: s.kb_file.unwrap_or(defaults.kb),
            tools: s.tools_file.unwrap_or(defaults.tools),
        };
        let index_cache_dir = s.index_cache_dir;
        if let Some(dir) = &index_cache_dir {
            let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
            anyhow::ensure!(
                !real(dir).starts_with(real(&data_dir)),
                "index_cache_dir {} is inside the data directory {}: the server never writes there",
                dir.display(),
                data_dir.display()
            );
        }
        let allowed_hosts = match s.allowed_hosts {
            Some(list) if list.iter().any(|h| h == "*") => HostPolicy::Any,
            Some(list) if !list.is_empty() => HostPolicy::List(list),
            _ if listen.ip().is_loopback() => HostPolicy::Loopback,
            _ => HostPolicy::Any,
        };
        let max_body_bytes = s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        anyhow::ensure!(
            max_body_bytes >= 1024,
            "max_body_bytes must be at least 1024"
        );
        Ok(Config {
            listen,
            files,
            index_cache_dir,
            instance_id: s.instance_id.unwrap_or_else(hostname),
            log_format: s
                .log_format
                .unwrap_or_else(fleet_common::logging::default_format),
            allowed_hosts,
            allowed_origins: s.allowed_origins.unwrap_or_default(),
            max_body_bytes,
            auth: {
                let d = AuthOptions::default();
                AuthOptions {
                    trusted_proxies: parse_cidrs(&s.trusted_proxies.unwrap_or_default())?,
                    failure_limit: s.auth_failure_limit.unwrap_or(d.failure_limit).max(1),
                    failure_window: s.auth_failure_window.unwrap_or(d.failure_window),
                    session_ttl: s.session_ttl.unwrap_or(d.session_ttl),
                }
            },
            request_timeout: s.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            deadlines: fleet_common::conn::Deadlines {
                header: s.header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT),
                idle: s.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            },
            connections: fleet_common::conn::Limits {
                total: s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
                per_ip: s
                    .max_connections_per_ip
                    .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP)
                    .max(1),
            },
            embedding: crate::embedding::resolve(
                crate::embedding::Given {
                    provider: s.kb_embedding_provider,
                    model: s.kb_embedding_model,
                    model_dir: s.kb_embedding_model_dir,
                    url: s.kb_embedding_url,
                    api_key_file: s.kb_embedding_api_key_file,
                    dimensions: s.kb_embedding_dimensions,
                    timeout: s.kb_embedding_timeout,
                },
                |k| std::env::var(k).ok(),
            )?,
            oauth: crate::auth::oauth::settings::resolve(crate::auth::oauth::settings::Given {
                resource: s.oauth_resource,
                issuer: s.oauth_issuer,
                scopes: s.oauth_scopes,
                issuers: s.oauth_issuers,
                permissions: s.oauth_permissions,
                role_claim_allowed: s.oauth_role_claim_allowed,
                jwks_refresh: s.oauth_jwks_refresh,
                clock_skew: s.oauth_clock_skew,
            })?,
            databases: match s.databases {
                Some(list) if !list.is_empty() => list,
                _ => crate::pg::configs_from_env().into_iter().collect(),
            },
            reload: ReloadOptions {
                watch: s.watch.unwrap_or(true),
                poll_interval: s
                    .poll_interval
                    .unwrap_or(DEFAULT_POLL_INTERVAL)
                    .max(Duration::from_millis(10)),
            },
            shutdown: ShutdownTimings {
                drain_delay: s.drain_delay.unwrap_or(DEFAULT_DRAIN_DELAY),
                shutdown_timeout: s.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            },
        })
    }
}

/// CIDRs (`10.0.0.0/8`) or single addresses (`192.0.2.1`).
fn parse_cidrs(list: &[String]) -> anyhow::Result<Vec<IpNet>> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .with_context(|| format!("trusted proxy {s:?} is not a CIDR or IP address"))
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mcp-server".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, "listen: 127.0.0.1:9000\ndata_dir: /srv\ninstance_id: from-file\nmax_body_bytes: 4096\ndrain_delay: 2s\n").unwrap();
        let args = ServeArgs {
            config: Some(cfg.clone()),
            instance_id: Some("from-flag".into()),
            ..Default::default()
        };
        let c = Config::resolve(args).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.instance_id, "from-flag");
        assert_eq!(c.files.kb, PathBuf::from("/srv/kb.db"));
        assert_eq!(c.max_body_bytes, 4096);
        assert_eq!(c.shutdown.drain_delay, Duration::from_secs(2));
        assert_eq!(c.shutdown.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(c.allowed_hosts, HostPolicy::Loopback);
        assert_eq!(c.index_cache_dir, None);
    }

    #[test]
    fn the_index_cache_dir_comes_from_flag_or_file_and_is_never_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, "index_cache_dir: /var/cache/mcp\n").unwrap();
        let from_file = Config::resolve(ServeArgs {
            config: Some(cfg.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            from_file.index_cache_dir,
            Some(PathBuf::from("/var/cache/mcp"))
        );
        let from_flag = Config::resolve(ServeArgs {
            config: Some(cfg),
            index_cache_dir: Some("/tmp/idx".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_flag.index_cache_dir, Some(PathBuf::from("/tmp/idx")));
        let err = Config::resolve(ServeArgs {
            data_dir: Some(dir.path().to_path_buf()),
            index_cache_dir: Some(dir.path().join(".").to_path_buf()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("never writes"), "{err:#}");
        let inside = Config::resolve(ServeArgs {
            data_dir: Some(dir.path().to_path_buf()),
            index_cache_dir: Some(dir.path().join("cache")),
            ..Default::default()
        });
        assert!(inside.is_err());
    }

    #[test]
    fn host_policy_defaults_follow_the_listen_address() {
        let c = Config::resolve(ServeArgs::default()).unwrap();
        assert_eq!(c.allowed_hosts, HostPolicy::Any);
        let c = Config::resolve(ServeArgs {
            allowed_hosts: Some(vec!["mcp.example.com".into()]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.allowed_hosts,
            HostPolicy::List(vec!["mcp.example.com".into()])
        );
    }

    #[test]
    fn typos_in_the_config_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, "lisen: 1.2.3.4:5\n").unwrap();
        let err = Config::resolve(ServeArgs {
            config: Some(cfg),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("lisen"));
    }
}
