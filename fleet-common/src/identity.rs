//! What a file is on disk, cheaply: device, inode, size, and modification
//! and change times, read with one `stat` (symlinks followed).
//!
//! Two readers compare identities: the sync record, which vouches for a
//! published file while it keeps the identity it was published with
//! ([`crate::published`]), and the server's reloader, which looks at a file
//! again only when its identity (or its symlink's target) moves. Anything
//! that replaces or rewrites a file changes its identity; the change time
//! even when the modification time is put back, which no user can do.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl Identity {
    /// The identity of what `path` names now, or `None` if nothing is there.
    pub fn of(path: &Path) -> Option<Identity> {
        std::fs::metadata(path).ok().map(|m| Identity::from(&m))
    }

    /// Device and inode: which file it is, whatever its content.
    pub fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

impl From<&std::fs::Metadata> for Identity {
    fn from(m: &std::fs::Metadata) -> Identity {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_and_rename_change_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kb.db");
        assert_eq!(Identity::of(&f), None);
        std::fs::write(&f, "a").unwrap();
        let first = Identity::of(&f).unwrap();
        assert_eq!(Identity::of(&f), Some(first));
        std::fs::write(&f, "ab").unwrap();
        let rewritten = Identity::of(&f).unwrap();
        assert_ne!(first, rewritten);
        assert_eq!(first.inode(), rewritten.inode());
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, "ab").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert_ne!(Identity::of(&f).unwrap().inode(), rewritten.inode());
    }
}
