//! What the reloader knows of a data file on disk, to notice that it may
//! have changed: its [`Identity`] (device, inode, size, modification and
//! change times) and the path's resolved target, which a Kubernetes
//! `..data` symlink swap moves without touching the file. A changed
//! fingerprint only says "look again": the content hash decides. An
//! unchanged one means the file is not read again, so a large file costs
//! nothing while it stays as it is.

use std::path::{Path, PathBuf};

use fleet_common::identity::Identity;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    identity: Identity,
    target: PathBuf,
}

impl Fingerprint {
    /// The fingerprint of what `path` names now (following symlinks), or
    /// `None` if there is nothing there.
    pub fn of(path: &Path) -> Option<Fingerprint> {
        Some(Fingerprint {
            identity: Identity::of(path)?,
            target: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        })
    }

    /// Device and inode, as one value (for directories being watched).
    pub fn inode(&self) -> (u64, u64) {
        self.identity.inode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_rewrite_and_symlink_swap_change_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens.yaml");
        assert_eq!(Fingerprint::of(&f), None);
        std::fs::write(&f, "a").unwrap();
        let first = Fingerprint::of(&f).unwrap();
        assert_eq!(Fingerprint::of(&f).as_ref(), Some(&first));
        std::fs::write(&f, "ab").unwrap();
        let rewritten = Fingerprint::of(&f).unwrap();
        assert_ne!(first, rewritten);
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, "ab").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert_ne!(Fingerprint::of(&f).unwrap().inode(), rewritten.inode());

        // Kubernetes-style: link -> ..data/file, ..data -> ..v1, swapped to ..v2.
        for v in ["..v1", "..v2"] {
            std::fs::create_dir(dir.path().join(v)).unwrap();
            std::fs::write(dir.path().join(v).join("key"), "same").unwrap();
        }
        std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/key", dir.path().join("key")).unwrap();
        let before = Fingerprint::of(&dir.path().join("key")).unwrap();
        std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        let after = Fingerprint::of(&dir.path().join("key")).unwrap();
        assert_ne!(before, after);
        assert!(after.target.ends_with("..v2/key"));
    }
}
