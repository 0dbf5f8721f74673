//! Full-text search over one `kb.db`, ranked by FTS5's BM25.
//!
//! A [`Kb`] is one immutable generation of the knowledge base: opened
//! read-only, verified, and then shared by every search until a newer
//! generation replaces it. All its SQLite connections are opened together at
//! load, so they all read the same inode even if a newer file is renamed over
//! the path a moment later; a search borrows one (waiting if all are busy),
//! and the connections close when the last search holding the generation
//! finishes.
//!
//! pgEdge's `kb.db` has no full-text index. For such a file the index is built
//! once, at load, into a private temporary database attached beside it; the
//! published file is never written.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use anyhow::Context;
use fleet_common::kb_file::{self, KbInfo};
use rusqlite::{Connection, params_from_iter};
use serde::Serialize;

/// Results per search when the caller does not say.
pub const DEFAULT_TOP_N: usize = 5;
/// The most results one search returns.
pub const MAX_TOP_N: usize = 20;
/// Terms of a query beyond this many are ignored.
const MAX_TERMS: usize = 24;
/// Connections per generation: enough to keep every core searching.
fn pool_size() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (n.get() * 2).clamp(2, 8))
}
/// BM25 weights of the indexed columns: title, section, text.
const BM25_WEIGHTS: &str = "8.0, 4.0, 1.0";

/// A search request, as `search_knowledgebase` receives it.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub query: String,
    pub project_names: Vec<String>,
    pub project_versions: Vec<String>,
    pub top_n: Option<usize>,
}

/// One ranked chunk.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub id: i64,
    pub title: String,
    pub section: String,
    pub project_name: String,
    pub project_version: String,
    pub file_path: String,
    pub text: String,
    /// BM25 score, higher is better.
    pub score: f64,
}

/// A product and version present in the knowledge base.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Product {
    pub project_name: String,
    pub project_version: String,
    pub chunks: u64,
}

/// One loaded generation of the knowledge base.
pub struct Kb {
    path: PathBuf,
    info: KbInfo,
    /// Side database holding the FTS index of a pgEdge file, if one was built.
    side_index: Option<tempfile::TempPath>,
    pool: Mutex<Vec<Connection>>,
    returned: Condvar,
    products: OnceLock<Vec<Product>>,
}

impl std::fmt::Debug for Kb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kb")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

impl Kb {
    /// Verify the file at `path` completely and load it. Blocking.
    pub fn open(path: &Path) -> anyhow::Result<Kb> {
        let info = kb_file::verify(path)?;
        Self::open_verified(path, info)
    }

    /// Load a file whose content a sync state record vouches for: its pages
    /// were checked before it was published, so only its schema is checked
    /// here ([`kb_file::verify_vouched`]). Blocking.
    pub fn open_vouched(path: &Path) -> anyhow::Result<Kb> {
        let info = kb_file::verify_vouched(path)?;
        Self::open_verified(path, info)
    }

    /// Load a file already verified by [`kb_file::verify`]. Blocking.
    ///
    /// The caller is responsible for noticing a file replaced while this
    /// runs (compare the file's identity before and after): every connection
    /// is opened here, and none is ever opened by path again.
    pub fn open_verified(path: &Path, info: KbInfo) -> anyhow::Result<Kb> {
        let side_index = if info.has_fts {
            None
        } else {
            Some(build_side_index(path).context("building the full-text index of a pgEdge kb.db")?)
        };
        let mut conns = Vec::with_capacity(pool_size());
        for _ in 0..pool_size() {
            conns.push(connect(path, side_index.as_deref())?);
        }
        Ok(Kb {
            path: path.to_path_buf(),
            info,
            side_index,
            pool: Mutex::new(conns),
            returned: Condvar::new(),
            products: OnceLock::new(),
        })
    }

    pub fn info(&self) -> &KbInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the full-text index was built at load (a pgEdge file).
    pub fn indexed_at_load(&self) -> bool {
        self.side_index.is_some()
    }

    fn fts_table(&self) -> &'static str {
        if self.side_index.is_some() {
            "idx.chunks_fts"
        } else {
            "main.chunks_fts"
        }
    }

    /// Run `f` on a pooled connection, waiting for one if all are busy.
    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let conn = {
            let mut pool = self
                .pool
                .lock()
                .map_err(|_| anyhow::anyhow!("kb pool poisoned"))?;
            loop {
                if let Some(c) = pool.pop() {
                    break c;
                }
                pool = self
                    .returned
                    .wait(pool)
                    .map_err(|_| anyhow::anyhow!("kb pool poisoned"))?;
            }
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(conn);
        }
        self.returned.notify_one();
        out
    }

    /// Rank chunks for `q`. Blocking: call from a blocking thread.
    ///
    /// Chunks holding every term come first (an AND match is small and
    /// precise); when they are fewer than `top_n`, chunks holding every term
    /// that occurs at all, and only then chunks holding any term. Ranking
    /// reads the FTS index alone; the chunks' rows are read for the winners
    /// only, unless a product or version filter needs them.
    pub fn search(&self, q: &SearchQuery) -> anyhow::Result<Vec<Hit>> {
        let top_n = q.top_n.unwrap_or(DEFAULT_TOP_N).clamp(1, MAX_TOP_N);
        let Some(terms) = fts_terms(&q.query) else {
            return Ok(Vec::new());
        };
        let filters: Vec<(&str, Vec<&String>)> = [
            ("project_name", &q.project_names),
            ("project_version", &q.project_versions),
        ]
        .into_iter()
        .map(|(c, v)| (c, v.iter().filter(|s| !s.is_empty()).collect::<Vec<_>>()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
        self.with_conn(|conn| {
            let mut ranked = self.rank(conn, &terms.join(" AND "), &filters, top_n)?;
            let fill = |expr: String, ranked: &mut Vec<(i64, f64)>| -> anyhow::Result<()> {
                let seen: HashSet<i64> = ranked.iter().map(|(id, _)| *id).collect();
                let more = self.rank(conn, &expr, &filters, top_n)?;
                ranked.extend(more.into_iter().filter(|(id, _)| !seen.contains(id)));
                ranked.truncate(top_n);
                Ok(())
            };
            if ranked.len() < top_n && terms.len() > 1 {
                // A word no chunk has empties the AND match; the words that
                // are there, all together, come next. Only then any of them,
                // which on a large KB means ranking most of it.
                let present = self.present_terms(conn, &terms)?;
                if present.len() < terms.len() && !present.is_empty() {
                    fill(present.join(" AND "), &mut ranked)?;
                }
                if ranked.len() < top_n && present.len() > 1 {
                    fill(present.join(" OR "), &mut ranked)?;
                }
            }
            let mut stmt = conn.prepare_cached(
                "SELECT coalesce(title,''), coalesce(section,''), project_name, project_version, \
                 coalesce(file_path,''), text FROM main.chunks WHERE id = ?1",
            )?;
            let mut hits = Vec::with_capacity(ranked.len());
            for (id, score) in ranked {
                let hit = stmt.query_row([id], |r| {
                    Ok(Hit {
                        id,
                        title: r.get(0)?,
                        section: r.get(1)?,
                        project_name: r.get(2)?,
                        project_version: r.get(3)?,
                        file_path: r.get(4)?,
                        text: r.get(5)?,
                        score,
                    })
                })?;
                hits.push(hit);
            }
            Ok(hits)
        })
    }

    /// The terms found in at least one chunk (one index probe each).
    fn present_terms<'t>(
        &self,
        conn: &Connection,
        terms: &'t [String],
    ) -> anyhow::Result<Vec<&'t str>> {
        let sql = format!(
            "SELECT 1 FROM {} AS f WHERE f.chunks_fts MATCH ?1 LIMIT 1",
            self.fts_table()
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut present = Vec::with_capacity(terms.len());
        for t in terms {
            if stmt.exists([t])? {
                present.push(t.as_str());
            }
        }
        Ok(present)
    }

    /// The best `top_n` (id, score) for an FTS5 expression, best first.
    fn rank(
        &self,
        conn: &Connection,
        expr: &str,
        filters: &[(&str, Vec<&String>)],
        top_n: usize,
    ) -> anyhow::Result<Vec<(i64, f64)>> {
        let fts = self.fts_table();
        let mut sql = if filters.is_empty() {
            format!(
                "SELECT f.rowid, bm25(f.chunks_fts, {BM25_WEIGHTS}) AS score \
                 FROM {fts} AS f WHERE f.chunks_fts MATCH ?"
            )
        } else {
            format!(
                "SELECT f.rowid, bm25(f.chunks_fts, {BM25_WEIGHTS}) AS score \
                 FROM {fts} AS f JOIN main.chunks AS c ON c.id = f.rowid \
                 WHERE f.chunks_fts MATCH ?"
            )
        };
        let mut args: Vec<&str> = vec![expr];
        for (column, values) in filters {
            sql.push_str(&format!(
                " AND c.{column} IN ({})",
                vec!["?"; values.len()].join(",")
            ));
            args.extend(values.iter().map(|v| v.as_str()));
        }
        sql.push_str(&format!(" ORDER BY score LIMIT {top_n}"));
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
            Ok((r.get::<_, i64>(0)?, -r.get::<_, f64>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every product and version in the knowledge base, with chunk counts.
    pub fn products(&self) -> anyhow::Result<Vec<Product>> {
        if let Some(p) = self.products.get() {
            return Ok(p.clone());
        }
        let list = self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT project_name, project_version, count(*) FROM chunks \
                 GROUP BY project_name, project_version ORDER BY project_name, project_version",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Product {
                    project_name: r.get(0)?,
                    project_version: r.get(1)?,
                    chunks: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        Ok(self.products.get_or_init(|| list).clone())
    }
}

fn connect(path: &Path, side_index: Option<&Path>) -> anyhow::Result<Connection> {
    let conn = kb_file::open_read_only(path)?;
    if let Some(idx) = side_index {
        conn.execute(
            "ATTACH DATABASE ?1 AS idx",
            [format!("file:{}?mode=ro", idx.display())],
        )?;
    }
    Ok(conn)
}

/// Build the FTS index of a file that has none, in a temporary database.
fn build_side_index(kb: &Path) -> anyhow::Result<tempfile::TempPath> {
    let tmp = tempfile::Builder::new()
        .prefix("mcp-kb-index-")
        .suffix(".db")
        .tempfile()?
        .into_temp_path();
    let conn = Connection::open(&tmp)?;
    conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")?;
    conn.execute(
        "ATTACH DATABASE ?1 AS kb",
        [format!("file:{}?mode=ro&immutable=1", kb.display())],
    )?;
    conn.execute_batch(&kb_file::create_fts_sql("main", ""))?;
    conn.execute_batch(
        "BEGIN; INSERT INTO main.chunks_fts(rowid, title, section, text) \
         SELECT id, coalesce(title,''), coalesce(section,''), coalesce(text,'') FROM kb.chunks; \
         COMMIT; INSERT INTO main.chunks_fts(chunks_fts) VALUES('optimize');",
    )?;
    conn.execute_batch("DETACH DATABASE kb")?;
    drop(conn);
    Ok(tmp)
}

/// Turn free text into safe FTS5 terms: every word becomes a quoted term (so
/// no FTS5 syntax in the query can take effect), and stop words are dropped
/// unless nothing else remains.
pub fn fts_terms(text: &str) -> Option<Vec<String>> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut seen = HashSet::new();
    let content: Vec<&String> = words.iter().filter(|w| !is_stop_word(w)).collect();
    let chosen: Vec<&String> = if content.is_empty() {
        words.iter().collect()
    } else {
        content
    };
    let terms: Vec<String> = chosen
        .into_iter()
        .filter(|w| seen.insert(w.as_str()))
        .take(MAX_TERMS)
        .map(|w| format!("\"{w}\""))
        .collect();
    (!terms.is_empty()).then_some(terms)
}

fn is_stop_word(w: &str) -> bool {
    const STOP: [&str; 48] = [
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
        "i", "if", "in", "is", "it", "its", "me", "my", "not", "of", "on", "or", "should", "so",
        "that", "the", "their", "then", "there", "these", "this", "to", "use", "was", "we", "what",
        "when", "where", "which", "who", "why", "will", "with", "you",
    ];
    STOP.binary_search(&w).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(is_stop_word("the") && is_stop_word("you") && is_stop_word("a"));
        assert!(!is_stop_word("vacuum"));
    }

    #[test]
    fn queries_cannot_inject_fts_syntax() {
        let fts_query = |text: &str| fts_terms(text).map(|t| t.join(" OR "));
        assert_eq!(
            fts_query("How do I VACUUM a table?").as_deref(),
            Some("\"vacuum\" OR \"table\"")
        );
        assert_eq!(
            fts_query("title:x NEAR(\"a\" b) *").as_deref(),
            Some("\"title\" OR \"x\" OR \"near\" OR \"b\"")
        );
        assert_eq!(fts_query("the").as_deref(), Some("\"the\""));
        assert_eq!(fts_query("  ?! "), None);
    }

    fn make_kb(path: &Path, with_fts: bool) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(kb_file::CREATE_SCHEMA).unwrap();
        let rows = [
            (
                "Routine vacuuming of tables reclaims storage",
                "Maintenance",
                "Vacuum",
                "postgres",
                "17",
            ),
            (
                "Indexes speed up lookups on large tables",
                "Indexes",
                "B-tree",
                "postgres",
                "16",
            ),
            (
                "The replication slot keeps WAL for a standby",
                "Replication",
                "Slots",
                "postgres",
                "17",
            ),
            (
                "Vacuum settings in the spock extension",
                "Spock",
                "Config",
                "spock",
                "5",
            ),
        ];
        for (text, title, section, p, v) in rows {
            c.execute(
                "INSERT INTO chunks(text,title,section,project_name,project_version,file_path) VALUES (?1,?2,?3,?4,?5,'doc.md')",
                [text, title, section, p, v],
            )
            .unwrap();
        }
        if with_fts {
            c.execute_batch(&kb_file::create_fts_sql("main", "chunks"))
                .unwrap();
            c.execute_batch("INSERT INTO chunks_fts(chunks_fts) VALUES('rebuild')")
                .unwrap();
        }
    }

    fn check_search(kb: &Kb) {
        let hits = kb
            .search(&SearchQuery {
                query: "how to vacuum".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(hits.len(), 2);
        assert!(
            hits.iter()
                .all(|h| h.text.to_lowercase().contains("vacuum"))
        );
        assert!(hits[0].score >= hits[1].score);
        let filtered = kb
            .search(&SearchQuery {
                query: "vacuum".into(),
                project_names: vec!["spock".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered[0].project_name, "spock");
        let by_version = kb
            .search(&SearchQuery {
                query: "tables".into(),
                project_versions: vec!["16".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_version.len(), 1);
        assert_eq!(by_version[0].title, "Indexes");
        let one = kb
            .search(&SearchQuery {
                query: "postgres vacuum standby indexes".into(),
                top_n: Some(1),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(one.len(), 1);
        let products = kb.products().unwrap();
        assert_eq!(products.len(), 3);
        assert_eq!(
            products[0],
            Product {
                project_name: "postgres".into(),
                project_version: "16".into(),
                chunks: 1
            }
        );
    }

    #[test]
    fn searches_our_kb_with_its_own_index() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.db");
        make_kb(&p, true);
        let kb = Kb::open(&p).unwrap();
        assert!(!kb.indexed_at_load());
        check_search(&kb);
    }

    #[test]
    fn searches_a_pgedge_kb_without_writing_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.db");
        make_kb(&p, false);
        let before = std::fs::read(&p).unwrap();
        let kb = Kb::open(&p).unwrap();
        assert!(kb.indexed_at_load());
        check_search(&kb);
        assert_eq!(
            std::fs::read(&p).unwrap(),
            before,
            "the published file must not change"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing written beside it"
        );
    }

    #[test]
    fn chunks_with_every_term_come_first_and_or_fills_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.db");
        make_kb(&p, true);
        let kb = Kb::open(&p).unwrap();
        // Only the Spock chunk has both words; Maintenance has "vacuum" only,
        // repeated in its title, which would win a pure OR ranking.
        let q = SearchQuery {
            query: "vacuum spock".into(),
            top_n: Some(3),
            ..Default::default()
        };
        let hits = kb.search(&q).unwrap();
        assert_eq!(hits[0].title, "Spock");
        assert_eq!(hits.len(), 2, "OR fills in the other vacuum chunk");
        assert_eq!(hits[1].title, "Maintenance");
        let one = kb
            .search(&SearchQuery {
                query: "vacuum spock".into(),
                top_n: Some(1),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].title, "Spock");
        // A word no chunk has does not demote the chunk holding all the others.
        let absent = kb
            .search(&SearchQuery {
                query: "vacuum spock zyzzyva".into(),
                top_n: Some(3),
                ..Default::default()
            })
            .unwrap();
        let titles: Vec<&str> = absent.iter().map(|h| h.title.as_str()).collect();
        assert_eq!(titles, ["Spock", "Maintenance"]);
    }

    #[test]
    fn a_generation_keeps_reading_its_own_file_after_a_rename_over_it() {
        for with_fts in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("kb.db");
            make_kb(&p, with_fts);
            let kb = std::sync::Arc::new(Kb::open(&p).unwrap());
            // Publish a different KB over the path, as the sidecar does.
            let next = dir.path().join("next.db");
            let c = Connection::open(&next).unwrap();
            c.execute_batch(kb_file::CREATE_SCHEMA).unwrap();
            c.execute("INSERT INTO chunks(text,project_name,project_version) VALUES ('zebra crossing','z','1')", [])
                .unwrap();
            c.execute_batch(&kb_file::create_fts_sql("main", "chunks"))
                .unwrap();
            c.execute_batch("INSERT INTO chunks_fts(chunks_fts) VALUES('rebuild')")
                .unwrap();
            drop(c);
            std::fs::rename(&next, &p).unwrap();
            // More parallel searches than pooled connections: all must see
            // the old generation, none may open the new file.
            let threads: Vec<_> = (0..4 * pool_size())
                .map(|_| {
                    let kb = kb.clone();
                    std::thread::spawn(move || {
                        let q = |text: &str| SearchQuery {
                            query: text.into(),
                            ..Default::default()
                        };
                        (
                            kb.search(&q("vacuum")).unwrap().len(),
                            kb.search(&q("zebra")).unwrap().len(),
                        )
                    })
                })
                .collect();
            for t in threads {
                assert_eq!(t.join().unwrap(), (2, 0), "with_fts={with_fts}");
            }
            assert_eq!(
                Kb::open(&p)
                    .unwrap()
                    .search(&SearchQuery {
                        query: "zebra".into(),
                        ..Default::default()
                    })
                    .unwrap()
                    .len(),
                1
            );
        }
    }
}
