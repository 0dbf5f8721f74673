//! What was last published, kept beside the files in `STATE_FILE`.
//!
//! For each published file: the source it came from, that version's
//! validators (ETag, Last-Modified), its sha256, and the identity of the file
//! as published. A restarted `kb-init` or sidecar trusts a record only while
//! the published file still has that identity, and then asks its source
//! conditionally, so an unchanged source costs no download even across
//! restarts. The state file is written atomically and is only an
//! optimisation: losing it costs one download. The server reads the same
//! records (`fleet_common::published`) to skip re-verifying a KB it finds
//! exactly as it was published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::source::Validators;

pub use fleet_common::published::STATE_FILE;

/// A published file's record (fleet-common's one record type), with this
/// crate's validators.
pub type Record = fleet_common::published::Record<Validators>;

#[derive(Debug, Default)]
pub struct State {
    path: PathBuf,
    records: BTreeMap<String, Record>,
}

impl State {
    /// Load the state of `dest_dir`; a missing or unreadable state is empty.
    pub fn load(dest_dir: &Path) -> State {
        let path = dest_dir.join(STATE_FILE);
        let records = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        State { path, records }
    }

    /// The record for `name` if it still describes the file at `target`
    /// and came from `source`.
    pub fn current(&self, name: &str, source: &str, target: &Path) -> Option<&Record> {
        let r = self.records.get(name)?;
        (r.source == source && r.describes(target)).then_some(r)
    }

    pub fn set(&mut self, name: &str, record: Record) {
        self.records.insert(name.to_string(), record);
    }

    /// The sha256 of every file recorded as published.
    pub fn sha256s(&self) -> Vec<&str> {
        self.records.values().map(|r| r.sha256.as_str()).collect()
    }

    /// Write the state atomically; failure is logged, never fatal.
    pub fn save(&self) {
        let bytes = match serde_json::to_vec_pretty(&self.records) {
            Ok(b) => b,
            Err(_) => return,
        };
        if let Err(e) = fleet_common::publish::write_atomic(&self.path, &bytes, false) {
            tracing::warn!(error = %e, "could not save sync state; the next start downloads again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("kb.db");
        std::fs::write(&target, b"v1").unwrap();
        let id = fleet_common::identity::Identity::of(&target).unwrap();
        let mut s = State::load(dir.path());
        s.set(
            "kb.db",
            Record {
                source: "s3://b/kb.db".into(),
                validators: Validators {
                    etag: Some("\"e1\"".into()),
                    ..Validators::default()
                },
                sha256: "x".into(),
                size: id.size,
                identity: fleet_common::published::published_key(&id),
            },
        );
        s.save();
        let s = State::load(dir.path());
        assert!(s.current("kb.db", "s3://b/kb.db", &target).is_some());
        assert!(s.current("kb.db", "s3://other/kb.db", &target).is_none());
        std::fs::write(dir.path().join("n"), b"v2").unwrap();
        std::fs::rename(dir.path().join("n"), &target).unwrap();
        assert!(s.current("kb.db", "s3://b/kb.db", &target).is_none());
    }
}
