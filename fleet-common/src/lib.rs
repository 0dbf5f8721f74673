//! `fleet-common`: what more than one binary of the fleet needs.
//!
//! The binaries cooperate only through files, so this crate owns those files:
//! how each one is parsed and validated ([`tokens`], [`users`],
//! [`session_key`], [`kb_file`]), how a kind of file is recognised and checked
//! before anyone trusts it ([`kind`]), and how a file is published atomically
//! into a shared directory ([`publish`]).
//!
//! The server loads files with exactly the same parsers that `kb-init` and
//! `kb-sync-sidecar` use to verify them, so a file that passed verification is
//! a file the server will accept.

pub mod error;
pub mod kb_file;
pub mod kind;
pub mod publish;
pub mod session_key;
pub mod tokens;
pub mod users;
mod yaml;

pub use error::{Error, Result};

/// Hex SHA-256 of `bytes` (lower case).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
