//! `kb.db`: the SQLite knowledge base, its schema and its check.
//!
//! The schema is pgEdge's (`chunks`, `source_files`) plus additions of ours:
//! `kb_meta(key, value)` (schema version, build id, built_at, search index
//! version), the ranked-search index in `kb_search_index`
//! ([`crate::kb_index`]), and `chunks_fts`, an external-content FTS5 index
//! over the chunks (kept for servers of the previous release and for FTS5
//! comparisons). A pgEdge file without the additions is still accepted:
//! [`KbInfo::search_index`] tells a reader to build the index itself.
//!
//! Knowledge bases are opened read-only and immutable: publishers replace the
//! file by renaming a new one over it, so an open handle's inode never changes.
//!
//! A `kb.db` comes from outside and is read by code that trusts its shape,
//! so its shape is checked before anything else is read ([`SHAPES`]): every
//! object read is an ordinary table (a view or a virtual table named
//! `chunks` can run any query, even an endless one, each time it is read)
//! without columns computed at read time, and `chunks_fts` is an FTS5
//! index. Every connection that checks or loads one is opened under a
//! [`Deadline`] that stops any statement once it passes.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::deadline::Deadline;
use crate::{Error, Result};

/// Version of the additions this crate writes into `kb_meta`.
pub const SCHEMA_VERSION: i64 = 1;

/// Columns of `chunks` that search reads; any file without them is refused.
pub const REQUIRED_COLUMNS: [&str; 7] = [
    "id",
    "text",
    "title",
    "section",
    "project_name",
    "project_version",
    "file_path",
];

/// DDL for a new knowledge base: pgEdge's tables, then ours.
pub const CREATE_SCHEMA: &str = "
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    title TEXT,
    section TEXT,
    project_name TEXT NOT NULL,
    project_version TEXT NOT NULL,
    file_path TEXT,
    source_file_checksum TEXT,
    openai_embedding BLOB,
    voyage_embedding BLOB,
    ollama_embedding BLOB,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_chunks_project ON chunks(project_name, project_version);
CREATE TABLE source_files (
    checksum TEXT PRIMARY KEY,
    file_path TEXT NOT NULL,
    project_name TEXT NOT NULL,
    project_version TEXT NOT NULL,
    doc_type TEXT,
    num_chunks INTEGER,
    processed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// The FTS5 index over `chunks`, created in `schema` (`main` for our own files,
/// a side database for pgEdge files). Columns: title, section, text.
pub fn create_fts_sql(schema: &str, content: &str) -> String {
    format!(
        "CREATE VIRTUAL TABLE {schema}.chunks_fts USING fts5(\
         title, section, text, content='{content}', content_rowid='id', \
         tokenize='porter unicode61 remove_diacritics 2');"
    )
}

/// Lay out a new, empty knowledge base on a fresh connection: 4 KiB pages,
/// `journal_mode=DELETE` (so readers of a shared volume need no -wal or -shm
/// file), pgEdge's tables, `kb_meta`, and the FTS5 index over `chunks`.
pub fn create_new(conn: &Connection) -> Result<()> {
    conn.execute_batch("PRAGMA page_size = 4096;")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(Error::invalid(
            "kb.db",
            format!("journal_mode is {mode}, not delete"),
        ));
    }
    conn.execute_batch(CREATE_SCHEMA)?;
    conn.execute_batch(&create_fts_sql("main", "chunks"))?;
    Ok(())
}

/// What a knowledge base holds, read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbInfo {
    pub chunk_count: u64,
    pub has_fts: bool,
    /// Format version of the stored ranked-search index
    /// (`kb_meta.search_index_version`), if the file carries one.
    pub search_index: Option<u32>,
    pub schema_version: Option<i64>,
    pub build_id: Option<String>,
    pub built_at: Option<String>,
    /// The model of the vectors `kb build --embed-model` stored, if any
    /// ([`crate::kb_vectors`]).
    pub embedding: Option<crate::kb_vectors::ModelIdentity>,
}

impl KbInfo {
    /// Whether the KB stores a search index this build can read as it is.
    pub fn stores_usable_index(&self) -> bool {
        self.search_index == Some(crate::kb_index::FORMAT_VERSION)
    }
}

/// Open a knowledge base read-only and immutable; every statement on the
/// connection stops once `deadline` passes ([`Deadline::never`] for the
/// connections searches read hits with, whose statements are bounded).
pub fn open_read_only(path: &Path, deadline: &Deadline) -> Result<Connection> {
    deadline.check()?;
    let uri = format!("file:{}?mode=ro&immutable=1", uri_path(path));
    let mut conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    deadline.guard(&mut conn)?;
    Ok(conn)
}

fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' => out.push_str(&format!("%{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

/// Check a knowledge base file completely: SQLite header, `quick_check`, the
/// schema, the stored search index if there is one of a version this
/// build reads (length, CRC, table of contents, one document per chunk),
/// and our stored vectors if there are any (one per chunk, each of the
/// recorded model's dimension: [`crate::kb_vectors::check_stored`]).
/// This is the check run before a KB is published or loaded; it gives up
/// once `deadline` passes ([`Error::Interrupted`]).
pub fn verify(path: &Path, deadline: &Deadline) -> Result<KbInfo> {
    verify_whole(path, deadline).map_err(|e| deadline.explain(e))
}

fn verify_whole(path: &Path, deadline: &Deadline) -> Result<KbInfo> {
    let conn = open_checked_header(path, deadline)?;
    // The shape first: quick_check reads every page, and what it reads is
    // only worth reading in a file of the right shape.
    check_shapes(&conn)?;
    let result: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if result != "ok" {
        return Err(Error::invalid(
            "kb.db",
            format!("quick_check failed: {result}"),
        ));
    }
    let info = inspect_shaped(&conn)?;
    if info.stores_usable_index() {
        let pack = crate::kb_index::stored::check(&conn)?;
        if pack.docs != info.chunk_count {
            return Err(Error::invalid(
                "kb.db",
                format!(
                    "search index: indexes {} chunks, the KB holds {}",
                    pack.docs, info.chunk_count
                ),
            ));
        }
    }
    if let Some(model) = &info.embedding {
        crate::kb_vectors::check_stored(&conn, model, info.chunk_count)?;
    }
    Ok(info)
}

/// Check the header and the schema only, not every page: for a file whose
/// exact content was [`verify`]'d before it was published, as a sync state
/// record shows (`crate::published::vouched_sha256`). Milliseconds instead
/// of seconds on a large file.
pub fn verify_vouched(path: &Path, deadline: &Deadline) -> Result<KbInfo> {
    open_checked_header(path, deadline)
        .and_then(|conn| inspect(&conn))
        .map_err(|e| deadline.explain(e))
}

fn open_checked_header(path: &Path, deadline: &Deadline) -> Result<Connection> {
    let head = read_header(path)?;
    if !head.starts_with(b"SQLite format 3\0") {
        return Err(Error::invalid("kb.db", "not an SQLite database"));
    }
    open_read_only(path, deadline)
}

/// The objects a reader of a KB reads (and `source_files`, pgEdge's other
/// table), and whether each is an FTS5 index (else an ordinary table).
/// SQLite matches names without regard to case.
pub const SHAPES: [(&str, bool); 6] = [
    ("chunks", false),
    ("source_files", false),
    ("kb_meta", false),
    (crate::kb_index::stored::TABLE, false),
    (crate::kb_vectors::TABLE, false),
    ("chunks_fts", true),
];

/// Refuse a file in which an object of [`SHAPES`] is not what it must be:
/// a view, a virtual table (or an FTS5 index that is something else), or
/// a table with a column computed each time it is read (`GENERATED ...
/// VIRTUAL`, which runs an expression of the file's choosing).
pub fn check_shapes(conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT lower(name), type, coalesce(sql, '') FROM sqlite_schema \
         WHERE lower(name) IN (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let names = SHAPES.map(|(n, _)| n);
    let found: Vec<(String, String, String)> = stmt
        .query_map(names, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, kind, sql) in found {
        let fts = SHAPES.iter().any(|(n, fts)| *n == name && *fts);
        let words: Vec<String> = sql
            .split(|c: char| c.is_whitespace() || c == '(')
            .filter(|w| !w.is_empty())
            .take(6)
            .map(str::to_ascii_lowercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let shape = match words.as_slice() {
            ["create", "table", ..] => "an ordinary table",
            ["create", "virtual", "table", _, "using", "fts5", ..] => "an FTS5 index",
            ["create", "virtual", ..] => "a virtual table",
            _ => "something else",
        };
        let wanted = if fts {
            "an FTS5 index"
        } else {
            "an ordinary table"
        };
        if kind != "table" || shape != wanted {
            let what = if kind == "table" { shape } else { &kind };
            return Err(Error::invalid(
                "kb.db",
                format!("`{name}` is {}{what}, not {wanted}", article(what)),
            ));
        }
        if !fts {
            let computed: i64 = conn.query_row(
                "SELECT count(*) FROM pragma_table_xinfo(?1) WHERE hidden = 2",
                [&name],
                |r| r.get(0),
            )?;
            if computed > 0 {
                return Err(Error::invalid(
                    "kb.db",
                    format!(
                        "`{name}` has a column computed when it is read (GENERATED ... VIRTUAL)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// "a " or "an " before a bare kind (`view`, `index`), nothing before a
/// phrase that has its own article.
fn article(what: &str) -> &'static str {
    if what.starts_with("a ") || what.starts_with("an ") || what.starts_with("something") {
        ""
    } else if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an "
    } else {
        "a "
    }
}

fn read_header(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; 100];
    let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
    buf.truncate(n);
    Ok(buf)
}

/// Read the schema and metadata of an open knowledge base (no page check),
/// once its shape is checked ([`check_shapes`]).
pub fn inspect(conn: &Connection) -> Result<KbInfo> {
    check_shapes(conn)?;
    inspect_shaped(conn)
}

/// [`inspect`] of a knowledge base whose shape is checked already.
fn inspect_shaped(conn: &Connection) -> Result<KbInfo> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('chunks')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        return Err(Error::invalid("kb.db", "no `chunks` table"));
    }
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !columns.iter().any(|have| have == c))
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            "kb.db",
            format!("`chunks` lacks column(s): {}", missing.join(", ")),
        ));
    }
    let chunk_count: i64 = conn.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))?;
    let table_exists = |name: &str| -> Result<bool> {
        Ok(conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )? > 0)
    };
    let has_fts = table_exists("chunks_fts")?;
    if has_fts {
        // Proves the index is readable and its tokenizer is available.
        conn.prepare("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH 'verify' LIMIT 1")?
            .exists([])?;
    }
    let (mut schema_version, mut build_id, mut built_at) = (None, None, None);
    let mut search_index = None;
    let mut embedding = None;
    if table_exists("kb_meta")? {
        let mut stmt = conn.prepare("SELECT key, value FROM kb_meta")?;
        let meta: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        embedding = crate::kb_vectors::read_identity(&meta)?;
        for (k, v) in meta {
            match k.as_str() {
                "schema_version" => schema_version = v.parse().ok(),
                "build_id" => build_id = Some(v),
                "built_at" => built_at = Some(v),
                crate::kb_index::META_KEY => {
                    search_index = Some(v.parse::<u32>().map_err(|_| {
                        Error::invalid("kb.db", format!("{k} {v:?} is not a version number"))
                    })?);
                }
                _ => {}
            }
        }
        if schema_version.is_some_and(|v| v > SCHEMA_VERSION) {
            return Err(Error::invalid(
                "kb.db",
                format!(
                    "schema_version {schema_version:?} is newer than this build understands ({SCHEMA_VERSION})"
                ),
            ));
        }
    }
    if search_index.is_some() && !table_exists(crate::kb_index::stored::TABLE)? {
        return Err(Error::invalid(
            "kb.db",
            format!(
                "kb_meta records a search index but there is no {} table",
                crate::kb_index::stored::TABLE
            ),
        ));
    }
    Ok(KbInfo {
        chunk_count: chunk_count.max(0) as u64,
        has_fts,
        search_index,
        schema_version,
        build_id,
        built_at,
        embedding,
    })
}

#[cfg(test)]
mod tests;
