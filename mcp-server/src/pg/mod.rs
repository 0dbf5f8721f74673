//! The Postgres tools: configured databases, their connection pools and the
//! read-only operations behind `query_database`, `get_schema_info`,
//! `execute_explain`, `count_rows`, `similarity_search` and the
//! `pg://system_info` resource.
//!
//! This module owns database configuration ([`DatabaseConfig`], the `PG*`
//! environment variables through [`configs_from_env`], libpq options read
//! out of a connection string by `conninfo`), how a connection is made
//! (`connect`: hosts in order with `target_session_attrs`, back-off; `tls`:
//! libpq's sslmodes on rustls, certificate files re-read when they change;
//! `identity`: a cloud identity's token as the password), one lazily
//! connecting pool per database ([`Databases`], [`Database`]), the
//! per-database health report for `/health`, the caller's role for a call
//! ([`role`]), the pgvector search ([`vector`]), the curated statements of
//! `tools.yaml` and their bound values ([`statement`], [`bind`]) and the
//! errors the tools return ([`ToolError`]). The statement guard ([`guard`])
//! lives in `fleet-common`, which verifies `tools.yaml` with it before the
//! file is published.
//!
//! # Nothing a caller sends can write
//!
//! Users point an LLM at the database, so every argument must be treated as
//! hostile (prompt injection). Writes are refused by independent layers, each
//! of which would stop the published bypasses on its own:
//!
//! 1. **The guard** ([`guard`]) refuses before sending: more than one
//!    statement, transaction control, `SET`/`RESET`/`SET ROLE`, `DO`, `CALL`,
//!    `COPY`, DDL/DML heads, writable CTEs, `SELECT INTO`, row locks,
//!    parameters, and calls of side-effecting or server-file functions
//!    (`nextval`, `setval`, `set_config`, `pg_advisory_*`, `lo_*`,
//!    `pg_read_file`, `dblink*`, `query_to_xml`, ...). It lexes the SQL the
//!    way PostgreSQL does, so keywords inside literals, quoted identifiers,
//!    dollar quotes and nested comments neither hide code nor cause false
//!    refusals.
//! 2. **One statement through the extended protocol.** User SQL is sent as a
//!    single Parse message (tokio-postgres `prepare`/`query`); PostgreSQL
//!    itself refuses a Parse holding several commands ("cannot insert
//!    multiple commands into a prepared statement"). The simple-query
//!    protocol, which runs stacked statements, is used only for fixed text.
//! 3. **A read-only transaction that is always rolled back.** Each call runs
//!    in `START TRANSACTION READ ONLY`, with `SET LOCAL statement_timeout`,
//!    `lock_timeout`, `idle_in_transaction_session_timeout` and
//!    `transaction_read_only`, followed by a `SELECT 1` so that a snapshot
//!    exists: from then on PostgreSQL refuses to switch the transaction to
//!    read-write even from inside a function (`SET transaction_read_only =
//!    off` fails with "transaction read-write mode must be set before any
//!    query"). The transaction ends in `ROLLBACK`, never `COMMIT`; if a call
//!    is cancelled the driver still queues the rollback. What a rollback does
//!    not undo is reset too: session advisory locks are released at the end
//!    of every call, and a pooled connection is reset (`RESET ALL`,
//!    `UNLISTEN *`, `DISCARD TEMP`, ...) each time it is checked out.
//! 4. **A read-only session.** Every connection starts with
//!    `default_transaction_read_only=on`, `standard_conforming_strings=on`
//!    (so the guard's lexing of `\` matches the server's) and a session
//!    `statement_timeout`.
//!
//! # Recommended: a read-only database role (the strongest layer)
//!
//! The layers above hold even for a superuser, and the tests prove it, but a
//! function that a superuser created can still do anything its language
//! allows (an untrusted PL, `dblink`, `COPY ... PROGRAM`), and a superuser
//! can read every table. Connect as a role that can only read what the LLM
//! should see:
//!
//! ```sql
//! CREATE ROLE mcp_reader LOGIN PASSWORD '...';
//! GRANT CONNECT ON DATABASE app TO mcp_reader;
//! GRANT USAGE ON SCHEMA public TO mcp_reader;
//! GRANT SELECT ON ALL TABLES IN SCHEMA public TO mcp_reader;
//! ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO mcp_reader;
//! ALTER ROLE mcp_reader SET default_transaction_read_only = on;
//! ALTER ROLE mcp_reader SET statement_timeout = '30s';
//! -- or, on PostgreSQL 14+: GRANT pg_read_all_data TO mcp_reader;
//! ```
//!
//! Never use a superuser, a table owner or a role with `pg_write_server_files`,
//! `pg_execute_server_program` or `CREATEROLE`.
//!
//! # Availability
//!
//! [`Databases::new`] never connects and never fails because a database is
//! down (it fails on a configuration error: a bad value, a certificate file
//! that does not load, a cloud identity that cannot work). Pools connect on
//! first use, each attempt bounded by `connect_timeout`; a call on a down
//! database fails fast with [`ToolError::Unavailable`], and works again as
//! soon as the database is back (dead connections are dropped at
//! checkout), a multi-host entry then finding the new primary.
//! [`Databases::health`] pings each database on a separate one-connection
//! pool, bounded by one second and cached briefly, so `/health` neither hangs
//! nor floods the database.
//!
//! No error, log line or `Debug` output carries a password or a connection
//! string.

pub mod bind;
mod config;
mod connect;
mod conninfo;
mod error;
mod identity;
mod ops;
pub mod role;
mod schema;
pub mod statement;
mod tls;
pub mod tools;
pub mod vector;

pub use fleet_common::sql::guard;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use connect::Connector;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use serde_json::{Value, json};

use crate::metrics::DatabaseMetrics;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_LIMIT, DEFAULT_MAX_ROWS, DEFAULT_POOL_SIZE,
    DEFAULT_STATEMENT_TIMEOUT, DatabaseConfig, HostEntry, Limits, config_from_vars,
    configs_from_env,
};
pub use connect::SessionAttrs;
pub use error::ToolError;
pub use identity::AuthMethod;
pub use tls::{RootCert, SslMode, TlsSettings};

/// How long a health ping may take.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a health result is reused (bounds the load `/health` puts on a
/// database).
pub const HEALTH_CACHE: Duration = Duration::from_millis(500);
/// How long a call waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// How long checking a pooled connection may take before it is replaced.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a failed call waits for its transaction's rollback to finish.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every configured database. Cheap to clone and share.
#[derive(Clone, Default)]
pub struct Databases {
    dbs: Arc<Vec<Arc<Database>>>,
    metrics: MetricsSlot,
}

/// Where the databases' metrics go, once the server hands them over
/// ([`Databases::attach_metrics`]); shared with every connector.
pub(crate) type MetricsSlot = Arc<std::sync::OnceLock<DatabaseMetrics>>;

impl fmt::Debug for Databases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.dbs.iter()).finish()
    }
}

impl Databases {
    /// Build a pool per database. Never connects, so a database that is down
    /// does not stop the server; fails only on a configuration error
    /// (duplicate names, bad values, unreadable password file).
    pub fn new(configs: Vec<DatabaseConfig>) -> anyhow::Result<Databases> {
        let metrics = MetricsSlot::default();
        let mut dbs: Vec<Arc<Database>> = Vec::with_capacity(configs.len());
        for cfg in configs {
            if dbs.iter().any(|d| d.name == cfg.name) {
                anyhow::bail!("database {:?} is configured twice", cfg.name);
            }
            dbs.push(Arc::new(Database::new(&cfg, &metrics)?));
        }
        Ok(Databases {
            dbs: Arc::new(dbs),
            metrics,
        })
    }

    /// Count connections, health and credential state in `metrics` from
    /// now on (the first call wins).
    pub fn attach_metrics(&self, metrics: DatabaseMetrics) {
        let _ = self.metrics.set(metrics);
    }

    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.dbs.len()
    }

    pub fn names(&self) -> Vec<String> {
        self.dbs.iter().map(|d| d.name.clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Database> {
        self.dbs.iter().find(|d| d.name == name).map(|d| &**d)
    }

    /// Which database a call uses: the `requested` one (a tool's optional
    /// `database` argument), else the credential's binding (`bound`, the
    /// pgEdge `database` field of a token), else the first configured. A
    /// credential bound to a database may use only that database. Tool
    /// calls go through [`crate::catalog::gate::database`], which applies
    /// the credential's permissions first.
    pub fn pick(
        &self,
        requested: Option<&str>,
        bound: Option<&str>,
    ) -> Result<&Database, ToolError> {
        if self.dbs.is_empty() {
            return Err(ToolError::NoDatabase);
        }
        let requested = requested.map(str::trim).filter(|s| !s.is_empty());
        let bound = bound.map(str::trim).filter(|s| !s.is_empty());
        let name = match (requested, bound) {
            (Some(r), Some(b)) if r != b => {
                return Err(ToolError::Forbidden {
                    bound: b.to_string(),
                    requested: r.to_string(),
                });
            }
            (Some(r), _) => r,
            (None, Some(b)) => b,
            (None, None) => return Ok(&self.dbs[0]),
        };
        match (self.get(name), bound) {
            (Some(db), _) => Ok(db),
            // Do not list the other databases to a bound credential.
            (None, Some(b)) => Err(ToolError::BoundDatabaseMissing {
                bound: b.to_string(),
            }),
            (None, None) => Err(ToolError::UnknownDatabase {
                requested: name.to_string(),
                known: self.names().join(", "),
            }),
        }
    }

    /// One entry per database, in configuration order:
    /// `{"name", "up", "error", "latency_ms", "pool": {...}}` (no host names:
    /// `/health` is unauthenticated).
    /// Pings run concurrently, each bounded by [`HEALTH_TIMEOUT`].
    pub async fn health(&self) -> Value {
        let mut set = tokio::task::JoinSet::new();
        for (i, db) in self.dbs.iter().enumerate() {
            let db = db.clone();
            set.spawn(async move { (i, db.health().await) });
        }
        let mut out: Vec<(usize, Value)> = Vec::with_capacity(self.dbs.len());
        while let Some(joined) = set.join_next().await {
            if let Ok(pair) = joined {
                out.push(pair);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        Value::Array(out.into_iter().map(|(_, v)| v).collect())
    }

    /// Whether every database answered its last health ping (`true` when none
    /// is configured).
    pub async fn all_up(&self) -> bool {
        match self.health().await {
            Value::Array(items) => items.iter().all(|v| v["up"] == Value::Bool(true)),
            _ => false,
        }
    }
}

/// One configured database and its pools.
pub struct Database {
    name: String,
    target: String,
    limits: Limits,
    /// Makes every connection of both pools (hosts, TLS, identity).
    connector: Arc<Connector>,
    pool: Pool,
    health_pool: Pool,
    health_cache: tokio::sync::Mutex<Option<(Instant, Value)>>,
    /// The fixed statements that open every read-only transaction.
    pin_sql: String,
    /// The operator let writer tools of `tools.yaml` run here
    /// (`allow_writers: true`).
    allow_writers: bool,
    /// The fixed statements that open a writer tool's transaction.
    writer_pin_sql: String,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn build_pool(
    connector: &Arc<Connector>,
    pg: tokio_postgres::Config,
    size: usize,
    recycling_method: RecyclingMethod,
) -> anyhow::Result<Pool> {
    let manager = Manager::from_connect(
        pg,
        connect::Shared(connector.clone()),
        ManagerConfig { recycling_method },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(connector.budget() + Duration::from_secs(2)))
        .recycle_timeout(Some(RECYCLE_TIMEOUT))
        .build()
        .context("building the connection pool")
}

impl Database {
    fn new(cfg: &DatabaseConfig, metrics: &MetricsSlot) -> anyhow::Result<Database> {
        let resolved = cfg.resolve()?;
        let limits = resolved.limits;
        let tls = tls::Tls::new(resolved.tls.clone())
            .with_context(|| format!("database {}", cfg.name))?;
        let identity = identity::Identity::new(&resolved.auth)
            .with_context(|| format!("database {}", cfg.name))?;
        let connector = Arc::new(Connector::new(
            &cfg.name,
            &resolved.pg,
            resolved.tls.mode,
            tls,
            resolved.attrs,
            identity,
            metrics.clone(),
        ));
        // Checkout resets the session (CLOSE ALL, SET SESSION AUTHORIZATION
        // DEFAULT, RESET ALL, UNLISTEN *, pg_advisory_unlock_all(), DISCARD
        // TEMP, DISCARD SEQUENCES): whatever a cancelled call left behind is
        // gone, and a connection that died while idle (database restarted)
        // is replaced instead of failing the call.
        let pool = build_pool(
            &connector,
            resolved.pg.clone(),
            limits.pool_size,
            RecyclingMethod::Clean,
        )
        .with_context(|| format!("database {}", cfg.name))?;
        let health_pool = build_pool(&connector, resolved.pg, 1, RecyclingMethod::Fast)
            .with_context(|| format!("database {}", cfg.name))?;
        let st = limits.statement_timeout.as_millis();
        let writer_pin_sql = format!(
            "SET LOCAL statement_timeout = {st}; \
             SET LOCAL lock_timeout = {}; \
             SET LOCAL idle_in_transaction_session_timeout = {}; \
             SET LOCAL standard_conforming_strings = on",
            limits.lock_timeout.as_millis(),
            st + 10_000,
        );
        let pin_sql = format!("{writer_pin_sql}; SET LOCAL transaction_read_only = on; SELECT 1");
        Ok(Database {
            name: cfg.name.clone(),
            target: resolved.target,
            connector,
            limits,
            pool,
            health_pool,
            health_cache: tokio::sync::Mutex::new(None),
            pin_sql,
            allow_writers: cfg.allow_writers,
            writer_pin_sql,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `host:port/dbname`: no user, no password.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether writer tools of `tools.yaml` may run here.
    pub fn allows_writers(&self) -> bool {
        self.allow_writers
    }

    fn unavailable(&self, reason: impl Into<String>) -> ToolError {
        ToolError::Unavailable {
            database: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn pool_error(&self, e: PoolError) -> ToolError {
        match e {
            PoolError::Timeout(TimeoutType::Wait) => self.unavailable(format!(
                "all {} connections are busy; try again shortly",
                self.limits.pool_size
            )),
            PoolError::Timeout(_) => self.unavailable("connection timed out"),
            // The connector kept the cause, with the host's position.
            PoolError::Backend(e) => self.unavailable(
                self.connector
                    .recent_failure(Duration::from_secs(5))
                    .unwrap_or_else(|| error::connect_reason(&e)),
            ),
            other => self.unavailable(other.to_string()),
        }
    }

    fn pg_error(&self, e: tokio_postgres::Error) -> ToolError {
        error::from_pg(&self.name, self.limits.statement_timeout, e)
    }

    async fn checkout(&self) -> Result<Object, ToolError> {
        self.pool.get().await.map_err(|e| self.pool_error(e))
    }

    /// Open the read-only transaction every call runs in. The returned
    /// transaction rolls back when dropped.
    async fn begin<'a>(
        &self,
        client: &'a mut Object,
    ) -> Result<deadpool_postgres::Transaction<'a>, ToolError> {
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.pg_error(e))?;
        self.pin(&tx, &self.pin_sql).await?;
        Ok(tx)
    }

    /// End a call: release any session-level advisory lock the statement
    /// took (a function the guard could not see may take one; releasing is
    /// not undone by the rollback), then roll back. Never commits.
    async fn end(&self, tx: deadpool_postgres::Transaction<'_>) -> Result<(), ToolError> {
        self.finish(tx, "ROLLBACK").await
    }

    /// Release session advisory locks and end the transaction with `last`,
    /// in one round trip. The dropped `tx` then queues the driver's own
    /// ROLLBACK, which nobody waits for and PostgreSQL answers with a
    /// warning (no transaction in progress); if the batch failed half-way,
    /// that ROLLBACK is what ends the transaction.
    async fn finish(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        last: &str,
    ) -> Result<(), ToolError> {
        tx.batch_execute(&format!(
            "SELECT pg_catalog.pg_advisory_unlock_all(); {last}"
        ))
        .await
        .map_err(|e| self.pg_error(e))
    }

    /// Open a writer tool's transaction: `START TRANSACTION READ WRITE`
    /// (the session's default is read-only), with the same timeouts as
    /// every call. It commits only through [`Database::commit`]; dropped,
    /// it rolls back.
    async fn begin_writer<'a>(
        &self,
        client: &'a mut Object,
    ) -> Result<deadpool_postgres::Transaction<'a>, ToolError> {
        let tx = client
            .build_transaction()
            .read_only(false)
            .start()
            .await
            .map_err(|e| self.pg_error(e))?;
        self.pin(&tx, &self.writer_pin_sql).await?;
        Ok(tx)
    }

    /// Run a transaction's fixed opening statements, first taking the
    /// caller's role ([`role::current`]) when the call has one: one round
    /// trip either way. A role that cannot be assumed is its own error.
    async fn pin(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        pin_sql: &str,
    ) -> Result<(), ToolError> {
        let Some(role) = role::current() else {
            return tx
                .batch_execute(pin_sql)
                .await
                .map_err(|e| self.pg_error(e));
        };
        let sql = format!("{}; {pin_sql}", role::set_local(&role));
        tx.batch_execute(&sql)
            .await
            .map_err(|e| error::role_refused(&self.name, &role, e))
    }

    /// End a writer tool's call that succeeded: release session advisory
    /// locks, then commit.
    async fn commit(&self, tx: deadpool_postgres::Transaction<'_>) -> Result<(), ToolError> {
        self.finish(tx, "COMMIT").await
    }

    /// The whole-call deadline: the statement timeout plus slack for the
    /// fixed statements, in case the server stops answering.
    fn deadline(&self) -> Duration {
        self.limits.statement_timeout + Duration::from_secs(5)
    }

    /// Return the connection to the pool, or discard it when the call timed
    /// out or the connection failed. After a failed statement the dropped
    /// transaction's ROLLBACK is only queued: one empty round trip on the
    /// same connection waits for it, so the call answers only once its
    /// transaction has ended (a connection that cannot do that is dropped).
    async fn settle<T>(
        &self,
        client: Object,
        outcome: Result<Result<T, ToolError>, tokio::time::error::Elapsed>,
    ) -> Result<T, ToolError> {
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let ended = !matches!(e, ToolError::Unavailable { .. })
                    && !client.is_closed()
                    && matches!(
                        tokio::time::timeout(SETTLE_TIMEOUT, client.simple_query("")).await,
                        Ok(Ok(_))
                    );
                if !ended {
                    drop(Object::take(client));
                }
                Err(e)
            }
            Err(_) => {
                drop(Object::take(client));
                Err(ToolError::Timeout {
                    database: self.name.clone(),
                    timeout: error::human_duration(self.limits.statement_timeout),
                })
            }
        }
    }

    /// This database's health entry (cached for [`HEALTH_CACHE`], bounded by
    /// [`HEALTH_TIMEOUT`]).
    pub async fn health(&self) -> Value {
        let mut cache = self.health_cache.lock().await;
        if let Some((at, v)) = &*cache
            && at.elapsed() < HEALTH_CACHE
        {
            return v.clone();
        }
        let started = Instant::now();
        self.connector.refresh_identity();
        let result = tokio::time::timeout(HEALTH_TIMEOUT, async {
            let client = self
                .health_pool
                .get()
                .await
                .map_err(|e| self.pool_error(e))?;
            match client.simple_query("SELECT 1").await {
                Ok(_) => Ok(()),
                Err(e) => {
                    drop(Object::take(client));
                    Err(self.pg_error(e))
                }
            }
        })
        .await;
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(ToolError::Unavailable { reason, .. })) => Some(reason),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "no answer within {}",
                error::human_duration(HEALTH_TIMEOUT)
            )),
        };
        let latency_ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
        let status = self.pool.status();
        let last_error = self.connector.last_failure().map(|(at, reason)| {
            json!({
                "reason": reason,
                "seconds_ago": at.elapsed().unwrap_or_default().as_secs(),
            })
        });
        let v = json!({
            "name": self.name,
            "up": error.is_none(),
            "writers": self.allow_writers,
            "error": error,
            "last_error": last_error,
            "latency_ms": latency_ms,
            "pool": {
                "max_size": status.max_size,
                "size": status.size,
                "available": status.available,
                "waiting": status.waiting,
            },
            "connection": self.connector.health(),
            "tls": self.connector.tls().map(tls::Tls::health),
            "identity": self.connector.identity().map(identity::Identity::health),
        });
        self.connector
            .metrics(|m| m.set_up(&self.name, error.is_none()));
        *cache = Some((Instant::now(), v.clone()));
        v
    }
}
