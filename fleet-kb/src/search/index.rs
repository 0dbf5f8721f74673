//! Where a generation's search index comes from, first found wins
//! ([`IndexSource`]): the pack the sync tools made at publish time
//! (`.kb-index/<sha256>.kbidx` beside the KB), the server's own cache
//! directory, or one made now (copied out of `kb.db`, or built from the
//! chunks of a pgEdge file) into that cache directory or an unnamed
//! temporary file. The published file is never written.

use std::path::Path;

use anyhow::Context;
use fleet_common::kb_file::{self, KbInfo};
use fleet_common::kb_index::{self, Pack, SearchIndex, cache};

use super::OpenOptions;

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

/// Find or make the pack of the KB at `path` and open it.
pub(super) fn load_index(
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
        kb_index::stored::header(&kb_file::open_read_only(path, &opts.deadline)?)?
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
            match cache::prepare(path, sha, info, dir, &opts.deadline) {
                Err(e @ fleet_common::Error::Interrupted(_)) => return Err(e.into()),
                Err(_) => {}
                Ok(prepared) => {
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
    }
    let tmp_dir = std::env::temp_dir();
    match tempfile::tempfile_in(&tmp_dir) {
        Ok(mut file) => {
            let (origin, _) = cache::write_pack(path, info, &tmp_dir, &mut file, &opts.deadline)
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
            let conn = kb_file::open_read_only(path, &opts.deadline)?;
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
mod tests {
    use std::path::Path;

    use fleet_common::kb_file;
    use fleet_common::kb_index::cache;

    use crate::search::fixtures::{Layout, ROWS, check_search, make_kb_with};
    use crate::search::{IndexSource, Kb, OpenOptions};

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
            vectors: None,
            deadline: Default::default(),
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
        let prepared = cache::prepare(
            &p,
            &sha,
            &kb_file::verify(&p, &fleet_common::deadline::Deadline::none()).unwrap(),
            &published,
            &fleet_common::deadline::Deadline::none(),
        )
        .unwrap();
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
        let other_info =
            kb_file::verify(&other, &fleet_common::deadline::Deadline::none()).unwrap();
        let other_sha = fleet_common::sha256_file(&other).unwrap();
        let foreign = cache::prepare(
            &other,
            &other_sha,
            &other_info,
            dir.path(),
            &fleet_common::deadline::Deadline::none(),
        )
        .unwrap();
        std::fs::rename(&foreign.path, &prepared.path).unwrap();
        std::fs::remove_file(&pack).unwrap();
        let kb = Kb::open_with(&p, &opts).unwrap();
        assert_eq!(kb.index_source(), IndexSource::CopiedAtLoad);
        check_search(&kb);
    }
}
