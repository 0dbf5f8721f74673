//! The destination directory: every published path must resolve inside it
//! (symlinks included), and this process must be able to create files in
//! it; both are checked before anything is fetched, and the containment
//! again at each publication.

use std::path::Path;

use crate::outcome::{SyncError, io_kind, local};

/// Make sure `dir` (under `dest`, already canonical) exists and resolves
/// inside `dest`, symlinks included, and that this process can create files
/// in it. Nothing is created outside `dest`: the nearest existing ancestor
/// is checked before any directory is made.
pub(crate) fn prepare_dir(dest: &Path, dir: &Path) -> Result<(), SyncError> {
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    check_inside(dest, existing)?;
    std::fs::create_dir_all(dir).map_err(|e| {
        let kind = e.kind();
        local(format!("creating {}: {e}", dir.display()), Some(kind))
    })?;
    check_inside(dest, dir)?;
    // Can we publish here at all? A permission problem is found now, not
    // after a download and five retries.
    fleet_common::publish::temp_file_in(dir).map_err(|e| {
        let kind = io_kind(&e);
        local(e, kind)
    })?;
    Ok(())
}

/// Refuse a path that resolves (following symlinks) outside `dest`.
pub(crate) fn check_inside(dest: &Path, path: &Path) -> Result<(), SyncError> {
    let real = std::fs::canonicalize(path).map_err(|e| {
        let kind = e.kind();
        local(format!("{}: {e}", path.display()), Some(kind))
    })?;
    if real.starts_with(dest) {
        Ok(())
    } else {
        Err(SyncError::Denied(format!(
            "{} resolves to {}, outside the destination {}",
            path.display(),
            real.display(),
            dest.display()
        )))
    }
}
