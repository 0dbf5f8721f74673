//! Searching the knowledge base: one loaded generation of it ([`Kb`])
//! ranked for a query, and the products it holds.
//!
//! Layout: `types.rs` holds what a search asks and answers
//! ([`SearchQuery`], [`Hit`], [`Product`]); `open.rs` opens a generation
//! ([`Kb::open_with`], the one entry point: verify, index, connections);
//! `index.rs` finds or makes its search index ([`IndexSource`]); this file
//! runs a search ([`Kb::search`]), keeps what the next searches of the
//! generation reuse (ranking's working memory, the chunks a filter allows),
//! and lists products ([`Kb::products`]). Ranking is [`crate::rank`]; query
//! text handling is [`crate::query`].

mod index;
mod open;
mod types;

#[cfg(test)]
pub(crate) mod fixtures;

pub use index::IndexSource;
pub use open::{Kb, OpenOptions};
pub(crate) use types::HIT_ROW_SQL;
pub use types::{DEFAULT_TOP_N, Hit, MAX_HIT_TEXT_BYTES, MAX_TOP_N, Mode, Product, SearchQuery};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fuse::{self, Item};
use crate::rank::{self, Filters, Ranked};
use crate::vectors::Scored;

/// Counts a search in [`Kb::searching`] while it lives.
struct Busy<'a> {
    count: &'a AtomicUsize,
    /// No other search was running when this one started.
    alone: bool,
}

impl<'a> Busy<'a> {
    fn enter(count: &'a AtomicUsize) -> Busy<'a> {
        let before = count.fetch_add(1, Ordering::AcqRel);
        Busy {
            count,
            alone: before == 0,
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A [`rank::Scratch`] taken from [`Kb::scratch`] for one search, given
/// back when dropped (a search that failed leaves it reusable: every buffer
/// is reset before use).
struct Borrowed<'a> {
    kb: &'a Kb,
    scratch: Option<rank::Scratch>,
}

impl<'a> Borrowed<'a> {
    fn take(kb: &'a Kb) -> Borrowed<'a> {
        let scratch = kb
            .scratch
            .lock()
            .map(|mut pool| pool.pop())
            .unwrap_or_default()
            .unwrap_or_default();
        Borrowed {
            kb,
            scratch: Some(scratch),
        }
    }

    fn get(&mut self) -> &mut rank::Scratch {
        self.scratch.get_or_insert_with(rank::Scratch::default)
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let (Some(scratch), Ok(mut pool)) = (self.scratch.take(), self.kb.scratch.lock())
            && pool.len() < open::pool_size()
        {
            pool.push(scratch);
        }
    }
}

/// Filters whose [`rank::Allowed`] a generation keeps (the most recently
/// used): 125 KB each at 1,000,000 chunks.
const KEPT_FILTERS: usize = 8;

/// A filter as [`Kb::filters`] keys it: its products and versions, sorted.
type FilterKey = (Vec<String>, Vec<String>);

impl Kb {
    /// The chunks `filters` allow (`None`: no filters), from this
    /// generation's [`KEPT_FILTERS`] or made now and kept.
    fn allowed(&self, filters: &Filters<'_>) -> anyhow::Result<Option<Arc<rank::Allowed>>> {
        if filters.project_names.is_empty() && filters.project_versions.is_empty() {
            return Ok(None);
        }
        let sorted = |v: &[&str]| {
            let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            v.sort();
            v.dedup();
            v
        };
        let key: FilterKey = (
            sorted(&filters.project_names),
            sorted(&filters.project_versions),
        );
        if let Ok(mut kept) = self.filters.lock()
            && let Some(i) = kept.iter().position(|(k, _)| *k == key)
        {
            let entry = kept.remove(i);
            let allowed = entry.1.clone();
            kept.push(entry);
            return Ok(Some(allowed));
        }
        let Some(allowed) = rank::Allowed::of(&self.index, filters)? else {
            return Ok(None);
        };
        let allowed = Arc::new(allowed);
        if let Ok(mut kept) = self.filters.lock() {
            if kept.len() >= KEPT_FILTERS {
                kept.remove(0);
            }
            kept.push((key, allowed.clone()));
        }
        Ok(Some(allowed))
    }

    /// The mode a search of `q` runs in: the one it asks for, if this
    /// generation has vectors and `q` carries one of their dimension;
    /// otherwise [`Mode::Keyword`].
    pub fn mode_for(&self, q: &SearchQuery) -> Mode {
        match (&self.vectors, &q.vector) {
            (Some(v), Some(qv)) if qv.len() == v.dimensions() => q.mode,
            _ => Mode::Keyword,
        }
    }

    /// Rank chunks for `q` in [`Kb::mode_for`]'s mode (keywords:
    /// [`crate::rank`]; vectors: [`crate::vectors`]; both:
    /// [`crate::fuse`]), then read the winners' rows. Blocking: call from a
    /// blocking thread. Any query text is accepted; one without a usable
    /// word finds nothing by keywords.
    pub fn search(&self, q: &SearchQuery) -> anyhow::Result<Vec<Hit>> {
        let top_n = q.top_n.unwrap_or(DEFAULT_TOP_N).clamp(1, MAX_TOP_N);
        let mode = self.mode_for(q);
        let words = crate::query::words(&q.query);
        fn non_empty(v: &[String]) -> Vec<&str> {
            v.iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect()
        }
        let filters = Filters {
            project_names: non_empty(&q.project_names),
            project_versions: non_empty(&q.project_versions),
        };
        // Only a search with the server to itself spreads its vector scan
        // over the cores.
        let _busy = Busy::enter(&self.searching);
        let parallel = _busy.alone && fleet_common::cores() > 1;
        let keyword = |k: usize| -> anyhow::Result<Vec<Ranked>> {
            if words.is_empty() {
                return Ok(Vec::new());
            }
            let allowed = self.allowed(&filters)?;
            let mut scratch = Borrowed::take(self);
            rank::rank(&self.index, &words, allowed.as_deref(), k, scratch.get())
        };
        let items = |found: Vec<Scored>| -> Vec<Item> {
            found
                .into_iter()
                .map(|s| Item {
                    chunk_id: s.chunk_id,
                    score: s.score,
                    file: u64::from(s.file),
                })
                .collect()
        };
        let semantic = |k: usize, parallel: bool| -> anyhow::Result<Vec<Item>> {
            let (Some(v), Some(qv)) = (&self.vectors, &q.vector) else {
                return Ok(Vec::new());
            };
            let allowed = v.allowed(&filters.project_names, &filters.project_versions);
            Ok(items(v.search_with(qv, k, allowed.as_deref(), parallel)?))
        };
        let ranked = catch_unwind(AssertUnwindSafe(|| -> anyhow::Result<Vec<Ranked>> {
            let items = match mode {
                Mode::Keyword => return keyword(top_n),
                Mode::Semantic => {
                    let found = semantic(top_n.max(fuse::DEPTH), parallel)?;
                    fuse::diversify(&fuse::by_page(&found), top_n)
                }
                Mode::Hybrid => {
                    // With the server to itself, the vector scan runs beside
                    // the keyword ranking, and this thread joins the scan
                    // when the ranking is done. Never fewer chunks than
                    // asked for.
                    let (kw_depth, sem_depth) =
                        (fuse::KEYWORD_DEPTH.max(top_n), fuse::DEPTH.max(top_n));
                    let (kw, sem) = match (&self.vectors, &q.vector) {
                        (Some(v), Some(qv)) => {
                            let allowed =
                                v.allowed(&filters.project_names, &filters.project_versions);
                            let (sem, kw) = v.search_beside(
                                qv,
                                sem_depth,
                                allowed.as_deref(),
                                parallel,
                                || keyword(kw_depth),
                            );
                            (kw, sem.map(items))
                        }
                        _ => (keyword(kw_depth), Ok(Vec::new())),
                    };
                    let kw: Vec<Item> = kw?
                        .into_iter()
                        .map(|r| Item {
                            chunk_id: r.chunk_id,
                            score: r.score,
                            file: self.file_key(r.chunk_id),
                        })
                        .collect();
                    let fused = fuse::fuse_pages(&kw, &sem?);
                    fuse::diversify(&fused, top_n)
                }
            };
            Ok(items
                .into_iter()
                .map(|i| Ranked {
                    chunk_id: i.chunk_id,
                    score: i.score,
                })
                .collect())
        }))
        .map_err(|_| anyhow::anyhow!("the search engine failed on this query"))??;
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(HIT_ROW_SQL)?;
            let mut hits = Vec::with_capacity(ranked.len());
            for r in ranked {
                let hit = stmt.query_row([r.chunk_id], |row| {
                    Hit::from_row(row, r.chunk_id, f64::from(r.score))
                });
                match hit {
                    Ok(hit) => hits.push(hit),
                    Err(rusqlite::Error::QueryReturnedNoRows) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(hits)
        })
    }

    /// A key equal for chunks of one source file, as far as the vectors
    /// know files; a chunk without a vector is a file of its own.
    fn file_key(&self, chunk_id: i64) -> u64 {
        match self.vectors.as_ref().and_then(|v| v.file_of(chunk_id)) {
            Some(f) => u64::from(f),
            None => (1 << 40) + chunk_id as u64,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::fixtures::{Layout, ROWS, check_search, make_kb_with, q, row_titles};

    #[test]
    fn searches_our_kb_with_its_stored_index() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.db");
        make_kb_with(&p, Layout::Ours, &ROWS);
        let kb = Kb::open(&p).unwrap();
        assert!(!kb.indexed_at_load());
        assert_eq!(kb.index_source(), IndexSource::CopiedAtLoad);
        check_search(&kb);
    }

    #[test]
    fn indexes_a_pgedge_kb_at_load_without_writing_beside_it() {
        for layout in [Layout::PgEdge, Layout::FtsOnly] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("kb.db");
            make_kb_with(&p, layout, &ROWS);
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
    }

    #[test]
    fn chunks_holding_more_terms_rank_first_and_absent_words_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.db");
        make_kb_with(&p, Layout::Ours, &ROWS);
        let kb = Kb::open(&p).unwrap();
        // Only the Spock chunk has both words; Maintenance has "vacuum" in
        // its section heading and body.
        let top = |text: &str, n| {
            kb.search(&SearchQuery {
                top_n: Some(n),
                ..q(text)
            })
            .unwrap()
        };
        assert_eq!(
            row_titles(&top("vacuum spock", 3)),
            ["Spock", "Maintenance"]
        );
        assert_eq!(row_titles(&top("vacuum spock", 1)), ["Spock"]);
        // A word no chunk has does not change the ranking.
        let with_absent = top("vacuum spock zyzzyva", 3);
        assert_eq!(row_titles(&with_absent), ["Spock", "Maintenance"]);
        assert_eq!(with_absent, top("vacuum spock", 3));
        assert!(top("zyzzyva", 3).is_empty());
    }

    #[test]
    fn title_and_section_matches_outrank_body_matches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.db");
        let filler = "lorem ipsum dolor sit amet consectetur adipiscing elit";
        let rows = [
            [
                &*format!("{filler} checkpoint"),
                "Body",
                "Other",
                "p",
                "1",
                "a.md",
            ],
            [filler, "Checkpoint", "Other", "p", "1", "b.md"],
            [filler, "Other", "Checkpoint", "p", "1", "c.md"],
        ];
        let rows: Vec<[&str; 6]> = rows.to_vec();
        make_kb_with(&p, Layout::Ours, &rows);
        let kb = Kb::open(&p).unwrap();
        let hits = kb.search(&q("checkpoints")).unwrap();
        assert_eq!(row_titles(&hits), ["Checkpoint", "Other", "Body"]);
    }

    #[test]
    fn at_most_two_chunks_per_file_while_other_files_match() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.db");
        // Six strong chunks in big.md, weaker ones in three other files.
        let mut rows: Vec<[String; 6]> = (0..6)
            .map(|i| {
                [
                    format!("autovacuum autovacuum autovacuum part {i}"),
                    "Autovacuum".into(),
                    format!("Part {i}"),
                    "p".into(),
                    "1".into(),
                    "big.md".into(),
                ]
            })
            .collect();
        for f in ["x.md", "y.md", "z.md"] {
            rows.push([
                format!("{f} mentions autovacuum once among many other words here"),
                "Misc".into(),
                "Misc".into(),
                "p".into(),
                "1".into(),
                f.into(),
            ]);
        }
        let refs: Vec<[&str; 6]> = rows
            .iter()
            .map(|r| [&*r[0], &*r[1], &*r[2], &*r[3], &*r[4], &*r[5]])
            .collect();
        make_kb_with(&p, Layout::Ours, &refs);
        let kb = Kb::open(&p).unwrap();
        let files = |n| -> Vec<String> {
            kb.search(&SearchQuery {
                top_n: Some(n),
                ..q("autovacuum")
            })
            .unwrap()
            .into_iter()
            .map(|h| h.file_path)
            .collect()
        };
        // Two of big.md (its best), then the other files.
        let five = files(5);
        assert_eq!(&five[..2], ["big.md", "big.md"]);
        let mut rest = five[2..].to_vec();
        rest.sort();
        assert_eq!(rest, ["x.md", "y.md", "z.md"]);
        // Asked for more than the other files can give: big.md fills in.
        let nine = files(9);
        assert_eq!(nine.len(), 9);
        assert_eq!(nine.iter().filter(|f| *f == "big.md").count(), 6);
        assert!(nine[..5].iter().filter(|f| *f == "big.md").count() == 2);
    }
}
