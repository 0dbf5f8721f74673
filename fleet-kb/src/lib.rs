//! `fleet-kb`: the knowledge base: turning documentation into `kb.db`
//! ([`chunk`], [`build`]) and searching it with a full-text index ([`search`]).
//!
//! The file format itself (schema, check) lives in
//! [`fleet_common::kb_file`], because the sync tools verify KBs too.

pub mod build;
pub mod chunk;
pub mod search;
