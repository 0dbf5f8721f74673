//! Opening a generation of the knowledge base: the one place that does it.
//! [`Kb::open_with`] verifies `kb.db` (the schema at once; every page too,
//! beside the index's copy or build, unless a sync record vouches for the
//! file), finds or makes its search index ([`super::index`]) and opens the
//! pool of read-only connections. The file checks themselves are
//! [`fleet_common::kb_file`]'s (`verify`, `verify_vouched`,
//! `open_read_only`), because the sync tools run them before publishing.
//!
//! A [`Kb`] is immutable: everything is opened here, so a generation keeps
//! reading its own files even if newer ones are renamed over the paths a
//! moment later; a search borrows a connection (waiting if all are busy)
//! only to read its hits' rows. The last search holding a generation closes
//! it: connections closed, pack unmapped.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Condvar, Mutex, OnceLock};

use fleet_common::deadline::Deadline;
use fleet_common::kb_file::{self, KbInfo};
use fleet_common::kb_index::SearchIndex;
use rusqlite::Connection;

use super::Product;
use super::index::{IndexSource, load_index};
use crate::vectors::{Loaded, VectorIndex, VectorSource};

/// Connections per generation: enough to keep every core reading rows.
pub(super) fn pool_size() -> usize {
    (fleet_common::cores() * 2).clamp(2, 8)
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
    /// Where the vectors of semantic and hybrid search come from, and what
    /// they must match; `None`: keyword search only. Vectors of another
    /// model or dimension make the load fail; a KB without any loads for
    /// keyword search ([`Kb::no_vectors`] says why).
    pub vectors: Option<VectorSource>,
    /// When the load gives up: every statement that checks or loads the
    /// file stops once it passes ([`fleet_common::deadline`]).
    pub deadline: Deadline,
}

/// One loaded generation of the knowledge base.
pub struct Kb {
    path: PathBuf,
    info: KbInfo,
    pub(super) index: SearchIndex,
    source: IndexSource,
    pool: Mutex<Vec<Connection>>,
    returned: Condvar,
    /// The product list, read once.
    pub(super) products: OnceLock<Vec<Product>>,
    /// Searches running now.
    pub(super) searching: AtomicUsize,
    /// Working memory of finished searches, for the next ones: at most
    /// [`pool_size`] kept.
    pub(super) scratch: Mutex<Vec<crate::rank::Scratch>>,
    /// The chunks recent filters allow ([`super::KEPT_FILTERS`] at most).
    pub(super) filters: Mutex<Vec<(super::FilterKey, std::sync::Arc<crate::rank::Allowed>)>>,
    /// The chunks' vectors, when asked for and present.
    pub(super) vectors: Option<VectorIndex>,
    /// Why there are none, when they were asked for.
    no_vectors: Option<String>,
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
    /// Verify the file at `path` completely and load it: [`Kb::open_with`]
    /// with the default options. Blocking.
    pub fn open(path: &Path) -> anyhow::Result<Kb> {
        Self::open_with(path, &OpenOptions::default())
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
        let info = kb_file::verify_vouched(path, &opts.deadline)?;
        if opts.vouched {
            return Self::load(path, info, opts);
        }
        std::thread::scope(|scope| {
            let check = scope.spawn(|| kb_file::verify(path, &opts.deadline));
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

    fn load(path: &Path, info: KbInfo, opts: &OpenOptions) -> anyhow::Result<Kb> {
        // The searches' connections: each statement of a search is
        // bounded (rows by id, filters over the chunks), and searches go on
        // while a server drains after SIGTERM, so no deadline at all.
        let mut conns = Vec::with_capacity(pool_size());
        for _ in 0..pool_size() {
            conns.push(kb_file::open_read_only(path, &Deadline::never())?);
        }
        // The vectors load beside the index (which a pgEdge KB builds now).
        let ((index, source), vectors) = std::thread::scope(|scope| {
            let vectors = opts.vectors.as_ref().map(|v| {
                let dir = opts.index_cache_dir.as_deref();
                let deadline = &opts.deadline;
                scope.spawn(move || {
                    VectorIndex::load(&kb_file::open_read_only(path, deadline)?, v, dir).map_err(
                        |e| match deadline.passed() {
                            Some(why) => anyhow::anyhow!("gave up: {why}"),
                            None => e,
                        },
                    )
                })
            });
            let index = load_index(path, &info, opts);
            let vectors = match vectors {
                None => Ok(None),
                Some(handle) => handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("loading the vectors panicked"))
                    .and_then(|r| r.map(Some)),
            };
            anyhow::Ok((index?, vectors?))
        })?;
        let (vectors, no_vectors) = match vectors {
            None => (None, None),
            Some(Loaded::Index(v)) => (Some(v), None),
            Some(Loaded::NoVectors(why)) => (None, Some(why)),
        };
        Ok(Kb {
            path: path.to_path_buf(),
            info,
            index,
            source,
            pool: Mutex::new(conns),
            returned: Condvar::new(),
            products: OnceLock::new(),
            searching: AtomicUsize::new(0),
            scratch: Mutex::new(Vec::new()),
            filters: Mutex::new(Vec::new()),
            vectors,
            no_vectors,
        })
    }

    /// The chunks' vectors, if this generation has them.
    pub fn vectors(&self) -> Option<&VectorIndex> {
        self.vectors.as_ref()
    }

    /// Why this generation has no vectors although they were asked for.
    pub fn no_vectors(&self) -> Option<&str> {
        self.no_vectors.as_deref()
    }

    /// What the file's check found (chunk count, FTS5, index version, meta).
    pub fn info(&self) -> &KbInfo {
        &self.info
    }

    /// The path this generation was opened from.
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
    pub(super) fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
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
}

#[cfg(test)]
mod tests {
    use fleet_common::kb_index;
    use rusqlite::Connection;

    use super::*;
    use crate::search::fixtures::{Layout, ROWS, make_kb_with, q};

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
}
