//! Errors the Postgres tools return to the caller (and so to the LLM).
//!
//! Every message is meant to be read by a person or a model: what was
//! refused and why, or what the server said. None carries a password or a
//! connection string: connection failures are reduced to their cause
//! (`connection refused`, `password authentication failed ...`), and server
//! errors to PostgreSQL's own message, detail, hint and SQLSTATE.

use std::error::Error as _;
use std::time::Duration;

/// A failed Postgres tool call.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("no database is configured on this server")]
    NoDatabase,
    #[error("unknown database {requested:?}; configured databases: {known}")]
    UnknownDatabase { requested: String, known: String },
    #[error("this credential is bound to database {bound:?} and cannot use {requested:?}")]
    Forbidden { bound: String, requested: String },
    #[error("this credential is bound to database {bound:?}, which is not configured here")]
    BoundDatabaseMissing { bound: String },
    /// No grant of the credential allows the tool on this database.
    #[error("this credential may not use the database {database:?}")]
    NotPermitted { database: String },
    /// No grant of the credential allows the tool on any configured
    /// database.
    #[error("this credential may use none of the databases configured on this server")]
    NoPermittedDatabase,
    /// The guard refused the SQL before anything was sent.
    #[error("query rejected: {0}")]
    Rejected(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The embedding model gave no vector for the text (similarity_search).
    #[error("{0}")]
    Embedding(String),
    /// A writer tool of `tools.yaml` on a database that does not allow them.
    #[error(
        "database {database} does not run writer tools: the server's configuration does not \
         set allow_writers for it"
    )]
    WritersOff { database: String },
    /// The call's transaction could not take the credential's role.
    #[error(
        "database {database}: this credential's role {role:?} cannot be assumed: {reason}; \
         ask an operator to `GRANT {role} TO` the server's login role, or fix the role named \
         in the credential"
    )]
    Role {
        database: String,
        role: String,
        reason: String,
    },
    #[error("database {database} is unavailable: {reason}")]
    Unavailable { database: String, reason: String },
    #[error(
        "database {database}: the query was cancelled after {timeout} (statement timeout); \
         narrow it or add a LIMIT"
    )]
    Timeout { database: String, timeout: String },
    /// PostgreSQL refused or failed the statement.
    #[error("database {database}: {message}")]
    Postgres {
        database: String,
        message: String,
        sqlstate: Option<String>,
    },
}

impl ToolError {
    /// A short stable label, e.g. for metrics: `rejected`, `unavailable`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::NoDatabase => "no_database",
            ToolError::UnknownDatabase { .. } => "unknown_database",
            ToolError::Forbidden { .. } | ToolError::BoundDatabaseMissing { .. } => "forbidden",
            ToolError::NotPermitted { .. } | ToolError::NoPermittedDatabase => "not_permitted",
            ToolError::Rejected(_) => "rejected",
            ToolError::InvalidArgument(_) => "invalid_argument",
            ToolError::Embedding(_) => "embedding",
            ToolError::WritersOff { .. } => "writers_off",
            ToolError::Role { .. } => "role",
            ToolError::Unavailable { .. } => "unavailable",
            ToolError::Timeout { .. } => "timeout",
            ToolError::Postgres { .. } => "postgres",
        }
    }

    /// Whether the credential's permissions refused the call (counted in
    /// `mcp_tool_calls_denied_total`).
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            ToolError::NotPermitted { .. } | ToolError::NoPermittedDatabase
        )
    }

    /// The SQLSTATE of a server error (e.g. `25006` read-only violation).
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ToolError::Postgres { sqlstate, .. } => sqlstate.as_deref(),
            _ => None,
        }
    }
}

pub(crate) fn human_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A connection-level failure reduced to its cause.
pub(crate) fn connect_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last_msg = None;
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "connection timed out".to_string(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_string(),
                std::io::ErrorKind::NotFound => "socket not found".to_string(),
                _ => io.to_string(),
            };
        }
        if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>() {
            if let Some(db) = pg.as_db_error() {
                return db.message().to_string();
            }
            if pg.is_closed() {
                return "the connection was closed".to_string();
            }
        }
        last_msg = Some(err.to_string());
        cur = err.source();
    }
    last_msg.unwrap_or_else(|| "unknown error".to_string())
}

/// A failure of the statements that open a call's transaction as the
/// caller's role: PostgreSQL's refusal of the role (it does not exist, or
/// the login role is not a member of it) becomes [`ToolError::Role`];
/// anything else (the connection broke) is reported as usual.
pub(crate) fn role_refused(database: &str, role: &str, e: tokio_postgres::Error) -> ToolError {
    match e.as_db_error() {
        Some(db) if matches!(db.code().code(), "42704" | "42501" | "22023") => ToolError::Role {
            database: database.to_string(),
            role: role.to_string(),
            reason: db.message().to_string(),
        },
        _ => from_pg(database, Duration::ZERO, e),
    }
}

/// Turn a driver error during a call into a [`ToolError`].
pub(crate) fn from_pg(database: &str, timeout: Duration, e: tokio_postgres::Error) -> ToolError {
    let Some(db) = e.as_db_error() else {
        let reason = if e.is_closed() {
            "the connection was closed".to_string()
        } else {
            e.source()
                .map(connect_reason)
                .unwrap_or_else(|| e.to_string())
        };
        return ToolError::Unavailable {
            database: database.to_string(),
            reason,
        };
    };
    let code = db.code().code().to_string();
    if code == "57014" && db.message().contains("statement timeout") {
        return ToolError::Timeout {
            database: database.to_string(),
            timeout: human_duration(timeout),
        };
    }
    // Admin shutdown / crash recovery: the database went away mid-call.
    if matches!(code.as_str(), "57P01" | "57P02" | "57P03") {
        return ToolError::Unavailable {
            database: database.to_string(),
            reason: db.message().to_string(),
        };
    }
    let mut message = format!("{}: {}", db.severity(), db.message());
    if let Some(d) = db.detail() {
        message.push_str(&format!("\nDETAIL: {d}"));
    }
    if let Some(h) = db.hint() {
        message.push_str(&format!("\nHINT: {h}"));
    }
    message.push_str(&format!(" (SQLSTATE {code})"));
    ToolError::Postgres {
        database: database.to_string(),
        message,
        sqlstate: Some(code),
    }
}
