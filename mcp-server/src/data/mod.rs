//! The data files: what is known of each ([`table`]), loading one into the
//! live stores ([`load`]), auditing a KB loaded on its sync record's word
//! ([`audit`]), and noticing that one changed ([`reloader`], which compares
//! [`fingerprint`]s).
//!
//! [`load::load`] is the only way a file reaches a store; the reloader and
//! start-up call it through [`load::spawn_load`], one thread per file.

pub mod audit;
pub mod fingerprint;
pub mod load;
pub mod metrics;
pub mod reloader;
pub mod table;

pub use table::{DataFile, FileStatus, FileTable};
