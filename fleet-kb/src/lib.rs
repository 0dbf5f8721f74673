//! `fleet-kb`: the knowledge base: turning documentation into `kb.db` and
//! searching it.
//!
//! - [`chunk`]: documents (Markdown, reStructuredText, HTML, text) → chunks,
//!   one parser a format (`chunk/markdown.rs`, `html.rs`, `rst.rs`, `text.rs`).
//! - [`build`]: chunks → a new `kb.db`, with its search index and FTS5 index;
//!   `build/write.rs` ([`build::write_kb`]) is the one writer of the tables.
//! - [`search`]: one loaded generation of a KB ([`search::Kb`]): opening it
//!   (`search/open.rs`, [`search::Kb::open_with`]: verify, connections), its
//!   index (`search/index.rs`), searching it and listing products.
//! - [`rank`]: BM25 ranking, scored term at a time into one score per
//!   chunk, with field boosts, the per-file cap and page scores.
//! - [`query`]: untrusted query text → index terms.
//! - [`embed`]: text → vectors with a local static model ([`embed::StaticModel`]).
//! - [`vectors`]: a generation's chunk vectors, quantised and mapped; the
//!   nearest to a query's vector.
//! - [`fuse`]: hybrid ranking: keyword and vector rankings fused by
//!   reciprocal rank of their pages, diversified.
//! - [`fts5`]: the previous engine (SQLite FTS5), kept for comparisons.
//!
//! The file format itself (schema, check) lives in
//! [`fleet_common::kb_file`], and the search index's format (schema,
//! analyzer, pack, caches) in [`fleet_common::kb_index`], because the sync
//! tools verify KBs and prepare their indexes too.

pub mod build;
pub mod chunk;
pub mod embed;
pub mod fts5;
pub mod fuse;
pub mod query;
pub mod rank;
pub mod search;
pub mod vectors;
