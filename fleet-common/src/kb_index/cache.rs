//! Pack files named by the sha256 of the KB they index: `<sha256>.kbidx`.
//!
//! Searches read the index from such a file, mapped, never from SQLite. Two
//! directories hold them:
//!
//! - [`PUBLISHED_DIR`] beside the KB, written by `kb-init` and
//!   `kb-sync-sidecar` before they rename a new `kb.db` into place (they
//!   copy the stored index out of it, or build one for a pgEdge file, and
//!   open it to check it). A server only reads this directory.
//! - a server's own cache directory (optional), for a KB placed without the
//!   sync tools; without one the server keeps the pack in an unnamed
//!   temporary file.
//!
//! A pack is only ever written under a temporary name and renamed into
//! place, and checked (length, CRC) every time it is opened.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::build::{BuildOptions, build_pack};
use super::pack::{Checker, PackInfo};
use super::{Pack, invalid, stored};
use crate::deadline::Deadline;
use crate::kb_file::{self, KbInfo};
use crate::{Error, Result};

/// Directory beside a published KB where the sync tools put its pack.
pub const PUBLISHED_DIR: &str = ".kb-index";

/// Extension of pack files.
pub const EXTENSION: &str = "kbidx";

/// Where the index of a pack came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Copied out of the KB's `kb_search_index` table.
    Stored,
    /// Built from the KB's chunks (a pgEdge file, or an index of a newer
    /// format than this build reads).
    Built,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Stored => "stored in kb.db",
            Origin::Built => "built from the chunks",
        }
    }
}

/// `<sha256>.kbidx`.
pub fn file_name(sha256: &str) -> String {
    format!("{sha256}.{EXTENSION}")
}

/// The sync tools' pack directory for the KB at `kb_path`.
pub fn published_dir(kb_path: &Path) -> PathBuf {
    match kb_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(PUBLISHED_DIR),
        _ => PathBuf::from(PUBLISHED_DIR),
    }
}

/// Whether this build reads the index stored in a KB described by `info`.
pub fn stored_is_usable(info: &KbInfo) -> bool {
    info.stores_usable_index()
}

/// Write the pack of the KB at `kb` (described by `info`) into `out`, a
/// new empty file: copied out of the KB when it stores a usable index,
/// otherwise built from its chunks (tantivy's temporary files in
/// `work_dir`). The copy is checked as it streams. Reading the KB stops
/// once `deadline` passes ([`Error::Interrupted`], with the reason).
pub fn write_pack(
    kb: &Path,
    info: &KbInfo,
    work_dir: &Path,
    out: &mut File,
    deadline: &Deadline,
) -> Result<(Origin, PackInfo)> {
    let conn = kb_file::open_read_only(kb, deadline)?;
    if stored_is_usable(info) {
        let mut tee = Tee {
            file: out,
            checker: Checker::new(),
        };
        stored::copy_to(&conn, &mut tee).map_err(|e| deadline.explain(e))?;
        let info = tee.checker.finish()?;
        Ok((Origin::Stored, info))
    } else {
        let info = build_pack(&conn, "main.chunks", work_dir, &BuildOptions::fast(), out)
            .map_err(|e| deadline.explain(e))?;
        Ok((Origin::Built, info))
    }
}

/// Writes to a file and a [`Checker`] at once.
struct Tee<'a> {
    file: &'a mut File,
    checker: Checker,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.checker.write_all(buf)?;
        super::pack::write_paged(self.file, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// What [`prepare`] found or made.
#[derive(Debug)]
pub struct Prepared {
    pub path: PathBuf,
    /// `None`: a valid pack was there already.
    pub made: Option<Origin>,
}

/// Make sure `dir/<sha256>.kbidx` holds a good pack of the KB at `kb`
/// (whose content has that sha256 and `info`). A pack already there is
/// kept if it passes its check; otherwise one is written under a temporary
/// name in `dir`, opened with tantivy and checked (schema, document count
/// equal to the KB's chunks, one search), and renamed into place. Gives up
/// once `deadline` passes.
pub fn prepare(
    kb: &Path,
    sha256: &str,
    info: &KbInfo,
    dir: &Path,
    deadline: &Deadline,
) -> Result<Prepared> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!("{sha256:?} is not a sha256")));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(file_name(sha256));
    if let Ok(pack) = Pack::open_file(&path)
        && pack.docs() == info.chunk_count
    {
        return Ok(Prepared { path, made: None });
    }
    let mut tmp = crate::publish::temp_file_in(dir)?;
    let (origin, _) = write_pack(kb, info, dir, tmp.as_file_mut(), deadline)?;
    deadline.check()?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    let index = super::open(Pack::open(tmp.as_file(), tmp.path())?)?;
    if index.docs != info.chunk_count {
        return Err(invalid(format!(
            "indexes {} chunks, the KB holds {}",
            index.docs, info.chunk_count
        )));
    }
    drop(index);
    crate::publish::publish(tmp, &path, false)?;
    Ok(Prepared {
        path,
        made: Some(origin),
    })
}

/// What the sync tools run before they rename a verified KB into place at
/// `target`: make its pack in [`published_dir`] (`kb` is the verified
/// temporary file, `sha256` its content's), so that no server ever sees the
/// KB without it. An I/O failure is [`Error::Io`]; anything else means the
/// KB's index is unusable; [`Error::Interrupted`], that `deadline` passed.
pub fn prepare_for_publish(
    kb: &Path,
    sha256: &str,
    target: &Path,
    deadline: &Deadline,
) -> Result<Prepared> {
    let info = kb_file::verify_vouched(kb, deadline)?;
    prepare(kb, sha256, &info, &published_dir(target), deadline)
}

/// Remove what an interrupted run left in a pack directory: temporary
/// files and tantivy's temporary directories. Returns how many.
pub fn clean_temps(dir: &Path) -> Result<usize> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        _ => crate::publish::clean_stale_temps(dir),
    }
}

/// Remove the packs in `dir` other than those of `keep` (sha256s); returns
/// how many. A server that has a removed pack open keeps reading it (the
/// mapping holds the file until it is unmapped).
pub fn remove_others(dir: &Path, keep: &[&str]) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(sha) = name.strip_suffix(&format!(".{EXTENSION}")) else {
            continue;
        };
        if !keep.contains(&sha) {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }
    Ok(removed)
}
