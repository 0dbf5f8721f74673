//! What is known of each data file: its path, generation, content hash,
//! last load, last error and any load under way ([`FileTable`]), as
//! `/health` and the loader read and write it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use fleet_common::deadline::Cancel;
use fleet_common::kind::FileKind;
use serde::Serialize;

use crate::config::DataFiles;
use crate::data::fingerprint::Fingerprint;

/// One of the files the server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataFile {
    Tokens,
    Users,
    SessionKey,
    Kb,
    Tools,
}

impl DataFile {
    pub const ALL: [DataFile; 5] = [
        DataFile::Tokens,
        DataFile::Users,
        DataFile::SessionKey,
        DataFile::Kb,
        DataFile::Tools,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DataFile::Tokens => "tokens",
            DataFile::Users => "users",
            DataFile::SessionKey => "session_key",
            DataFile::Kb => "kb",
            DataFile::Tools => "tools",
        }
    }

    pub fn path(self, files: &DataFiles) -> &Path {
        match self {
            DataFile::Tokens => &files.tokens,
            DataFile::Users => &files.users,
            DataFile::SessionKey => &files.session_key,
            DataFile::Kb => &files.kb,
            DataFile::Tools => &files.tools,
        }
    }

    /// The kind of file it is, which sets how it is read and its size limit.
    pub fn kind(self) -> FileKind {
        match self {
            DataFile::Tokens => FileKind::Tokens,
            DataFile::Users => FileKind::Users,
            DataFile::SessionKey => FileKind::SessionKey,
            DataFile::Kb => FileKind::Kb,
            DataFile::Tools => FileKind::Tools,
        }
    }

    /// Files without which the instance is not ready for traffic.
    pub fn required(self) -> bool {
        matches!(self, DataFile::Tokens | DataFile::Kb)
    }
}

/// What `/health` shows of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    pub path: PathBuf,
    /// How many versions have been loaded; 0 until the first.
    pub generation: u64,
    /// First 12 hex digits of the loaded content's SHA-256.
    pub sha256: Option<String>,
    /// One line on what was loaded, e.g. "3 tokens".
    pub summary: Option<String>,
    pub loaded_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// How long the load under way has been reading, if one is.
    pub loading_seconds: Option<f64>,
    #[serde(skip)]
    pub loading_since: Option<Instant>,
    /// The load attempt under way: the file's fingerprint when it began,
    /// and what stops it once the file has moved on (`FileTable::supersede`).
    #[serde(skip)]
    pub attempt: Option<(Option<Fingerprint>, Cancel)>,
    #[serde(skip)]
    pub full_sha256: Option<String>,
    /// Fingerprint of the file at the last load attempt, good or bad; the
    /// reloader looks again only when the file's fingerprint moves from it.
    #[serde(skip)]
    pub fingerprint: Option<Fingerprint>,
}

impl FileStatus {
    /// Nothing loaded yet.
    pub(crate) fn new(path: &Path) -> FileStatus {
        FileStatus {
            path: path.to_path_buf(),
            generation: 0,
            sha256: None,
            summary: None,
            loaded_at: None,
            last_error: None,
            last_error_at: None,
            loading_seconds: None,
            loading_since: None,
            attempt: None,
            full_sha256: None,
            fingerprint: None,
        }
    }
}

/// Status of every file, behind one lock that is never held across I/O. A
/// store is swapped under it too, so status and store change together.
pub struct FileTable(Mutex<BTreeMap<DataFile, FileStatus>>);

impl FileTable {
    pub fn new(files: &DataFiles) -> FileTable {
        let map = DataFile::ALL
            .iter()
            .map(|&f| (f, FileStatus::new(f.path(files))))
            .collect();
        FileTable(Mutex::new(map))
    }

    pub fn snapshot(&self) -> BTreeMap<DataFile, FileStatus> {
        let mut map = self.0.lock().map(|m| m.clone()).unwrap_or_default();
        for s in map.values_mut() {
            s.loading_seconds = s.loading_since.map(|t| t.elapsed().as_secs_f64());
        }
        map
    }

    pub fn get(&self, f: DataFile) -> Option<FileStatus> {
        self.0.lock().ok().and_then(|m| m.get(&f).cloned())
    }

    pub fn required_loaded(&self) -> bool {
        self.0
            .lock()
            .map(|m| m.iter().all(|(f, s)| !f.required() || s.generation > 0))
            .unwrap_or(false)
    }

    /// Mark `f` as loading, unless a load of it is under way already.
    pub(crate) fn begin_load(&self, f: DataFile) -> bool {
        let mut began = false;
        self.update(f, |s| {
            if s.loading_since.is_none() {
                s.loading_since = Some(Instant::now());
                began = true;
            }
        });
        began
    }

    /// A load of `f` is under way and the file is now `current`: if that
    /// is not the file the attempt began on, stop the attempt (its result
    /// would be stale at once; the loader starts on the new file). Whether
    /// it was stopped.
    pub(crate) fn supersede(&self, f: DataFile, current: &Option<Fingerprint>) -> bool {
        let mut stopped = false;
        self.update(f, |s| {
            if let Some((began, cancel)) = &s.attempt
                && began != current
                && !cancel.is_cancelled()
            {
                cancel.cancel();
                stopped = true;
            }
        });
        stopped
    }

    pub(crate) fn update(&self, f: DataFile, change: impl FnOnce(&mut FileStatus)) {
        if let Ok(mut m) = self.0.lock()
            && let Some(s) = m.get_mut(&f)
        {
            change(s);
        }
    }
}
