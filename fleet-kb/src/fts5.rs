//! The previous ranking engine, SQLite FTS5 BM25, kept callable so that
//! benchmarks can put it beside the current one ([`search_fts5`]).
//!
//! Behaviour as it was: chunks holding every term first, then every term
//! that occurs at all, then any term (OR); BM25 weights title 8, section 4,
//! text 1; the FTS5 table `chunks_fts` of the file, or for a file without
//! one (pgEdge's) an index built into a private temporary database at open.
//! It scores every match, so it slows down with the KB's size.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use fleet_common::deadline::Deadline;
use fleet_common::kb_file::{self, KbInfo};
use rusqlite::{Connection, params_from_iter};

use crate::search::{DEFAULT_TOP_N, HIT_ROW_SQL, Hit, MAX_TOP_N, SearchQuery};
use fleet_common::kb_index::analyzer::is_stop_word;

/// Terms of a query beyond this many are ignored.
const MAX_TERMS: usize = 24;
/// BM25 weights of the indexed columns: title, section, text.
const BM25_WEIGHTS: &str = "8.0, 4.0, 1.0";

/// Search the KB at `kb_path` with FTS5, opening it for this one search.
pub fn search_fts5(kb_path: &Path, q: &SearchQuery) -> anyhow::Result<Vec<Hit>> {
    Fts5Kb::open(kb_path)?.search(q)
}

/// A KB opened for FTS5 search.
pub struct Fts5Kb {
    info: KbInfo,
    /// Side database holding the FTS index of a pgEdge file, if one was built.
    side_index: Option<tempfile::TempPath>,
    conn: Mutex<Connection>,
}

impl Fts5Kb {
    /// Open the KB at `path` (header and schema checked); build a
    /// temporary FTS5 index if it has none.
    pub fn open(path: &Path) -> anyhow::Result<Fts5Kb> {
        let info = kb_file::verify_vouched(path, &Deadline::none())?;
        let side_index = if info.has_fts {
            None
        } else {
            Some(build_side_index(path).context("building the full-text index of a pgEdge kb.db")?)
        };
        let conn = kb_file::open_read_only(path, &Deadline::none())?;
        if let Some(idx) = &side_index {
            conn.execute(
                "ATTACH DATABASE ?1 AS idx",
                [format!("file:{}?mode=ro", idx.display())],
            )?;
        }
        Ok(Fts5Kb {
            info,
            side_index,
            conn: Mutex::new(conn),
        })
    }

    pub fn info(&self) -> &KbInfo {
        &self.info
    }

    /// Whether the FTS5 index was built at open (a file without one).
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

    /// Rank chunks for `q`, as the previous engine did.
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
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("connection poisoned"))?;
        let conn = &*conn;
        let mut ranked = self.rank(conn, &terms.join(" AND "), &filters, top_n)?;
        let fill = |expr: String, ranked: &mut Vec<(i64, f64)>| -> anyhow::Result<()> {
            let seen: HashSet<i64> = ranked.iter().map(|(id, _)| *id).collect();
            let more = self.rank(conn, &expr, &filters, top_n)?;
            ranked.extend(more.into_iter().filter(|(id, _)| !seen.contains(id)));
            ranked.truncate(top_n);
            Ok(())
        };
        if ranked.len() < top_n && terms.len() > 1 {
            let present = self.present_terms(conn, &terms)?;
            if present.len() < terms.len() && !present.is_empty() {
                fill(present.join(" AND "), &mut ranked)?;
            }
            if ranked.len() < top_n && present.len() > 1 {
                fill(present.join(" OR "), &mut ranked)?;
            }
        }
        let mut stmt = conn.prepare_cached(HIT_ROW_SQL)?;
        let mut hits = Vec::with_capacity(ranked.len());
        for (id, score) in ranked {
            hits.push(stmt.query_row([id], |r| Hit::from_row(r, id, score))?);
        }
        Ok(hits)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::fixtures::{make_kb, row_titles};

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

    #[test]
    fn the_old_engine_ranks_as_before_with_or_without_its_index() {
        for with_fts in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("kb.db");
            make_kb(&p, with_fts);
            let kb = Fts5Kb::open(&p).unwrap();
            assert_eq!(kb.indexed_at_load(), !with_fts);
            // Only the Spock chunk has both words: AND first, then OR.
            let q = |text: &str, top_n| SearchQuery {
                query: text.into(),
                top_n: Some(top_n),
                ..Default::default()
            };
            let hits = kb.search(&q("vacuum spock", 3)).unwrap();
            assert_eq!(row_titles(&hits), ["Spock", "Maintenance"]);
            let hits = search_fts5(&p, &q("vacuum spock zyzzyva", 3)).unwrap();
            assert_eq!(row_titles(&hits), ["Spock", "Maintenance"]);
            let filtered = kb
                .search(&SearchQuery {
                    query: "vacuum".into(),
                    project_names: vec!["spock".into()],
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(row_titles(&filtered), ["Spock"]);
        }
    }
}
