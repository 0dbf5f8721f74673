//! Building the index of a knowledge base's chunks into a pack.
//!
//! Rows are read in `id` order and indexed by tantivy into a temporary
//! directory (bounded memory: segments are flushed to disk and, for a
//! published build, merged at the end, in `id` order, into one segment, or
//! two halves for a large KB), then packed. Segment ids are random in
//! tantivy; they are renumbered in the pack so that the same chunks give
//! the same bytes when built with one indexing thread ([`BuildOptions::deterministic`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::indexer::{IndexWriterOptions, NoMergePolicy};
use tantivy::store::Compressor;
use tantivy::{Index, IndexSettings, IndexWriter, TantivyDocument};

use super::pack::{self, PackInfo};
use super::{ANALYZER, SECTION_WEIGHT, TITLE_WEIGHT, analyzer, invalid, schema};
use crate::{Error, Result};

/// KBs of at least this many chunks are indexed as two segments, split at
/// the first file boundary past the middle. Searches once ran the halves
/// on two threads; they now score them in turn (`fleet_kb::rank` says
/// why), which costs what one segment does, and tests use the split to
/// build an index of two segments. Readers accept any number.
pub const SPLIT_MIN_CHUNKS: u64 = 200_000;

/// Tantivy refuses less memory per indexing thread than this.
const MIN_MEMORY_PER_THREAD: usize = 15_000_000;

/// How to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Indexing threads (the thread reading SQLite comes on top).
    pub threads: usize,
    /// Memory of each indexing thread before it flushes a segment.
    pub memory_per_thread: usize,
    /// From this many chunks on, the index has two segments
    /// ([`SPLIT_MIN_CHUNKS`]); only with `merge`.
    pub split_min_chunks: u64,
    /// Merge the segments indexing left into one (or two halves). Search
    /// is exact over any number of segments; merging makes the bytes
    /// depend on the chunks alone and costs about a seventh of the build.
    pub merge: bool,
}

impl BuildOptions {
    /// One indexing thread: the same chunks always give the same bytes
    /// (`kb build`).
    pub fn deterministic() -> BuildOptions {
        BuildOptions {
            threads: 1,
            memory_per_thread: 200 << 20,
            split_min_chunks: SPLIT_MIN_CHUNKS,
            merge: true,
        }
    }

    /// Every core and no merge, for an index built while a server or sync
    /// tool waits (the thread reading SQLite comes on top: indexing is the
    /// slower side, so one indexing thread per core builds a 100,000-chunk
    /// pgEdge KB's index in about half the time of one). The segments stay
    /// as the threads left them: at 100,000 chunks the server searched a
    /// pgEdge KB 2.74 s after start so, against 3.54 s with the merge, in
    /// the same bench run.
    pub fn fast() -> BuildOptions {
        BuildOptions {
            threads: crate::cores().clamp(1, 4),
            memory_per_thread: 64 << 20,
            split_min_chunks: SPLIT_MIN_CHUNKS,
            merge: false,
        }
    }
}

/// Build the index of the chunks in `table` (e.g. `main.chunks`, or
/// `kb.chunks` for an attached database) and write it as a pack into `out`
/// (empty, positioned at 0). Tantivy's temporary files go in a new
/// directory under `work_dir`, removed on return.
pub fn build_pack(
    conn: &Connection,
    table: &str,
    work_dir: &Path,
    opts: &BuildOptions,
    out: &mut File,
) -> Result<PackInfo> {
    let tmp = tempfile::Builder::new()
        .prefix(crate::publish::TEMP_PREFIX)
        .tempdir_in(work_dir)
        .map_err(|e| Error::io(work_dir, e))?;
    let (docs, order) = index_chunks(conn, table, tmp.path(), opts)?;
    let files = normalized_files(tmp.path(), &order)?;
    pack::write(&files, docs, out)
}

/// Index the chunks into `dir`; returns the document count and the
/// segments (uuid strings) in chunk id order.
fn index_chunks(
    conn: &Connection,
    table: &str,
    dir: &Path,
    opts: &BuildOptions,
) -> Result<(u64, Vec<String>)> {
    let (schema, f) = schema();
    let directory = MmapDirectory::open(dir).map_err(invalid)?;
    let settings = IndexSettings {
        docstore_compression: Compressor::None,
        ..IndexSettings::default()
    };
    let index = Index::create(directory, schema, settings).map_err(invalid)?;
    index.tokenizers().register(ANALYZER, analyzer());
    let mut writer: IndexWriter<TantivyDocument> = index
        .writer_with_options(
            IndexWriterOptions::builder()
                .num_worker_threads(opts.threads.max(1))
                .memory_budget_per_thread(opts.memory_per_thread.max(MIN_MEMORY_PER_THREAD))
                .num_merge_threads(1)
                .build(),
        )
        .map_err(invalid)?;
    writer.set_merge_policy(Box::new(NoMergePolicy));

    let total: u64 = conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })?
        .max(0) as u64;
    let mut stmt = conn.prepare(&format!(
        "SELECT id, title, section, text, project_name, project_version, file_path \
         FROM {table} ORDER BY id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut groups: HashMap<String, u64> = HashMap::new();
    let mut next_group = 0u64;
    let mut docs = 0u64;
    let mut prev_path = String::new();
    let mut first_half: Option<Vec<SegmentId>> = None;
    while let Some(row) = rows.next()? {
        let text = |i: usize| -> Result<Cow<'_, str>> { Ok(text_of(row.get_ref(i)?)) };
        let path = text(6)?;
        // The second half starts at the first new file past the middle.
        if first_half.is_none()
            && opts.merge
            && total >= opts.split_min_chunks
            && docs >= total / 2
            && *path != *prev_path
        {
            writer.commit().map_err(invalid)?;
            first_half = Some(index.searchable_segment_ids().map_err(invalid)?);
        }
        let mut doc = TantivyDocument::default();
        doc.add_i64(f.chunk_id, row.get::<_, i64>(0)?);
        let (title, section) = (text(1)?, text(2)?);
        for _ in 0..TITLE_WEIGHT {
            doc.add_text(f.body, &title);
        }
        for _ in 0..SECTION_WEIGHT {
            doc.add_text(f.body, &section);
        }
        doc.add_text(f.body, text(3)?);
        doc.add_text(f.project_name, text(4)?);
        doc.add_text(f.project_version, text(5)?);
        let group = if path.is_empty() {
            next_group += 1;
            next_group - 1
        } else {
            match groups.get(&*path) {
                Some(g) => *g,
                None => {
                    groups.insert(path.to_string(), next_group);
                    next_group += 1;
                    next_group - 1
                }
            }
        };
        doc.add_u64(f.group, group);
        writer.add_document(doc).map_err(invalid)?;
        docs += 1;
        prev_path.clear();
        prev_path.push_str(&path);
    }
    writer.commit().map_err(invalid)?;

    // Each half becomes one segment, its documents in chunk id order
    // (several indexing threads, or flushes, left several segments in each).
    let first_chunk = first_chunk_ids(&index)?;
    let all = index.searchable_segment_ids().map_err(invalid)?;
    let (a, b): (Vec<SegmentId>, Vec<SegmentId>) = match &first_half {
        Some(first) => all.iter().partition(|id| first.contains(id)),
        None => (all, Vec::new()),
    };
    for mut half in [a, b] {
        if opts.merge && half.len() > 1 {
            half.sort_by_key(|id| first_chunk.get(id).copied().unwrap_or(i64::MAX));
            writer.merge(&half).wait().map_err(invalid)?;
        }
    }
    writer.garbage_collect_files().wait().map_err(invalid)?;
    writer.wait_merging_threads().map_err(invalid)?;
    let first_chunk = first_chunk_ids(&index)?;
    let mut order: Vec<SegmentId> = index.searchable_segment_ids().map_err(invalid)?;
    order.sort_by_key(|id| first_chunk.get(id).copied().unwrap_or(i64::MAX));
    Ok((docs, order.iter().map(SegmentId::uuid_string).collect()))
}

/// The chunk id of each segment's first document.
fn first_chunk_ids(index: &Index) -> Result<HashMap<SegmentId, i64>> {
    let reader: tantivy::IndexReader = index
        .reader_builder()
        .reload_policy(tantivy::ReloadPolicy::Manual)
        .try_into()
        .map_err(invalid)?;
    let mut out = HashMap::new();
    for seg in reader.searcher().segment_readers() {
        let ids = seg.fast_fields().i64("chunk_id").map_err(invalid)?;
        out.insert(seg.segment_id(), ids.first(0).unwrap_or(i64::MAX));
    }
    Ok(out)
}

/// Any SQLite value as text (NULL is empty; a blob is read as UTF-8,
/// lossily), borrowed from the row when it can be.
fn text_of(v: ValueRef<'_>) -> Cow<'_, str> {
    match v {
        ValueRef::Null => Cow::Borrowed(""),
        ValueRef::Integer(i) => Cow::Owned(i.to_string()),
        ValueRef::Real(r) => Cow::Owned(r.to_string()),
        // Valid UTF-8 is checked by the faster path first.
        ValueRef::Text(t) | ValueRef::Blob(t) => match std::str::from_utf8(t) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(t),
        },
    }
}

/// The index's files as (name in the pack, path): `meta.json` with the
/// segments in `order` (uuid strings) renumbered 1, 2, ... and each
/// segment's files renamed to match.
fn normalized_files(dir: &Path, order: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let meta_path = dir.join("meta.json");
    let text = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let mut meta: serde_json::Value = serde_json::from_slice(&text).map_err(invalid)?;
    let mut renames: Vec<(String, String)> = Vec::new();
    if let Some(segments) = meta.get_mut("segments").and_then(|s| s.as_array_mut()) {
        let id_of = |seg: &serde_json::Value| -> Option<String> {
            seg.get("segment_id")
                .and_then(|v| v.as_str())
                .map(|id| id.replace('-', ""))
        };
        if segments.iter().any(|s| id_of(s).is_none()) {
            return Err(invalid("meta.json: a segment without an id"));
        }
        segments.sort_by_key(|seg| {
            let id = id_of(seg).unwrap_or_default();
            order.iter().position(|o| *o == id).unwrap_or(usize::MAX)
        });
        for (i, seg) in segments.iter_mut().enumerate() {
            let old = id_of(seg).unwrap_or_default();
            let new = format!("{:032x}", i + 1);
            let hyphenated = format!(
                "{}-{}-{}-{}-{}",
                &new[..8],
                &new[8..12],
                &new[12..16],
                &new[16..20],
                &new[20..]
            );
            seg["segment_id"] = serde_json::Value::String(hyphenated);
            renames.push((old, new));
        }
    }
    let normalized = dir.join("meta.normalized.json");
    std::fs::write(&normalized, serde_json::to_vec(&meta).map_err(invalid)?)
        .map_err(|e| Error::io(&normalized, e))?;
    let mut files = vec![("meta.json".to_string(), normalized)];
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    for name in entries {
        for (old, new) in &renames {
            if let Some(ext) = name.strip_prefix(old.as_str()) {
                files.push((format!("{new}{ext}"), dir.join(&name)));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index whose segments differ in size opens: its check reads each
    /// hit's fast fields in the hit's own segment (an index built at load
    /// keeps the segments of its indexing threads, whatever their sizes).
    #[test]
    fn an_index_of_unequal_segments_opens() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::kb_file::CREATE_SCHEMA).unwrap();
        for i in 0..1000 {
            // One file of 900 chunks, then 100 files of one chunk. The
            // best matches of the small segment's first term are far into
            // the large one.
            let (file, text) = match i {
                ..600 => ("big.md".to_string(), "vacuum index"),
                600..900 => ("big.md".to_string(), "aardvark aardvark aardvark"),
                _ => (
                    format!("f{i}.md"),
                    "aardvark vacuum vacuum vacuum vacuum vacuum",
                ),
            };
            conn.execute(
                "INSERT INTO chunks(id,text,title,section,project_name,project_version,file_path) \
                 VALUES (?1,?2,'','','p','1',?3)",
                rusqlite::params![i + 1, text, file],
            )
            .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let opts = BuildOptions {
            split_min_chunks: 10,
            ..BuildOptions::deterministic()
        };
        let mut file = tempfile::tempfile_in(dir.path()).unwrap();
        build_pack(&conn, "main.chunks", dir.path(), &opts, &mut file).unwrap();
        let pack = super::super::Pack::open(&file, dir.path()).unwrap();
        let index = super::super::open(pack).unwrap();
        let sizes: Vec<u32> = index
            .reader
            .searcher()
            .segment_readers()
            .iter()
            .map(|s| s.max_doc())
            .collect();
        assert_eq!(sizes, [900, 100]);
        assert_eq!(index.columns.len(), 2);
    }
}
