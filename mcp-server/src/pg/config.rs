//! Database configuration: the YAML entries, the `PG*` environment variables,
//! and their translation into a `tokio_postgres::Config` plus limits.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::connect::SessionAttrs;
use super::conninfo;
use super::identity::AuthMethod;
use super::tls::{RootCert, SslMode, TlsSettings};
use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer};

pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_MAX_ROWS: usize = 1000;
pub const DEFAULT_LIMIT: usize = 100;
pub const DEFAULT_POOL_SIZE: usize = 4;
const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
pub const APPLICATION_NAME: &str = "pg-mcp-fleet";

/// One configured database, as written in the YAML config file:
///
/// ```yaml
/// databases:
///   - name: prod                      # what tools and token bindings call it
///     host: db.internal               # or: url: postgres://mcp_reader@db.internal:5432/app
///     port: 5432
///     database: app                   # alias: dbname
///     user: mcp_reader                # alias: username
///     password_file: /run/secrets/pg  # or password_env: PROD_PGPASSWORD, or password: ...
///     sslmode: verify-full            # disable | allow | prefer (default) | require | verify-ca | verify-full
///     sslrootcert: /etc/pg-tls/ca.crt # a PEM file of trusted CAs, or `system`
///     sslcert: /etc/pg-tls/tls.crt    # client certificate (PEM), with sslkey
///     sslkey: /etc/pg-tls/tls.key     # PKCS#8, PKCS#1 RSA or SEC1 EC (PEM)
///     sslnegotiation: postgres        # or direct (PostgreSQL 17+)
///     auth: password                  # or aws-rds-iam | gcp-iam | azure-entra
///     region: eu-west-1               # aws-rds-iam only; default: the AWS chain's region
///     hosts: [pg-0:5432, pg-1:5432]   # several hosts (or host: "a,b"), tried in order
///     target_session_attrs: read-write # any | read-write | primary | read-only | standby | prefer-standby
///     statement_timeout: 30s          # default 30s
///     connect_timeout: 3s             # default 3s
///     max_rows: 1000                  # cap on `limit`; default 1000
///     pool_size: 4                    # alias: pool_max_conns; default 4
///     allow_writers: false            # writer tools of tools.yaml may run here; default false
/// ```
///
/// `url` (aliases `conninfo`, `dsn`, `connection_string`) takes a libpq URL or
/// `key=value` string; the other fields override it (except `host`/`port`,
/// which must not be given twice). Unknown fields are ignored, so a pgEdge
/// entry loads unchanged.
#[derive(Clone, Default, Deserialize)]
pub struct DatabaseConfig {
    pub name: String,
    #[serde(
        default,
        alias = "conninfo",
        alias = "dsn",
        alias = "connection_string"
    )]
    pub url: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default, alias = "dbname")]
    pub database: Option<String>,
    #[serde(default, alias = "username")]
    pub user: Option<String>,
    /// Inline password; prefer `password_file` or `password_env`.
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (trailing newline ignored), e.g. a
    /// mounted Kubernetes Secret.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub sslmode: Option<String>,
    /// A PEM file of the CA certificates to trust, or `system`.
    #[serde(default)]
    pub sslrootcert: Option<String>,
    #[serde(default)]
    pub sslcert: Option<PathBuf>,
    #[serde(default)]
    pub sslkey: Option<PathBuf>,
    /// `postgres` (default) or `direct`.
    #[serde(default)]
    pub sslnegotiation: Option<String>,
    /// Several hosts, each `host`, `host:port` or (as pgEdge writes them)
    /// `{host, port}`, tried in order.
    #[serde(default)]
    pub hosts: Option<Vec<HostEntry>>,
    #[serde(default)]
    pub target_session_attrs: Option<String>,
    /// How the password is had: `password` (default: `password`,
    /// `password_file`, `password_env`, the URL), or a cloud identity.
    #[serde(default)]
    pub auth: Option<String>,
    /// The AWS region of an `aws-rds-iam` database.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub statement_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub connect_timeout: Option<Duration>,
    #[serde(default)]
    pub max_rows: Option<usize>,
    #[serde(default, alias = "pool_max_conns")]
    pub pool_size: Option<usize>,
    /// Tools of `tools.yaml` marked `writer: true` may run on this database
    /// (in a read-write transaction that commits). The built-in tools stay
    /// read-only whatever it says.
    #[serde(default)]
    pub allow_writers: bool,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: bool| if v { Some("<redacted>") } else { None };
        f.debug_struct("DatabaseConfig")
            .field("name", &self.name)
            .field("url", &set(self.url.is_some()))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &set(self.password.is_some()))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("sslnegotiation", &self.sslnegotiation)
            .field("hosts", &self.hosts)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("auth", &self.auth)
            .field("region", &self.region)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_rows", &self.max_rows)
            .field("pool_size", &self.pool_size)
            .field("allow_writers", &self.allow_writers)
            .finish()
    }
}

/// One entry of `hosts:`: `host`, `host:port`, `[v6]:port`, or pgEdge's
/// mapping `{host: ..., port: ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HostEntry {
    Text(String),
    Pair {
        host: String,
        #[serde(default)]
        port: Option<u16>,
    },
}

impl From<&str> for HostEntry {
    fn from(s: &str) -> HostEntry {
        HostEntry::Text(s.to_string())
    }
}

impl From<String> for HostEntry {
    fn from(s: String) -> HostEntry {
        HostEntry::Text(s)
    }
}

impl HostEntry {
    /// The host and its port, if one is given.
    fn parts(&self) -> anyhow::Result<(&str, Option<u16>)> {
        match self {
            HostEntry::Text(text) => split_host_port(text.trim()),
            HostEntry::Pair { host, port } => Ok((host.trim(), *port)),
        }
    }

    fn describe(&self) -> String {
        match self {
            HostEntry::Text(text) => text.clone(),
            HostEntry::Pair {
                host,
                port: Some(p),
            } => format!("{host}:{p}"),
            HostEntry::Pair { host, port: None } => host.clone(),
        }
    }
}

/// Durations as `30s` / `1m30s` / `500ms`, or a bare number of seconds.
fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Secs(s)) => Ok(Some(Duration::from_secs(s))),
        Some(Raw::Text(t)) => humantime::parse_duration(t.trim())
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// One database from the libpq environment variables (`PGHOST`, `PGPORT`,
/// `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`,
/// `PGSSLCERT`, `PGSSLKEY`, `PGSSLNEGOTIATION`, `PGTARGETSESSIONATTRS`,
/// `PGCONNECT_TIMEOUT`), named `default`; `None` unless `PGHOST` or
/// `PGDATABASE` is set.
pub fn configs_from_env() -> Option<DatabaseConfig> {
    config_from_vars(|k| std::env::var(k).ok())
}

/// [`configs_from_env`] over any variable lookup (for tests).
pub fn config_from_vars(get: impl Fn(&str) -> Option<String>) -> Option<DatabaseConfig> {
    let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let host = get("PGHOST");
    let database = get("PGDATABASE");
    if host.is_none() && database.is_none() {
        return None;
    }
    Some(DatabaseConfig {
        name: "default".to_string(),
        host,
        port: get("PGPORT").and_then(|p| p.trim().parse().ok()),
        database,
        user: get("PGUSER"),
        password: get("PGPASSWORD"),
        sslmode: get("PGSSLMODE"),
        sslrootcert: get("PGSSLROOTCERT"),
        sslcert: get("PGSSLCERT").map(PathBuf::from),
        sslkey: get("PGSSLKEY").map(PathBuf::from),
        sslnegotiation: get("PGSSLNEGOTIATION"),
        target_session_attrs: get("PGTARGETSESSIONATTRS"),
        connect_timeout: get("PGCONNECT_TIMEOUT")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs),
        ..Default::default()
    })
}

/// Limits that apply to every call on one database.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_rows: usize,
    pub default_limit: usize,
    pub pool_size: usize,
}

/// What a [`DatabaseConfig`] resolves to.
pub(crate) struct Resolved {
    /// Every host; the password when it is a stored one.
    pub pg: tokio_postgres::Config,
    pub tls: TlsSettings,
    pub attrs: SessionAttrs,
    pub auth: AuthMethod,
    pub limits: Limits,
    /// `host:port/dbname` for operators (no user, no password).
    pub target: String,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl DatabaseConfig {
    /// Validate and build the connection settings. Reads `password_file` and
    /// `password_env`; never connects. Errors never contain the password or
    /// the connection string.
    pub(crate) fn resolve(&self) -> anyhow::Result<Resolved> {
        let name = &self.name;
        if !valid_name(name) {
            bail!("database name {name:?} is invalid: use 1-64 letters, digits, `_`, `-` or `.`");
        }
        let (mut pg, from_url) = match &self.url {
            Some(url) => {
                // libpq's options tokio-postgres does not know are read here;
                // the split and parse errors name an option, never a value.
                let split = conninfo::split(url)
                    .map_err(|e| anyhow::anyhow!("database {name}: the url/conninfo: {e}"))?;
                let pg = split.rest.parse::<tokio_postgres::Config>().map_err(|e| {
                    anyhow::anyhow!("database {name}: the url/conninfo is invalid: {e}")
                })?;
                (pg, split)
            }
            None => (tokio_postgres::Config::new(), conninfo::Split::default()),
        };
        let hosts_given = self.host.is_some() || self.hosts.is_some();
        if self.host.is_some() && self.hosts.is_some() {
            bail!("database {name}: give either `host` or `hosts`, not both");
        }
        if self.url.is_some() && !pg.get_hosts().is_empty() && hosts_given {
            bail!("database {name}: give the host either in `url` or in `host`/`hosts`, not both");
        }
        if self.url.is_some() && !pg.get_ports().is_empty() && self.port.is_some() {
            bail!("database {name}: give the port either in `url` or in `port`, not both");
        }
        if let Some(host) = &self.host {
            for h in host.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                pg.host(h);
            }
        }
        if let Some(hosts) = &self.hosts {
            let mut ports = Vec::new();
            for entry in hosts {
                let (host, port) = entry.parts().with_context(|| {
                    format!("database {name}: hosts entry {:?}", entry.describe())
                })?;
                if host.is_empty() {
                    bail!("database {name}: a hosts entry has no host");
                }
                pg.host(host);
                ports.push(port);
            }
            if ports.iter().any(Option::is_some) {
                if self.port.is_some() {
                    bail!("database {name}: give ports either in `hosts` or in `port`, not both");
                }
                for p in ports {
                    pg.port(p.unwrap_or(5432));
                }
            }
        }
        if pg.get_hosts().is_empty() {
            pg.host("localhost");
        }
        if let Some(port) = self.port {
            pg.port(port);
        }
        let (hosts, ports) = (pg.get_hosts().len(), pg.get_ports().len());
        if ports > 1 && ports != hosts {
            bail!(
                "database {name}: {hosts} hosts but {ports} ports: give one port, or one per host"
            );
        }
        if let Some(db) = &self.database {
            pg.dbname(db);
        }
        if let Some(user) = &self.user {
            pg.user(user);
        }
        if pg.get_user().is_none() {
            bail!("database {name}: `user` is required");
        }
        let auth = AuthMethod::parse(self.auth.as_deref(), self.region.as_deref())
            .with_context(|| format!("database {name}"))?;
        let password = self.password_from_sources()?;
        match (&auth, password) {
            (AuthMethod::Password, Some(pw)) => {
                pg.password(pw);
            }
            (AuthMethod::Password, None) => {}
            (cloud, Some(_)) => bail!(
                "database {name}: auth: {} makes the password; remove the password, \
                 password_file or password_env",
                cloud.label()
            ),
            (_, None) if pg.get_password().is_some() => bail!(
                "database {name}: auth: {} makes the password; remove it from the url",
                auth.label()
            ),
            (_, None) => {}
        }
        let tls = self
            .tls_settings(&from_url)
            .with_context(|| format!("database {name}"))?;
        if auth != AuthMethod::Password && !tls.mode.requires_tls() {
            bail!(
                "database {name}: auth: {} sends a token as the password: use sslmode=require, \
                 verify-ca or verify-full",
                auth.label()
            );
        }
        pg.ssl_mode(match tls.mode {
            SslMode::Disable | SslMode::Allow => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if tls.direct {
            pg.ssl_negotiation(tokio_postgres::config::SslNegotiation::Direct);
        }
        let attrs = self
            .target_session_attrs
            .as_deref()
            .or(from_url.get("target_session_attrs"))
            .map(|v| {
                SessionAttrs::parse(v).ok_or_else(|| {
                    anyhow::anyhow!(
                        "database {name}: target_session_attrs {v:?} is not one of any, \
                         read-write, primary, read-only, standby, prefer-standby"
                    )
                })
            })
            .transpose()?
            .unwrap_or(SessionAttrs::Any);
        let statement_timeout = self.statement_timeout.unwrap_or(DEFAULT_STATEMENT_TIMEOUT);
        if statement_timeout < Duration::from_millis(100)
            || statement_timeout > Duration::from_secs(3600)
        {
            bail!("database {name}: statement_timeout must be between 100ms and 1h");
        }
        let connect_timeout = self
            .connect_timeout
            .or(pg.get_connect_timeout().copied())
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
            .clamp(Duration::from_millis(100), Duration::from_secs(60));
        pg.connect_timeout(connect_timeout);
        let max_rows = self.max_rows.unwrap_or(DEFAULT_MAX_ROWS);
        if !(1..=100_000).contains(&max_rows) {
            bail!("database {name}: max_rows must be between 1 and 100000");
        }
        let pool_size = self.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        if !(1..=100).contains(&pool_size) {
            bail!("database {name}: pool_size must be between 1 and 100");
        }
        let lock_timeout = statement_timeout.min(MAX_LOCK_TIMEOUT);
        // Session defaults: a second layer under the per-transaction settings.
        let ms = statement_timeout.as_millis();
        let pinned = format!(
            "-c default_transaction_read_only=on -c standard_conforming_strings=on \
             -c statement_timeout={ms} -c idle_in_transaction_session_timeout={} \
             -c lock_timeout={}",
            ms + 10_000,
            lock_timeout.as_millis()
        );
        let options = match pg.get_options() {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {pinned}"),
            _ => pinned,
        };
        pg.options(options);
        if pg.get_application_name().is_none() {
            pg.application_name(APPLICATION_NAME);
        }
        pg.keepalives(true);
        let target = describe_target(&pg);
        Ok(Resolved {
            pg,
            tls,
            attrs,
            auth,
            limits: Limits {
                statement_timeout,
                lock_timeout,
                connect_timeout,
                max_rows,
                default_limit: DEFAULT_LIMIT.min(max_rows),
                pool_size,
            },
            target,
        })
    }

    /// The TLS settings: each field from the entry, else from the URL.
    fn tls_settings(&self, url: &conninfo::Split) -> anyhow::Result<TlsSettings> {
        let pick = |entry: Option<&str>, key: &str| -> Option<String> {
            entry
                .or(url.get(key))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let root = pick(self.sslrootcert.as_deref(), "sslrootcert").map(|v| {
            if v == "system" {
                RootCert::System
            } else {
                RootCert::File(PathBuf::from(v))
            }
        });
        let mode = match pick(self.sslmode.as_deref(), "sslmode") {
            Some(m) => SslMode::parse(&m).ok_or_else(|| {
                anyhow::anyhow!(
                    "sslmode {m:?} is not one of disable, allow, prefer, require, verify-ca, \
                     verify-full"
                )
            })?,
            // libpq 16: `sslrootcert=system` makes verify-full the default.
            None if root == Some(RootCert::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        let path = |entry: &Option<PathBuf>, key: &str| {
            entry.clone().or_else(|| pick(None, key).map(PathBuf::from))
        };
        let direct = match pick(self.sslnegotiation.as_deref(), "sslnegotiation").as_deref() {
            None | Some("postgres") => false,
            Some("direct") => true,
            Some(other) => bail!("sslnegotiation {other:?} is not one of postgres, direct"),
        };
        let settings = TlsSettings {
            mode,
            root,
            cert: path(&self.sslcert, "sslcert"),
            key: path(&self.sslkey, "sslkey"),
            direct,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn password_from_sources(&self) -> anyhow::Result<Option<String>> {
        let name = &self.name;
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("database {name}: reading password_file {}", path.display())
            })?;
            return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
        }
        if let Some(var) = &self.password_env {
            let value = std::env::var(var).map_err(|_| {
                anyhow::anyhow!("database {name}: password_env names {var}, which is not set")
            })?;
            return Ok(Some(value));
        }
        Ok(self.password.clone())
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(entry: &str) -> anyhow::Result<(&str, Option<u16>)> {
    let parse = |p: &str| -> anyhow::Result<u16> {
        p.parse()
            .map_err(|_| anyhow::anyhow!("the port is not a number from 1 to 65535"))
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| anyhow::anyhow!("`[` without `]`"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(parse(p)?))),
            None if after.is_empty() => Ok((host, None)),
            None => bail!("unexpected text after `]`"),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') => Ok((host, Some(parse(p)?))),
        _ => Ok((entry, None)),
    }
}

fn describe_target(pg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let db = pg.get_dbname().or(pg.get_user()).unwrap_or_default();
    format!("{}:{port}/{db}", hosts.join(","))
}

#[cfg(test)]
mod tests;
