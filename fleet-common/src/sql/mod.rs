//! SQL text, read the way PostgreSQL reads it, without a server: the lexer
//! (strings, quoted identifiers, dollar quotes and comments), the statement
//! guard every Postgres tool's SQL passes ([`guard`]), and the placeholders
//! of a curated statement ([`placeholders`]).
//!
//! It lives here, not in the server, because `kb-init` and the sidecar check
//! the statements of `tools.yaml` before publishing it, with the same code
//! the server runs them through.

pub mod guard;
mod lexer;
pub mod placeholders;
