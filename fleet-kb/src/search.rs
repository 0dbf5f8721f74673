//! One loaded generation of the knowledge base and searching it.
//!
//! A [`Kb`] is immutable: `kb.db` opened read-only and verified, its search
//! index opened from a mapped pack file, and then shared by every search
//! until a newer generation replaces it. Everything is opened at load (the
//! SQLite connections and the pack), so a generation keeps reading its own
//! files even if newer ones are renamed over the paths a moment later; a
//! search borrows a connection (waiting if all are busy) only to read its
//! hits' rows. The last search holding a generation closes it: connections
//! closed, pack unmapped.
//!
//! Where the index comes from, first found wins ([`IndexSource`]): the pack
//! the sync tools made at publish time (`.kb-index/<sha256>.kbidx` beside
//! the KB), the server's own cache directory, or one made now (copied out
//! of `kb.db`, or built from the chunks of a pgEdge file) into that cache
//! directory or an unnamed temporary file. The published file is never
//! written. Ranking is [`crate::rank`]; query text handling is
//! [`crate::query`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use anyhow::Context;
use fleet_common::kb_file::{self, KbInfo};
use fleet_common::kb_index::{self, Pack, SearchIndex, cache};
use rusqlite::Connection;
use serde::Serialize;

use crate::rank::{self, Filters};

/// Results per search when the caller does not say.
pub const DEFAULT_TOP_N: usize = 5;
/// The most results one search returns.
pub const MAX_TOP_N: usize = 20;
/// Connections per generation: enough to keep every core reading rows.
fn pool_size() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (n.get() * 2).clamp(2, 8))
}

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

/// How to load a KB.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The KB's sha256, when the caller knows it (from its sync record or by
    /// hashing it): it names the KB's pack in the index caches.
    pub sha256: Option<String>,
    /// A sync record vouches that this exact content was verified before it
    /// was published: check only the header and schema
    /// ([`kb_file::verify_vouched`]), not every page.
    pub vouched: bool,
    /// A directory this process may write packs to (`<sha256>.kbidx`),
    /// reused across restarts; without one, a pack that has to be made goes
    /// into an unnamed temporary file.
    pub index_cache_dir: Option<PathBuf>,
}

/// Where a generation's index was found or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexSource {
    /// The pack `kb-init` or the sidecar wrote beside the KB.
    Published,
    /// A pack in the server's cache directory from an earlier load.
    Cached,
    /// Copied out of `kb.db` at this load.
    CopiedAtLoad,
    /// Built from the chunks at this load (a file without a usable index).
    BuiltAtLoad,
    /// Copied out of `kb.db` into memory (no writable temporary directory).
    InMemory,
}

impl IndexSource {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexSource::Published => "index from the sync tools' pack",
            IndexSource::Cached => "index from the cache",
            IndexSource::CopiedAtLoad => "index copied from kb.db",
            IndexSource::BuiltAtLoad => "index built at load",
            IndexSource::InMemory => "index copied into memory",
        }
    }
}

/// One loaded generation of the knowledge base.
pub struct Kb {
    path: PathBuf,
    info: KbInfo,
    index: SearchIndex,
    source: IndexSource,
    pool: Mutex<Vec<Connection>>,
    returned: Condvar,
    products: OnceLock<Vec<Product>>,
    /// Searches running now.
    searching: AtomicUsize,
}

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

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl std::fmt::Debug for Kb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kb")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("source", &self.source)
            .finish()
    }
}

impl Kb {
    /// Verify the file at `path` completely and load it. Blocking.
    pub fn open(path: &Path) -> anyhow::Result<Kb> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Load a file whose content a sync state record vouches for: its pages
    /// were checked before it was published, so only its schema is checked
    /// here ([`kb_file::verify_vouched`]). Blocking.
    pub fn open_vouched(path: &Path) -> anyhow::Result<Kb> {
        Self::open_with(
            path,
            &OpenOptions {
                sha256: fleet_common::published::vouched_sha256(path),
                vouched: true,
                index_cache_dir: None,
            },
        )
    }

    /// Verify (fully, or the schema only if `opts.vouched`) and load. Blocking.
    ///
    /// The caller is responsible for noticing a file replaced while this
    /// runs (compare the file's identity before and after): every
    /// connection and the index are opened here, and none is ever opened by
    /// path again.
    pub fn open_with(path: &Path, opts: &OpenOptions) -> anyhow::Result<Kb> {
        // The schema first (milliseconds); the full check of every page, when
        // asked for, runs beside the index's copy or build, and its verdict
        // decides: a file that fails it is never loaded.
        let info = kb_file::verify_vouched(path)?;
        if opts.vouched {
            return Self::load(path, info, opts);
        }
        std::thread::scope(|scope| {
            let check = scope.spawn(|| kb_file::verify(path));
            let kb = Self::load(path, info, opts);
            let checked = check
                .join()
                .map_err(|_| anyhow::anyhow!("the check of {} panicked", path.display()))?;
            let checked = checked?;
            let kb = kb?;
            anyhow::ensure!(
                checked == kb.info,
                "{} changed while it was loaded",
                path.display()
            );
            Ok(kb)
        })
    }

    /// Load a file already verified by [`kb_file::verify`]. Blocking.
    pub fn open_verified(path: &Path, info: KbInfo) -> anyhow::Result<Kb> {
        Self::load(path, info, &OpenOptions::default())
    }

    fn load(path: &Path, info: KbInfo, opts: &OpenOptions) -> anyhow::Result<Kb> {
        let (index, source) = load_index(path, &info, opts)?;
        let mut conns = Vec::with_capacity(pool_size());
        for _ in 0..pool_size() {
            conns.push(kb_file::open_read_only(path)?);
        }
        Ok(Kb {
            path: path.to_path_buf(),
            info,
            index,
            source,
            pool: Mutex::new(conns),
            returned: Condvar::new(),
            products: OnceLock::new(),
            searching: AtomicUsize::new(0),
        })
    }

    pub fn info(&self) -> &KbInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where this generation's index came from.
    pub fn index_source(&self) -> IndexSource {
        self.source
    }

    /// Whether the search index was built from the chunks at load (a
    /// pgEdge file that no sync tool indexed).
    pub fn indexed_at_load(&self) -> bool {
        self.source == IndexSource::BuiltAtLoad
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

    /// Rank chunks for `q` ([`crate::rank`]), then read the winners' rows.
    /// Blocking: call from a blocking thread. Any query text is accepted;
    /// one without a usable word finds nothing.
    pub fn search(&self, q: &SearchQuery) -> anyhow::Result<Vec<Hit>> {
        let top_n = q.top_n.unwrap_or(DEFAULT_TOP_N).clamp(1, MAX_TOP_N);
        let words = crate::query::words(&q.query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
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
        // Only a search with the server to itself spreads over the cores.
        let _busy = Busy::enter(&self.searching);
        let parallel = _busy.alone && cores() > 1;
        let ranked = catch_unwind(AssertUnwindSafe(|| {
            rank::rank(&self.index, &words, &filters, top_n, parallel)
        }))
        .map_err(|_| anyhow::anyhow!("the search engine failed on this query"))??;
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT coalesce(title,''), coalesce(section,''), project_name, project_version, \
                 coalesce(file_path,''), text FROM main.chunks WHERE id = ?1",
            )?;
            let mut hits = Vec::with_capacity(ranked.len());
            for r in ranked {
                let hit = stmt.query_row([r.chunk_id], |row| {
                    Ok(Hit {
                        id: r.chunk_id,
                        title: row.get(0)?,
                        section: row.get(1)?,
                        project_name: row.get(2)?,
                        project_version: row.get(3)?,
                        file_path: row.get(4)?,
                        text: row.get(5)?,
                        score: f64::from(r.score),
                    })
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

/// Find or make the pack of the KB at `path` and open it.
fn load_index(
    path: &Path,
    info: &KbInfo,
    opts: &OpenOptions,
) -> anyhow::Result<(SearchIndex, IndexSource)> {
    let open_checked = |pack: Pack| -> anyhow::Result<SearchIndex> {
        let index = kb_index::open(pack)?;
        anyhow::ensure!(
            index.docs == info.chunk_count,
            "the search index holds {} chunks, the KB {}",
            index.docs,
            info.chunk_count
        );
        Ok(index)
    };
    // A pack file found by name must be a copy of the KB's own stored index
    // when it has one (a sync record naming the wrong sha256 must not pair
    // a KB with another KB's index).
    let stored_header = if cache::stored_is_usable(info) {
        kb_index::stored::header(&kb_file::open_read_only(path)?)?
    } else {
        None
    };
    let belongs = |pack: &Pack| stored_header.as_deref().is_none_or(|h| h == pack.header());
    if let Some(sha) = &opts.sha256 {
        let name = cache::file_name(sha);
        let mut found = vec![(cache::published_dir(path), IndexSource::Published)];
        if let Some(dir) = &opts.index_cache_dir {
            found.push((dir.clone(), IndexSource::Cached));
        }
        for (dir, source) in found {
            let pack_path = dir.join(&name);
            if !pack_path.exists() {
                continue;
            }
            // A bad or foreign pack is not the KB's fault: make one below.
            if let Ok(pack) = Pack::open_file(&pack_path)
                && belongs(&pack)
                && let Ok(index) = open_checked(pack)
            {
                return Ok((index, source));
            }
        }
        if let Some(dir) = &opts.index_cache_dir {
            // An unwritable cache directory is not fatal either: the
            // unnamed temporary file below does the same job.
            if let Ok(prepared) = cache::prepare(path, sha, info, dir) {
                let index = open_checked(Pack::open_file(&prepared.path)?)?;
                let _ = cache::remove_others(dir, &[sha.as_str()]);
                let source = match prepared.made {
                    None => IndexSource::Cached,
                    Some(cache::Origin::Stored) => IndexSource::CopiedAtLoad,
                    Some(cache::Origin::Built) => IndexSource::BuiltAtLoad,
                };
                return Ok((index, source));
            }
        }
    }
    let tmp_dir = std::env::temp_dir();
    match tempfile::tempfile_in(&tmp_dir) {
        Ok(mut file) => {
            let (origin, _) = cache::write_pack(path, info, &tmp_dir, &mut file)
                .context("making the search index")?;
            let index = open_checked(Pack::open(&file, Path::new("temporary index file"))?)?;
            let source = match origin {
                cache::Origin::Stored => IndexSource::CopiedAtLoad,
                cache::Origin::Built => IndexSource::BuiltAtLoad,
            };
            Ok((index, source))
        }
        Err(e) if cache::stored_is_usable(info) => {
            let _ = e;
            let conn = kb_file::open_read_only(path)?;
            let mut bytes = Vec::new();
            kb_index::stored::copy_to(&conn, &mut bytes)?;
            Ok((open_checked(Pack::from_vec(bytes)?)?, IndexSource::InMemory))
        }
        Err(e) => Err(anyhow::anyhow!(
            "building the search index needs a writable temporary directory ({}): {e}",
            tmp_dir.display()
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What a test KB carries besides pgEdge's tables.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(crate) enum Layout {
        /// FTS5 and the search index, as `kb build` writes.
        Ours,
        /// Neither.
        PgEdge,
        /// FTS5 only (a KB of the previous release).
        FtsOnly,
    }

    pub(crate) fn make_kb_with(path: &Path, layout: Layout, rows: &[[&str; 6]]) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(kb_file::CREATE_SCHEMA).unwrap();
        for [text, title, section, p, v, file] in rows {
            c.execute(
                "INSERT INTO chunks(text,title,section,project_name,project_version,file_path) VALUES (?1,?2,?3,?4,?5,?6)",
                [text, title, section, p, v, file],
            )
            .unwrap();
        }
        if layout != Layout::PgEdge {
            c.execute_batch(&kb_file::create_fts_sql("main", "chunks"))
                .unwrap();
            c.execute_batch("INSERT INTO chunks_fts(chunks_fts) VALUES('rebuild')")
                .unwrap();
        }
        if layout == Layout::Ours {
            let dir = path.parent().unwrap();
            kb_index::build_and_store(&c, dir, &kb_index::build::BuildOptions::deterministic())
                .unwrap();
        }
    }

    pub(crate) const ROWS: [[&str; 6]; 4] = [
        [
            "Routine vacuuming of tables reclaims storage",
            "Maintenance",
            "Vacuum",
            "postgres",
            "17",
            "doc.md",
        ],
        [
            "Indexes speed up lookups on large tables",
            "Indexes",
            "B-tree",
            "postgres",
            "16",
            "doc.md",
        ],
        [
            "The replication slot keeps WAL for a standby",
            "Replication",
            "Slots",
            "postgres",
            "17",
            "doc.md",
        ],
        [
            "Vacuum settings in the spock extension",
            "Spock",
            "Config",
            "spock",
            "5",
            "doc.md",
        ],
    ];

    /// The four sample chunks with FTS5 (`with_fts`) or none of our additions.
    pub(crate) fn make_kb(path: &Path, with_fts: bool) {
        let layout = if with_fts {
            Layout::FtsOnly
        } else {
            Layout::PgEdge
        };
        make_kb_with(path, layout, &ROWS);
    }

    pub(crate) fn row_titles(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.title.as_str()).collect()
    }

    fn q(text: &str) -> SearchQuery {
        SearchQuery {
            query: text.into(),
            ..Default::default()
        }
    }

    fn check_search(kb: &Kb) {
        let hits = kb.search(&q("how to vacuum")).unwrap();
        assert_eq!(hits.len(), 2);
        assert!(
            hits.iter()
                .all(|h| h.text.to_lowercase().contains("vacuum"))
        );
        assert!(hits[0].score >= hits[1].score && hits[1].score > 0.0);
        let filtered = kb
            .search(&SearchQuery {
                project_names: vec!["spock".into()],
                ..q("vacuum")
            })
            .unwrap();
        assert_eq!(row_titles(&filtered), ["Spock"]);
        let by_version = kb
            .search(&SearchQuery {
                project_versions: vec!["16".into()],
                ..q("tables")
            })
            .unwrap();
        assert_eq!(row_titles(&by_version), ["Indexes"]);
        let none = kb
            .search(&SearchQuery {
                project_names: vec!["spock".into()],
                project_versions: vec!["17".into()],
                ..q("vacuum")
            })
            .unwrap();
        assert!(none.is_empty());
        let one = kb
            .search(&SearchQuery {
                top_n: Some(1),
                ..q("postgres vacuum standby indexes")
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

    #[test]
    fn a_generation_keeps_reading_its_own_file_after_a_rename_over_it() {
        for layout in [Layout::Ours, Layout::PgEdge] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("kb.db");
            make_kb_with(&p, layout, &ROWS);
            let kb = std::sync::Arc::new(Kb::open(&p).unwrap());
            // Publish a different KB over the path, as the sidecar does.
            let next = dir.path().join("next.db");
            make_kb_with(
                &next,
                layout,
                &[["zebra crossing", "Z", "", "z", "1", "z.md"]],
            );
            std::fs::rename(&next, &p).unwrap();
            // More parallel searches than pooled connections: all must see
            // the old generation, none may open the new file.
            let threads: Vec<_> = (0..4 * pool_size())
                .map(|_| {
                    let kb = kb.clone();
                    std::thread::spawn(move || {
                        (
                            kb.search(&q("vacuum")).unwrap().len(),
                            kb.search(&q("zebra")).unwrap().len(),
                        )
                    })
                })
                .collect();
            for t in threads {
                assert_eq!(t.join().unwrap(), (2, 0), "{layout:?}");
            }
            assert_eq!(Kb::open(&p).unwrap().search(&q("zebra")).unwrap().len(), 1);
        }
    }

    #[test]
    fn a_corrupt_stored_index_is_refused_at_load_vouched_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.db");
        make_kb_with(&p, Layout::Ours, &ROWS);
        let c = Connection::open(&p).unwrap();
        let table = kb_index::stored::TABLE;
        let mut part: Vec<u8> = c
            .query_row(
                &format!("SELECT data FROM {table} WHERE part = 0"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let at = part.len() - 10;
        part[at] ^= 1;
        c.execute(
            &format!("UPDATE {table} SET data = ?1 WHERE part = 0"),
            [part],
        )
        .unwrap();
        drop(c);
        let err = format!("{:#}", Kb::open(&p).unwrap_err());
        assert!(
            err.contains("search index") && err.contains("checksum"),
            "{err}"
        );
        // Vouched for (only the schema checked), the copy of the index is
        // still checked as it streams out of the KB.
        let err = format!(
            "{:#}",
            Kb::open_with(
                &p,
                &OpenOptions {
                    vouched: true,
                    ..Default::default()
                }
            )
            .unwrap_err()
        );
        assert!(err.contains("checksum"), "{err}");
    }

    fn mapped(path: &Path) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.contains(&*path.to_string_lossy())
    }

    #[test]
    fn packs_are_found_by_sha_reused_and_freed_with_their_generation() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cache_dir = dir.path().join("cache");
        std::fs::create_dir(&data).unwrap();
        let p = data.join("kb.db");
        make_kb_with(&p, Layout::Ours, &ROWS);
        let sha = fleet_common::sha256_file(&p).unwrap();
        let opts = OpenOptions {
            sha256: Some(sha.clone()),
            vouched: false,
            index_cache_dir: Some(cache_dir.clone()),
        };
        let pack = cache_dir.join(cache::file_name(&sha));
        // Made once into the cache directory, then reused from it.
        std::fs::create_dir(&cache_dir).unwrap();
        std::fs::write(cache_dir.join(cache::file_name(&"0".repeat(64))), b"stale").unwrap();
        let kb = Kb::open_with(&p, &opts).unwrap();
        assert_eq!(kb.index_source(), IndexSource::CopiedAtLoad);
        assert!(mapped(&pack));
        let names: Vec<_> = std::fs::read_dir(&cache_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            [std::ffi::OsString::from(cache::file_name(&sha))],
            "stale packs removed"
        );
        let again = Kb::open_with(&p, &opts).unwrap();
        assert_eq!(again.index_source(), IndexSource::Cached);
        check_search(&again);
        // A hot swap drops the old generation: its pack is unmapped.
        drop(kb);
        drop(again);
        assert!(!mapped(&pack), "the old generation's pack is still mapped");

        // A pack the sync tools published beside the KB comes first; a
        // corrupt one is passed over for a good one.
        let published = cache::published_dir(&p);
        let prepared = cache::prepare(&p, &sha, &kb_file::verify(&p).unwrap(), &published).unwrap();
        assert!(prepared.made.is_some());
        let kb = Kb::open_with(&p, &opts).unwrap();
        assert_eq!(kb.index_source(), IndexSource::Published);
        drop(kb);
        let mut bytes = std::fs::read(&prepared.path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 1;
        std::fs::write(&prepared.path, &bytes).unwrap();
        let kb = Kb::open_with(&p, &opts).unwrap();
        assert_eq!(kb.index_source(), IndexSource::Cached);
        check_search(&kb);
        drop(kb);

        // Another KB's pack under this KB's name (a sync record that names
        // the wrong sha256) is not used.
        let other = dir.path().join("other.db");
        // Same number of chunks, other words: only the pack's header tells.
        let mut rows = ROWS;
        rows[0][0] = "Zebra crossings and other stripes";
        make_kb_with(&other, Layout::Ours, &rows);
        let other_info = kb_file::verify(&other).unwrap();
        let other_sha = fleet_common::sha256_file(&other).unwrap();
        let foreign = cache::prepare(&other, &other_sha, &other_info, dir.path()).unwrap();
        std::fs::rename(&foreign.path, &prepared.path).unwrap();
        std::fs::remove_file(&pack).unwrap();
        let kb = Kb::open_with(&p, &opts).unwrap();
        assert_eq!(kb.index_source(), IndexSource::CopiedAtLoad);
        check_search(&kb);
    }
}
