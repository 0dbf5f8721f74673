//! Chunks → `kb.db`: this module owns collecting documentation files from a
//! directory and writing them, chunked, into a new knowledge base, with its
//! search index ([`fleet_common::kb_index`]) and its FTS5 index.
//!
//! The file is written to a temporary name next to its destination, checked
//! with [`fleet_common::kb_file::verify`] and only then renamed over the
//! destination ([`fleet_common::publish`]), so a reader never sees a partial
//! KB. The output is deterministic: the same documents and options give a
//! byte-identical file (explicit ids and timestamps, fixed page size,
//! `VACUUM` at the end).
//!
//! Layout: this file chunks the documents and publishes the KB; the tables
//! themselves (schema, rows, FTS5, search index, `kb_meta`) are written by
//! `write.rs` ([`write_kb`]), which the bench's generator uses too.

mod write;

pub use write::{KbRows, Layout, SourceFileRow, WriteTimes, dir_of, write_kb};

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use fleet_common::deadline::Deadline;
use fleet_common::kb_file;
use fleet_common::kb_index::{self, build::BuildOptions as IndexOptions};
use fleet_common::publish::{publish, temp_file_in};

use crate::chunk::{Chunk, DocType, chunk_document};

/// What goes into a build besides the documents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildOptions {
    /// `project_name` of every chunk.
    pub project: String,
    /// `project_version` of every chunk.
    pub version: String,
    /// Stored as `kb_meta.built_at`, `chunks.created_at` and
    /// `source_files.processed_at`; `None` leaves them NULL / absent.
    pub built_at: Option<String>,
    /// A local static model directory ([`crate::embed::StaticModel`]):
    /// every chunk is embedded with it and the model recorded.
    pub embed_model: Option<std::path::PathBuf>,
}

/// The outcome of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Documents indexed (those of a supported type, even if they gave no chunk).
    pub files: usize,
    /// Chunks written.
    pub chunks: usize,
    /// `kb_meta.build_id`.
    pub build_id: String,
    /// Paths that were not indexed: unsupported extension, not UTF-8, or a
    /// symbolic link leading out of the docs tree.
    pub skipped: Vec<String>,
}

/// A document to index: its path relative to the docs root (with '/' separators) and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDoc {
    pub path: String,
    pub content: String,
}

/// Read every supported document under `docs`, recursively, sorted by path.
/// Hidden files and directories (name starting with `.`) are ignored.
/// Symbolic links to files inside the tree are read; links to directories are
/// not followed, and links leading out of the tree are skipped. Returns the
/// documents and the skipped paths (unsupported extension, not UTF-8, link out
/// of the tree), both relative to `docs` with '/' separators.
pub fn collect_dir(docs: &Path) -> Result<(Vec<SourceDoc>, Vec<String>)> {
    let root = docs
        .canonicalize()
        .with_context(|| format!("docs directory {}", docs.display()))?;
    ensure!(
        root.is_dir(),
        "docs path {} is not a directory",
        docs.display()
    );
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    walk(&root, &root, "", &mut found, &mut skipped)?;
    found.sort_by(|a: &SourceDoc, b: &SourceDoc| a.path.cmp(&b.path));
    skipped.sort();
    Ok((found, skipped))
}

fn walk(
    root: &Path,
    dir: &Path,
    rel: &str,
    found: &mut Vec<SourceDoc>,
    skipped: &mut Vec<String>,
) -> Result<()> {
    let mut entries = fs::read_dir(dir)
        .and_then(|it| it.collect::<std::io::Result<Vec<_>>>())
        .with_context(|| format!("reading directory {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let lossy = name.to_string_lossy();
        if lossy.starts_with('.') {
            continue;
        }
        let rel_path = if rel.is_empty() {
            lossy.to_string()
        } else {
            format!("{rel}/{lossy}")
        };
        let path = entry.path();
        let file_type = entry
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if file_type.is_dir() {
            if name.to_str().is_none() {
                skipped.push(rel_path);
                continue;
            }
            walk(root, &path, &rel_path, found, skipped)?;
            continue;
        }
        let is_file = if file_type.is_symlink() {
            match fs::canonicalize(&path) {
                Ok(target) if target.starts_with(root) => target.is_file(),
                _ => {
                    skipped.push(rel_path);
                    continue;
                }
            }
        } else {
            file_type.is_file()
        };
        if !is_file {
            // A link to a directory (its content is in the tree already),
            // a socket, a FIFO...
            continue;
        }
        if name.to_str().is_none() || DocType::from_path(&rel_path).is_none() {
            skipped.push(rel_path);
            continue;
        }
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match String::from_utf8(bytes) {
            Ok(content) => found.push(SourceDoc {
                path: rel_path,
                content,
            }),
            Err(_) => skipped.push(rel_path),
        }
    }
    Ok(())
}

/// [`collect_dir`] then [`build`]; the report's `skipped` lists what both
/// skipped.
pub fn build_from_dir(docs: &Path, out: &Path, opts: &BuildOptions) -> Result<BuildReport> {
    let (found, mut skipped) = collect_dir(docs)?;
    if found.is_empty() {
        bail!(
            "no documents to index in {} (supported: .md, .markdown, .rst, .html, .htm, .txt, .text){}",
            docs.display(),
            if skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped {} file(s)", skipped.len())
            }
        );
    }
    let mut report = build(&found, out, opts)?;
    skipped.append(&mut report.skipped);
    skipped.sort();
    report.skipped = skipped;
    Ok(report)
}

/// A document ready to be written.
struct Prepared<'a> {
    doc: &'a SourceDoc,
    doc_type: DocType,
    checksum: String,
    chunks: Vec<Chunk>,
}

/// Chunk `docs` and write them as a knowledge base to `out`, atomically.
/// Documents of an unsupported type are reported in `skipped`. Refuses to
/// write a KB without any chunk.
pub fn build(docs: &[SourceDoc], out: &Path, opts: &BuildOptions) -> Result<BuildReport> {
    if docs.is_empty() {
        bail!("no documents to index: refusing to build an empty knowledge base");
    }
    let mut order: Vec<&SourceDoc> = docs.iter().collect();
    order.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.content.cmp(&b.content)));

    let mut skipped = Vec::new();
    let mut prepared = Vec::new();
    for doc in order {
        let Some(doc_type) = DocType::from_path(&doc.path) else {
            skipped.push(doc.path.clone());
            continue;
        };
        prepared.push(Prepared {
            doc,
            doc_type,
            checksum: fleet_common::sha256_hex(doc.content.as_bytes()),
            chunks: chunk_document(&doc.path, &doc.content, doc_type),
        });
    }
    let chunks: usize = prepared.iter().map(|p| p.chunks.len()).sum();
    if chunks == 0 {
        bail!(
            "the {} document(s) given contain no text to index: refusing to build an empty knowledge base",
            docs.len()
        );
    }
    let build_id = build_id(&prepared, opts);

    let tmp = temp_file_in(dir_of(out))
        .with_context(|| format!("creating a temporary file next to {}", out.display()))?;
    write_db(tmp.path(), &prepared, opts, &build_id)
        .with_context(|| format!("writing knowledge base {}", tmp.path().display()))?;
    let info = kb_file::verify(tmp.path(), &Deadline::none())
        .with_context(|| format!("verifying the new knowledge base {}", tmp.path().display()))?;
    ensure!(
        info.chunk_count == chunks as u64
            && info.has_fts
            && info.search_index == Some(kb_index::FORMAT_VERSION),
        "the new knowledge base holds {} chunk(s) (FTS: {}, search index: {:?}), expected {chunks}",
        info.chunk_count,
        info.has_fts,
        info.search_index
    );
    publish(tmp, out, false).with_context(|| format!("publishing {}", out.display()))?;

    Ok(BuildReport {
        files: prepared.len(),
        chunks,
        build_id,
        skipped,
    })
}

/// First 16 hex characters of a SHA-256 over every chunk's file path, title,
/// section, text, project and version, in insertion order. Each field is
/// length-prefixed so that no two different inputs hash the same bytes.
fn build_id(prepared: &[Prepared<'_>], opts: &BuildOptions) -> String {
    let mut hasher = Sha256::new();
    let mut field = |s: &str| {
        hasher.update((s.len() as u64).to_le_bytes());
        hasher.update(s.as_bytes());
    };
    for p in prepared {
        for c in &p.chunks {
            field(&p.doc.path);
            field(&c.title);
            field(&c.section);
            field(&c.text);
            field(&opts.project);
            field(&opts.version);
        }
    }
    let mut id = hex::encode(hasher.finalize());
    id.truncate(16);
    id
}

fn write_db(
    path: &Path,
    prepared: &[Prepared<'_>],
    opts: &BuildOptions,
    build_id: &str,
) -> Result<()> {
    let mut conn = Connection::open(path).context("opening SQLite database")?;
    let mut meta: Vec<(&str, String)> = vec![
        ("build_id", build_id.to_string()),
        ("project_name", opts.project.clone()),
        ("project_version", opts.version.clone()),
    ];
    if let Some(at) = &opts.built_at {
        meta.push(("built_at", at.clone()));
    }
    let model = opts
        .embed_model
        .as_deref()
        .map(crate::embed::StaticModel::load)
        .transpose()?;
    let layout = Layout::Ours {
        index: &IndexOptions::deterministic(),
        meta: &meta,
        embed: model.as_ref(),
    };
    write_kb(&mut conn, dir_of(path), layout, |rows| {
        for p in prepared {
            let file = SourceFileRow {
                checksum: &p.checksum,
                path: &p.doc.path,
                project_name: &opts.project,
                project_version: &opts.version,
                doc_type: p.doc_type.as_str(),
                written_at: opts.built_at.as_deref(),
            };
            rows.add_file(&file, p.chunks.iter())?;
        }
        Ok(())
    })?;
    conn.execute_batch("VACUUM").context("vacuuming")?;
    conn.close()
        .map_err(|(_, e)| e)
        .context("closing the database")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_common::kb_file::SCHEMA_VERSION;

    fn doc(path: &str, content: &str) -> SourceDoc {
        SourceDoc {
            path: path.to_string(),
            content: content.to_string(),
        }
    }

    fn opts() -> BuildOptions {
        BuildOptions {
            project: "demo".into(),
            version: "1.0".into(),
            built_at: Some("2025-01-01T00:00:00Z".into()),
            embed_model: None,
        }
    }

    fn sample() -> Vec<SourceDoc> {
        vec![
            doc(
                "guide/install.md",
                "# Install\n\nGet the zeppelin binary.\n\n## Docker\n\nRun the container image.\n",
            ),
            doc(
                "intro.txt",
                "Welcome to the demo.\n\nSecond paragraph here.\n",
            ),
            doc(
                "ref.rst",
                "Reference\n=========\n\nAll the ``options`` explained.\n",
            ),
        ]
    }

    fn open(path: &Path) -> Connection {
        Connection::open(path).unwrap()
    }

    #[test]
    fn build_verifies_and_is_searchable() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kb.db");
        let report = build(&sample(), &out, &opts()).unwrap();
        assert_eq!(report.files, 3);
        assert_eq!(report.chunks, 4);
        assert_eq!(report.build_id.len(), 16);
        assert!(report.skipped.is_empty());

        let info = kb_file::verify(&out, &fleet_common::deadline::Deadline::none()).unwrap();
        assert_eq!(info.chunk_count, 4);
        assert!(info.has_fts);
        assert_eq!(info.schema_version, Some(SCHEMA_VERSION));
        assert_eq!(info.build_id.as_deref(), Some(report.build_id.as_str()));
        assert_eq!(info.built_at.as_deref(), Some("2025-01-01T00:00:00Z"));

        let c = open(&out);
        let rowid: i64 = c
            .query_row(
                "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH 'zeppelin'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let (text, section, file, title): (String, String, String, String) = c
            .query_row(
                "SELECT text, section, file_path, title FROM chunks WHERE id = ?1",
                [rowid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert!(text.contains("zeppelin"));
        assert_eq!(
            (section.as_str(), file.as_str(), title.as_str()),
            ("", "guide/install.md", "Install")
        );
        // Porter stemming: "explain" finds "explained"; section column indexed.
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'explain'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'section:docker'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);

        // Ids 1..n in sorted path then chunk order, explicit timestamps.
        let rows: Vec<(i64, String, Option<String>)> = c
            .prepare("SELECT id, file_path, created_at FROM chunks ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        let files: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(
            files,
            [
                "guide/install.md",
                "guide/install.md",
                "intro.txt",
                "ref.rst"
            ]
        );
        assert!(
            rows.iter()
                .all(|r| r.2.as_deref() == Some("2025-01-01T00:00:00Z"))
        );

        let (checksum, doc_type, num, processed): (String, String, i64, Option<String>) = c
            .query_row(
                "SELECT checksum, doc_type, num_chunks, processed_at FROM source_files WHERE file_path = 'guide/install.md'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            checksum,
            fleet_common::sha256_hex(sample()[0].content.as_bytes())
        );
        assert_eq!((doc_type.as_str(), num), ("markdown", 2));
        assert_eq!(processed.as_deref(), Some("2025-01-01T00:00:00Z"));
        let chunk_sums: i64 = c
            .query_row(
                "SELECT count(*) FROM chunks WHERE source_file_checksum = ?1 AND openai_embedding IS NULL",
                [&checksum],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(chunk_sums, 2);
        let meta: Vec<(String, String)> = c
            .prepare("SELECT key, value FROM kb_meta ORDER BY key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let keys: Vec<&str> = meta.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(
            keys,
            [
                "build_id",
                "built_at",
                "project_name",
                "project_version",
                "schema_version",
                "search_index_version"
            ]
        );
        assert_eq!(info.search_index, Some(kb_index::FORMAT_VERSION));
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        assert_eq!(page, 4096);
        drop(c);

        // The stored search index finds the same chunk, stemmed.
        let kb = crate::search::Kb::open(&out).unwrap();
        let hits = kb
            .search(&crate::search::SearchQuery {
                query: "zeppelins".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, rowid);
        drop(kb);

        // Nothing but kb.db left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["kb.db"]);
    }

    #[test]
    fn rebuild_is_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        for built_at in [None, Some("2025-06-01T12:00:00Z".to_string())] {
            let opts = BuildOptions { built_at, ..opts() };
            let a = dir.path().join("a.db");
            let b = dir.path().join("b.db");
            let mut reversed = sample();
            reversed.reverse();
            let ra = build(&sample(), &a, &opts).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1100));
            let rb = build(&reversed, &b, &opts).unwrap();
            assert_eq!(ra, rb);
            let (ba, bb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
            assert!(ba.len() > 4096);
            assert!(ba == bb, "builds differ");
            if opts.built_at.is_none() {
                let c = open(&a);
                let nulls: i64 = c
                    .query_row(
                        "SELECT count(*) FROM chunks WHERE created_at IS NULL",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(nulls, 4);
                assert_eq!(
                    kb_file::verify(&a, &fleet_common::deadline::Deadline::none())
                        .unwrap()
                        .built_at,
                    None
                );
            }
        }
    }

    #[test]
    fn build_id_changes_with_content_and_project() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kb.db");
        let first = build(&sample(), &out, &opts()).unwrap().build_id;
        let mut changed = sample();
        changed[1].content.push_str("\nOne more sentence.\n");
        let second = build(&changed, &out, &opts()).unwrap().build_id;
        assert_ne!(first, second);
        assert_eq!(
            kb_file::verify(&out, &fleet_common::deadline::Deadline::none())
                .unwrap()
                .build_id,
            Some(second)
        );
        let other = BuildOptions {
            version: "2.0".into(),
            ..opts()
        };
        let third = build(&sample(), &out, &other).unwrap().build_id;
        assert_ne!(first, third);
        // built_at is not part of the id.
        let later = BuildOptions {
            built_at: None,
            ..opts()
        };
        assert_eq!(build(&sample(), &out, &later).unwrap().build_id, first);
    }

    #[test]
    fn empty_input_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kb.db");
        let err = build(&[], &out, &opts()).unwrap_err().to_string();
        assert!(err.contains("no documents"), "{err}");
        let err = build(
            &[doc("a.md", "# Only a title\n"), doc("b.txt", "  \n")],
            &out,
            &opts(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no text to index"), "{err}");
        let err = build(&[doc("a.pdf", "binary")], &out, &opts())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no text to index"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn duplicate_content_keeps_one_source_row_and_all_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kb.db");
        let docs = [
            doc("a.md", "Same words here.\n"),
            doc("b.md", "Same words here.\n"),
        ];
        let report = build(&docs, &out, &opts()).unwrap();
        assert_eq!((report.files, report.chunks), (2, 2));
        let c = open(&out);
        let n: i64 = c
            .query_row("SELECT count(*) FROM source_files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let n: i64 = c
            .query_row("SELECT count(DISTINCT file_path) FROM chunks", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn unwritable_destination_is_an_error_with_context() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("missing-dir").join("kb.db");
        let err = format!("{:#}", build(&sample(), &out, &opts()).unwrap_err());
        assert!(err.contains("temporary file"), "{err}");
    }

    #[test]
    fn collect_dir_walks_sorted_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        let outside = dir.path().join("outside.md");
        fs::write(&outside, "# Secret\n\noutside text\n").unwrap();
        fs::create_dir_all(docs.join("sub/deeper")).unwrap();
        fs::create_dir_all(docs.join(".git")).unwrap();
        fs::write(docs.join("z.md"), "# Z\n\nzed text\n").unwrap();
        fs::write(docs.join("a.txt"), "alpha text\n").unwrap();
        fs::write(docs.join("sub/b.rst"), "B\n=\n\nbeta text\n").unwrap();
        fs::write(docs.join("sub/deeper/c.html"), "<p>gamma text</p>").unwrap();
        fs::write(docs.join("image.png"), [0x89, b'P', b'N', b'G']).unwrap();
        fs::write(docs.join("latin1.txt"), [b'c', b'a', b'f', 0xe9]).unwrap();
        fs::write(docs.join(".hidden.md"), "hidden text\n").unwrap();
        fs::write(docs.join(".git/config.md"), "git text\n").unwrap();
        std::os::unix::fs::symlink(&outside, docs.join("escape.md")).unwrap();
        std::os::unix::fs::symlink(docs.join("z.md"), docs.join("sub/link.md")).unwrap();
        std::os::unix::fs::symlink(dir.path(), docs.join("sub/up")).unwrap();
        std::os::unix::fs::symlink(docs.join("sub"), docs.join("loop")).unwrap();

        let (found, skipped) = collect_dir(&docs).unwrap();
        let paths: Vec<&str> = found.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "a.txt",
                "sub/b.rst",
                "sub/deeper/c.html",
                "sub/link.md",
                "z.md"
            ]
        );
        assert_eq!(found[0].content, "alpha text\n");
        assert_eq!(skipped, ["escape.md", "image.png", "latin1.txt", "sub/up"]);

        let out = dir.path().join("kb.db");
        let report = build_from_dir(&docs, &out, &opts()).unwrap();
        assert_eq!(report.files, 5);
        assert_eq!(report.skipped, skipped);
        let c = open(&out);
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'outside OR hidden OR git'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);

        assert!(collect_dir(&dir.path().join("nope")).is_err());
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let err = build_from_dir(&empty, &out, &opts())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no documents"), "{err}");
    }
}
