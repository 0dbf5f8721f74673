//! Atomic publication of a file into a directory that others read.
//!
//! A file is written to a temporary name in the destination directory, synced,
//! renamed over its target and the directory synced, so a reader sees either
//! the old file or the new one, never a part of either. Temporary names share
//! [`TEMP_PREFIX`], so the leftovers of a killed run can be found and removed.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::{Error, Result};

/// Prefix of every temporary file this crate creates.
pub const TEMP_PREFIX: &str = ".fleet-tmp-";

/// A new temporary file in `dir`, to be filled then [`publish`]ed.
pub fn temp_file_in(dir: &Path) -> Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Sync `tmp` and rename it over `target`, then sync the directory. `secret`
/// files are made readable by owner and group only, others by everyone.
pub fn publish(tmp: NamedTempFile, target: &Path, secret: bool) -> Result<()> {
    let mode = if secret { 0o640 } else { 0o644 };
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(target)
        .map_err(|e| Error::io(target, e.error))?;
    sync_dir(parent_of(target))
}

/// Write `bytes` to `target` atomically (the tools that edit auth files).
pub fn write_atomic(target: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let mut tmp = temp_file_in(parent_of(target))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    publish(tmp, target, secret)
}

/// Remove the temporary files (and a search index build's temporary
/// directories) a killed run left in `dir`; returns how many.
pub fn clean_stale_temps(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path: PathBuf = entry.path();
            // A temporary directory is a search index build's (tantivy's
            // work directory); anything else is a temporary file.
            let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            result.map_err(|e| Error::io(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tokens.yaml");
        std::fs::write(&target, "old").unwrap();
        let before = std::fs::metadata(&target).unwrap();
        write_atomic(&target, b"new", true).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let after = std::fs::metadata(&target).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(
            before.ino(),
            after.ino(),
            "must be a rename, not an in-place write"
        );
        assert_eq!(after.mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temps_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let t = temp_file_in(dir.path()).unwrap();
        let (_, path) = t.keep().unwrap();
        std::fs::write(dir.path().join("kb.db"), "x").unwrap();
        assert_eq!(clean_stale_temps(dir.path()).unwrap(), 1);
        assert!(!path.exists());
        assert!(dir.path().join("kb.db").exists());
    }
}
