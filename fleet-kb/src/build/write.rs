//! Chunks → the tables of a new `kb.db`: the one writer of the KB layout,
//! used by [`super::build`] and by the bench's synthetic KB generator.
//!
//! [`write_kb`] lays out the schema ([`kb_file::create_new`]), inserts the
//! rows a caller streams into [`KbRows`] in one transaction, and then, in
//! our layout, rebuilds the FTS5 index, builds and stores the search index
//! ([`kb_index::build_and_store`]) and writes `kb_meta`; in pgEdge's layout
//! it drops the tables pgEdge's files lack instead. Opening the file,
//! `VACUUM`, checking and publishing it are the caller's.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, Statement, params};

use fleet_common::kb_file::{self, SCHEMA_VERSION};
use fleet_common::kb_index::{self, build::BuildOptions as IndexOptions};
use fleet_common::kb_vectors;

use crate::chunk::Chunk;
use crate::embed::{StaticModel, chunk_text};

/// What a KB holds besides pgEdge's `chunks` and `source_files`.
#[derive(Debug, Clone, Copy)]
pub enum Layout<'a> {
    /// Ours: the FTS5 index, the search index built with `index`, and
    /// `kb_meta` (`schema_version`, then `meta` in this order).
    Ours {
        index: &'a IndexOptions,
        meta: &'a [(&'a str, String)],
        /// Embed every chunk with this model into `kb_embeddings`
        /// ([`fleet_common::kb_vectors`]).
        embed: Option<&'a StaticModel>,
    },
    /// pgEdge's: the two tables only (no `kb_meta`, FTS5 or search index).
    PgEdge,
}

/// A `source_files` row; its chunks take its path, project and version.
#[derive(Debug, Clone, Copy)]
pub struct SourceFileRow<'a> {
    /// The key of `source_files`: a file whose checksum was written already
    /// gets no second row (its chunks are still written).
    pub checksum: &'a str,
    pub path: &'a str,
    pub project_name: &'a str,
    pub project_version: &'a str,
    /// `source_files.doc_type` ([`crate::chunk::DocType::as_str`]).
    pub doc_type: &'a str,
    /// `source_files.processed_at` and the chunks' `created_at`.
    pub written_at: Option<&'a str>,
}

/// How long each step of [`write_kb`] took.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteTimes {
    /// Inserting the rows.
    pub rows: Duration,
    /// The FTS5 `rebuild` (zero in pgEdge's layout).
    pub fts: Duration,
    /// Building and storing the search index (zero in pgEdge's layout).
    pub index: Duration,
    /// Embedding the chunks (zero without a model).
    pub embed: Duration,
}

/// The inserts of one [`write_kb`] transaction.
pub struct KbRows<'t> {
    insert_file: Statement<'t>,
    insert_chunk: Statement<'t>,
    seen: HashSet<String>,
    /// The id of the last chunk written (ids are 1, 2, 3...).
    last_id: i64,
}

impl KbRows<'_> {
    /// Write a source file and its chunks.
    pub fn add_file<'c>(
        &mut self,
        file: &SourceFileRow<'_>,
        chunks: impl ExactSizeIterator<Item = &'c Chunk>,
    ) -> Result<()> {
        // Identical content twice: one source_files row (the checksum is its
        // key), chunks for both paths.
        if !self.seen.contains(file.checksum) {
            self.insert_file
                .execute(params![
                    file.checksum,
                    file.path,
                    file.project_name,
                    file.project_version,
                    file.doc_type,
                    chunks.len() as i64,
                    file.written_at,
                ])
                .with_context(|| format!("inserting source file {}", file.path))?;
            self.seen.insert(file.checksum.to_string());
        }
        for c in chunks {
            self.last_id += 1;
            let id = self.last_id;
            self.insert_chunk
                .execute(params![
                    id,
                    c.text,
                    c.title,
                    c.section,
                    file.project_name,
                    file.project_version,
                    file.path,
                    file.checksum,
                    file.written_at,
                ])
                .with_context(|| format!("inserting chunk {id} of {}", file.path))?;
        }
        Ok(())
    }
}

/// Lay out a KB in the new, empty database `conn`, let `fill` write its
/// rows, and finish it in `layout`, in one transaction. `work_dir` holds
/// the search index's temporary files. The caller opens the database (and
/// sets its pragmas), and vacuums, closes and checks it after.
pub fn write_kb(
    conn: &mut Connection,
    work_dir: &Path,
    layout: Layout<'_>,
    fill: impl FnOnce(&mut KbRows<'_>) -> Result<()>,
) -> Result<WriteTimes> {
    kb_file::create_new(conn).context("laying out the knowledge base")?;
    let mut times = WriteTimes::default();
    let started = Instant::now();
    let tx = conn.transaction().context("starting the transaction")?;
    {
        let mut rows = KbRows {
            insert_file: tx
                .prepare(
                    "INSERT INTO source_files \
                     (checksum, file_path, project_name, project_version, doc_type, num_chunks, processed_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .context("preparing source_files insert")?,
            insert_chunk: tx
                .prepare(
                    "INSERT INTO chunks \
                     (id, text, title, section, project_name, project_version, file_path, \
                      source_file_checksum, openai_embedding, voyage_embedding, ollama_embedding, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL, ?9)",
                )
                .context("preparing chunks insert")?,
            seen: HashSet::new(),
            last_id: 0,
        };
        fill(&mut rows)?;
    }
    times.rows = started.elapsed();
    let (index, meta) = match layout {
        Layout::PgEdge => {
            tx.execute_batch("DROP TABLE chunks_fts; DROP TABLE kb_meta;")
                .context("dropping our tables")?;
            tx.commit().context("committing")?;
            return Ok(times);
        }
        Layout::Ours { index, meta, embed } => {
            if let Some(model) = embed {
                let step = Instant::now();
                store_vectors(&tx, model).context("embedding the chunks")?;
                times.embed = step.elapsed();
            }
            (index, meta)
        }
    };
    let step = Instant::now();
    tx.execute("INSERT INTO chunks_fts(chunks_fts) VALUES('rebuild')", [])
        .context("building the full-text index")?;
    times.fts = step.elapsed();
    let step = Instant::now();
    kb_index::build_and_store(&tx, work_dir, index).context("building the search index")?;
    times.index = step.elapsed();
    let schema_version = [("schema_version", SCHEMA_VERSION.to_string())];
    for (key, value) in schema_version.iter().chain(meta) {
        tx.execute(
            "INSERT INTO kb_meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )
        .with_context(|| format!("writing kb_meta {key}"))?;
    }
    tx.commit().context("committing")?;
    Ok(times)
}

/// Chunks embedded per batch: read, embedded on every core, written.
const EMBED_BATCH: usize = 4096;

/// Embed every chunk of the KB being written ([`chunk_text`]) with `model`
/// into [`kb_vectors::TABLE`], and record the model in `kb_meta`.
fn store_vectors(tx: &Connection, model: &StaticModel) -> Result<()> {
    tx.execute_batch(kb_vectors::CREATE_TABLE)?;
    kb_vectors::write_identity(tx, model.identity())?;
    let threads = fleet_common::cores();
    let mut read = tx.prepare(
        "SELECT id, coalesce(title, ''), coalesce(section, ''), text FROM chunks \
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut insert = tx.prepare(&format!(
        "INSERT INTO {} (chunk_id, vector) VALUES (?1, ?2)",
        kb_vectors::TABLE
    ))?;
    let mut after = i64::MIN;
    loop {
        let batch: Vec<(i64, String)> = read
            .query_map(params![after, EMBED_BATCH as i64], |r| {
                let (title, section, text): (String, String, String) =
                    (r.get(1)?, r.get(2)?, r.get(3)?);
                Ok((r.get(0)?, chunk_text(&title, &section, &text)))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.0;
        let per = batch.len().div_ceil(threads);
        let vectors: Vec<Option<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .chunks(per)
                .map(|part| {
                    scope
                        .spawn(move || part.iter().map(|(_, t)| model.embed(t)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        anyhow::ensure!(vectors.len() == batch.len(), "an embedding thread failed");
        for ((id, _), v) in batch.iter().zip(vectors) {
            let v = v.with_context(|| {
                format!("chunk {id} has no token the model knows: it cannot be embedded")
            })?;
            insert.execute(params![id, kb_vectors::encode(&v)])?;
        }
    }
}

/// The directory of `path`, `.` for a bare file name: where a KB's
/// temporary files go.
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
