//! `fleet-common`: what more than one binary of the fleet needs.
//!
//! The binaries cooperate only through files, so this crate owns those files:
//! how each one is parsed and validated ([`tokens`], [`users`] and the
//! [`permissions`] and [`role`] their entries may carry,
//! [`session_key`], [`kb_file`], the search index and vectors a KB
//! carries, [`kb_index`] and [`kb_vectors`], and the curated tools and
//! prompts of [`tools_file`], whose SQL is read as PostgreSQL reads it by
//! [`sql`]), how a kind of file is recognised and checked
//! before anyone trusts it ([`kind`]), and how a file is published atomically
//! into a shared directory ([`publish`]) and recognised later as the version
//! that was verified ([`published`], by its [`identity`]); a data file is
//! only ever read as a regular file within its kind's size limit
//! ([`read`]), and a URL is shown without what may be a secret
//! ([`redact`]). The binaries also
//! share their log format ([`logging`]), their shutdown signal
//! ([`signals`]), their exit statuses ([`exit`]), the deadlines and limits
//! of their HTTP connections ([`conn`]) and the formats of their `/metrics`
//! ([`metrics_text`]).
//!
//! The server loads files with exactly the same parsers that `kb-init` and
//! `kb-sync-sidecar` use to verify them, so a file that passed verification is
//! a file the server will accept.
//!
//! [`local_probe`] is the `healthcheck` subcommand of `mcp-server` and
//! `kb-sync-sidecar`: their own endpoints asked over loopback, for container
//! health checks in an image without a shell.

pub mod conn;
pub mod deadline;
pub mod error;
pub mod exit;
pub mod identity;
pub mod kb_file;
pub mod kb_index;
pub mod kb_vectors;
pub mod kind;
pub mod local_probe;
pub mod logging;
pub mod metrics_text;
pub mod permissions;
pub mod publish;
pub mod published;
pub mod read;
pub mod redact;
pub mod role;
pub mod session_key;
pub mod signals;
pub mod sql;
pub mod tokens;
pub mod tools_file;
pub mod users;
pub mod yaml;

pub use error::{Error, Result};

/// The cores this process may use (1 if unknown). Read once: the standard
/// library's answer reads the cgroup's files each time, which a search on
/// every request cannot afford.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Hex SHA-256 of `bytes` (lower case).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Hex SHA-256 of a file's content, read in chunks.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
