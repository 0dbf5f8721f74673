//! The sync state record, as the files' readers see it.
//!
//! `kb-init` and `kb-sync-sidecar` keep [`STATE_FILE`] beside what they
//! publish: for each file, one [`Record`]: the sha256 of the version they
//! verified and the identity (device, inode, modification time, size) the
//! file had when it was published. A reader that finds a file still bearing that identity
//! knows it is the verified version, byte for byte, without reading it
//! again: anything that replaces or rewrites the file changes its identity.
//! That is what lets `mcp-server` start on a large published KB without
//! hashing and checking every page a second time. The writer's side is
//! `fleet_sync::state`, which fills the record's validators.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// Name of the state file inside a destination directory.
pub const STATE_FILE: &str = ".fleet-sync-state.json";

/// One published file's record, as `kb-init` and the sidecar write it and
/// everyone reads it. `V` is how the source identified the version (the
/// sync tools' validators); a reader that does not care reads it as
/// [`serde::de::IgnoredAny`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record<V> {
    /// The source, as shown in logs (no credentials).
    pub source: String,
    pub validators: V,
    /// The sha256 of the verified content.
    pub sha256: String,
    pub size: u64,
    /// (device, inode, modification time in ns) of the file as published.
    pub identity: (u64, u64, i128),
}

impl<V> Record<V> {
    /// Whether the file at `path` still is the one this record describes:
    /// same device, inode, modification time and size.
    pub fn describes(&self, path: &Path) -> bool {
        Identity::of(path)
            .is_some_and(|id| self.identity == published_key(&id) && self.size == id.size)
    }
}

/// The part of an identity a record keeps.
pub fn published_key(id: &Identity) -> (u64, u64, i128) {
    (id.dev, id.ino, id.mtime_ns)
}

/// The sha256 of `path` as recorded when it was verified and published, if
/// the state file in its directory has a record for it and the file still
/// has the identity it was published with. `None` means "verify it
/// yourself": no state file, no record, an unreadable one, or a file that
/// changed since.
pub fn vouched_sha256(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let dir = path.parent()?;
    let bytes = std::fs::read(dir.join(STATE_FILE)).ok()?;
    let mut records: BTreeMap<String, Record<serde::de::IgnoredAny>> =
        serde_json::from_slice(&bytes).ok()?;
    let record = records.remove(name)?;
    let valid_sha =
        record.sha256.len() == 64 && record.sha256.bytes().all(|b| b.is_ascii_hexdigit());
    (valid_sha && record.describes(path)).then(|| record.sha256.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &Path, sha: &str) -> serde_json::Value {
        let id = Identity::of(path).unwrap();
        let (dev, ino, mtime, size) = (id.dev, id.ino, id.mtime_ns, id.size);
        serde_json::json!({
            "source": "s3://b/kb.db",
            "validators": {"etag": "\"e1\"", "last_modified": null},
            "sha256": sha,
            "size": size,
            "identity": [dev, ino, mtime],
        })
    }

    #[test]
    fn vouches_only_for_the_file_as_published() {
        let dir = tempfile::tempdir().unwrap();
        let kb = dir.path().join("kb.db");
        let state = dir.path().join(STATE_FILE);
        std::fs::write(&kb, b"v1").unwrap();
        assert_eq!(vouched_sha256(&kb), None, "no state file");

        let sha = crate::sha256_hex(b"v1");
        std::fs::write(
            &state,
            serde_json::json!({"kb.db": record(&kb, &sha)}).to_string(),
        )
        .unwrap();
        assert_eq!(vouched_sha256(&kb), Some(sha.clone()));
        assert_eq!(
            vouched_sha256(&dir.path().join("other.db")),
            None,
            "no record"
        );

        // Rewritten in place: same inode, other size or mtime.
        std::fs::write(&kb, b"v2 longer").unwrap();
        assert_eq!(vouched_sha256(&kb), None);

        // Replaced by rename with the same size: other inode.
        std::fs::write(
            &state,
            serde_json::json!({"kb.db": record(&kb, &sha)}).to_string(),
        )
        .unwrap();
        assert!(vouched_sha256(&kb).is_some());
        let next = dir.path().join("next");
        std::fs::write(&next, b"v3 longer").unwrap();
        std::fs::rename(&next, &kb).unwrap();
        assert_eq!(vouched_sha256(&kb), None);

        // A record whose sha256 is not one, or a state file that is not JSON.
        std::fs::write(
            &state,
            serde_json::json!({"kb.db": record(&kb, "zz")}).to_string(),
        )
        .unwrap();
        assert_eq!(vouched_sha256(&kb), None);
        std::fs::write(&state, b"{not json").unwrap();
        assert_eq!(vouched_sha256(&kb), None);
    }
}
