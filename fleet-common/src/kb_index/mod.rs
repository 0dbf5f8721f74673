//! The ranked-search index that `kb.db` carries: its schema, its analyzer,
//! and opening it.
//!
//! The index is a tantivy index (its posting lists scored by
//! `fleet_kb::rank`), merged to one segment by `kb build` (left as
//! indexed when built at load) and packed into one byte string ([`pack`]). `kb build` stores
//! that pack in `kb.db`, split into rows of the `kb_search_index` table
//! ([`stored`]), and records [`FORMAT_VERSION`] in `kb_meta` under
//! `search_index_version`; pgEdge's server ignores both. A pgEdge `kb.db`
//! has no index: one is built from its chunks ([`build`]). Readers never
//! search the SQLite rows: the pack is copied once into a cache file named
//! by the KB's sha256 ([`cache`]), mmapped, and served to tantivy through a
//! read-only directory ([`directory`]).
//!
//! Everything that decides which bytes the index holds lives here, because
//! `kb build`, the server and the sync tools (which build or check the index
//! before they publish a KB) must agree on it byte for byte.

pub mod analyzer;
pub mod build;
pub mod cache;
pub mod directory;
pub mod pack;
pub mod stored;

use std::panic::{AssertUnwindSafe, catch_unwind};

use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, ReloadPolicy};

use crate::{Error, Result};

pub use pack::Pack;

/// Version of the index layout (schema, analyzer, pack). A reader that finds
/// a newer one in `kb_meta` builds its own index from the chunks instead.
pub const FORMAT_VERSION: u32 = 1;

/// `kb_meta` key holding [`FORMAT_VERSION`] of the stored index.
pub const META_KEY: &str = "search_index_version";

/// Name under which [`analyzer`] is registered on every index.
pub const ANALYZER: &str = "kb_en";

/// The text pipeline of the indexed text and of query words
/// ([`analyzer::KbTokenizer`]).
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::from(analyzer::KbTokenizer::default())
}

/// How many times a chunk's title counts in its indexed text, and its
/// section heading: a word in the title weighs as much as eight in the body.
/// These were FTS5's column weights (bm25 8, 4, 1); kept in one field, they
/// give the same saturating BM25 (a title match cannot outweigh everything
/// else), and one posting list per term to score.
pub const TITLE_WEIGHT: usize = 8;
pub const SECTION_WEIGHT: usize = 4;

/// The fields of the index.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Ranked text: title ([`TITLE_WEIGHT`] times), section heading
    /// ([`SECTION_WEIGHT`] times) and body of the chunk.
    pub body: Field,
    /// `chunks.id` (fast field): the row a hit is read from.
    pub chunk_id: Field,
    /// The chunk's source file as a number (fast field): equal for chunks of
    /// the same `file_path`, unique for chunks without one.
    pub group: Field,
    /// Exact `project_name` and `project_version` (filters).
    pub project_name: Field,
    pub project_version: Field,
}

/// The index's schema and its fields. Nothing is stored: hits are read from
/// `chunks` by id.
pub fn schema() -> (Schema, Fields) {
    let ranked = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let exact = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let mut b = Schema::builder();
    let fields = Fields {
        body: b.add_text_field("body", ranked),
        chunk_id: b.add_i64_field("chunk_id", FAST),
        group: b.add_u64_field("group", FAST),
        project_name: b.add_text_field("project_name", exact.clone()),
        project_version: b.add_text_field("project_version", exact),
    };
    (b.build(), fields)
}

/// Build the index of `conn`'s `main.chunks`, check it by opening it, and
/// store it in the same database ([`stored`]); the caller holds the
/// transaction. Tantivy's temporary files and the pack go in `work_dir`
/// (an unnamed file).
pub fn build_and_store(
    conn: &rusqlite::Connection,
    work_dir: &std::path::Path,
    opts: &build::BuildOptions,
) -> Result<pack::PackInfo> {
    let mut file = tempfile::tempfile_in(work_dir).map_err(|e| Error::io(work_dir, e))?;
    let info = build::build_pack(conn, "main.chunks", work_dir, opts, &mut file)?;
    let name = std::path::Path::new("index pack");
    drop(open(Pack::open(&file, name)?)?);
    stored::store(conn, &mut file)?;
    Ok(info)
}

/// An opened index: one reader, reloaded never (an index is immutable; a new
/// KB is a new `SearchIndex`).
pub struct SearchIndex {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
    /// Documents in the index.
    pub docs: u64,
    /// The fast fields of each segment (in the searcher's order), opened
    /// once: opening one reads a header per block of 512 documents, which a
    /// search at 1,000,000 chunks felt (9 % of its CPU).
    pub columns: Vec<Columns>,
}

/// One segment's fast fields.
#[derive(Clone)]
pub struct Columns {
    /// `chunks.id` of each document.
    pub chunk_id: tantivy::columnar::Column<i64>,
    /// Its source file's group ([`Fields::group`]).
    pub group: tantivy::columnar::Column<u64>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("docs", &self.docs)
            .finish()
    }
}

/// Open the index in `pack` and check it: our schema, one reader, the
/// document count the pack announces, and one search that reads postings,
/// field norms and both fast fields. A panic inside tantivy (which only a
/// malformed index could cause) is an error here, never a crash.
pub fn open(pack: Pack) -> Result<SearchIndex> {
    let docs = pack.docs();
    catch_unwind(AssertUnwindSafe(|| open_unguarded(pack)))
        .unwrap_or_else(|_| Err(invalid("opening it panicked (malformed index)")))
        .and_then(|index| {
            if index.docs == docs {
                Ok(index)
            } else {
                Err(invalid(format!(
                    "holds {} documents, its table of contents says {docs}",
                    index.docs
                )))
            }
        })
}

fn open_unguarded(pack: Pack) -> Result<SearchIndex> {
    let index = Index::open(directory::PackDirectory::new(pack)).map_err(invalid)?;
    let (ours, fields) = schema();
    if index.schema() != ours {
        return Err(invalid("its schema is not this version's"));
    }
    index.tokenizers().register(ANALYZER, analyzer());
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(invalid)?;
    let searcher = reader.searcher();
    let docs = searcher.num_docs();
    probe(&searcher, &fields)?;
    let columns = searcher
        .segment_readers()
        .iter()
        .map(|segment| {
            Ok(Columns {
                chunk_id: segment.fast_fields().i64("chunk_id").map_err(invalid)?,
                group: segment.fast_fields().u64("group").map_err(invalid)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(SearchIndex {
        index,
        reader,
        fields,
        docs,
        columns,
    })
}

/// Read every structure a search reads, once: a union of the first two
/// terms of the dictionary (postings, block maxima, field norms), and both
/// fast fields of the hits.
fn probe(searcher: &tantivy::Searcher, fields: &Fields) -> Result<()> {
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(fields.body).map_err(invalid)?;
        let mut terms = inverted.terms().stream().map_err(invalid)?;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        while clauses.len() < 2
            && let Some((key, _)) = terms.next()
        {
            let word = String::from_utf8_lossy(key).into_owned();
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                tantivy::Term::from_field_text(fields.body, &word),
                IndexRecordOption::WithFreqs,
            ));
            clauses.push((Occur::Should, q));
        }
        if clauses.is_empty() {
            continue;
        }
        let top = searcher
            .search(
                &BooleanQuery::new(clauses),
                &TopDocs::with_limit(3).order_by_score(),
            )
            .map_err(invalid)?;
        // A hit may be in any segment: its fields are read in its own.
        for (_, addr) in top {
            let hit = searcher.segment_reader(addr.segment_ord);
            hit.fast_fields()
                .i64("chunk_id")
                .map_err(invalid)?
                .first(addr.doc_id);
            hit.fast_fields()
                .u64("group")
                .map_err(invalid)?
                .first(addr.doc_id);
        }
    }
    Ok(())
}

pub(crate) fn invalid(e: impl std::fmt::Display) -> Error {
    Error::invalid("kb.db", format!("search index: {e}"))
}
