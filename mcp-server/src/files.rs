//! Loading the four data files into the live stores, and what is known of
//! each: generation, content hash, last load, last error.
//!
//! [`load`] is the only way a file reaches a store. It parses and validates
//! the whole file with the same code the sync tools verify with, and swaps
//! the store only on success; on failure the previous generation keeps
//! serving and the error is recorded for `/health`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fleet_kb::search::Kb;
use serde::Serialize;

use crate::auth::TokenStore;
use crate::config::DataFiles;
use crate::fingerprint::Fingerprint;
use crate::state::AppState;
use crate::users::UserStore;
use fleet_common::logging::now_rfc3339;

/// One of the files the server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataFile {
    Tokens,
    Users,
    SessionKey,
    Kb,
}

impl DataFile {
    pub const ALL: [DataFile; 4] = [
        DataFile::Tokens,
        DataFile::Users,
        DataFile::SessionKey,
        DataFile::Kb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DataFile::Tokens => "tokens",
            DataFile::Users => "users",
            DataFile::SessionKey => "session_key",
            DataFile::Kb => "kb",
        }
    }

    pub fn path(self, files: &DataFiles) -> &Path {
        match self {
            DataFile::Tokens => &files.tokens,
            DataFile::Users => &files.users,
            DataFile::SessionKey => &files.session_key,
            DataFile::Kb => &files.kb,
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
    #[serde(skip)]
    pub full_sha256: Option<String>,
    /// Fingerprint of the file at the last load attempt, good or bad; the
    /// reloader looks again only when the file's fingerprint moves from it.
    #[serde(skip)]
    pub fingerprint: Option<Fingerprint>,
}

/// Status of every file, behind one lock that is never held across I/O.
pub struct FileTable(Mutex<BTreeMap<DataFile, FileStatus>>);

impl FileTable {
    pub fn new(files: &DataFiles) -> FileTable {
        let map = DataFile::ALL
            .iter()
            .map(|&f| {
                (
                    f,
                    FileStatus {
                        path: f.path(files).to_path_buf(),
                        generation: 0,
                        sha256: None,
                        summary: None,
                        loaded_at: None,
                        last_error: None,
                        last_error_at: None,
                        full_sha256: None,
                        fingerprint: None,
                    },
                )
            })
            .collect();
        FileTable(Mutex::new(map))
    }

    pub fn snapshot(&self) -> BTreeMap<DataFile, FileStatus> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
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

    fn update(&self, f: DataFile, change: impl FnOnce(&mut FileStatus)) {
        if let Ok(mut m) = self.0.lock()
            && let Some(s) = m.get_mut(&f)
        {
            change(s);
        }
    }
}

/// What a successful load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// A new generation is live.
    Applied { generation: u64, summary: String },
    /// The content is the same as the live generation; nothing swapped.
    Unchanged,
    /// An optional file is not there; whatever was loaded keeps serving.
    Absent,
}

/// Read, validate and apply one file. Blocking (a KB load may take a while):
/// call it from a blocking thread.
pub fn load(state: &AppState, which: DataFile) -> Result<Loaded, String> {
    let path = which.path(&state.config.files).to_path_buf();
    let result = read_and_apply(state, which, &path);
    let now = now_rfc3339();
    match &result {
        Ok(Loaded::Applied {
            generation,
            summary,
        }) => {
            tracing::info!(file = which.name(), path = %path.display(), generation, %summary, "loaded");
            let m = &state.metrics;
            let label = crate::metrics::FileLabel {
                file: which.name().to_string(),
            };
            m.reload(which.name(), "applied");
            m.file_generation
                .get_or_create(&label)
                .set(*generation as i64);
            m.last_reload.get_or_create(&label).set(unix_now());
            if which == DataFile::Kb
                && let Some(kb) = state.kb.load().as_ref()
            {
                m.kb_chunks.set(kb.info().chunk_count as i64);
                m.kb_generation.set(*generation as i64);
            }
        }
        Ok(Loaded::Unchanged) => {}
        Ok(Loaded::Absent) => {
            tracing::debug!(file = which.name(), path = %path.display(), "optional file not present");
        }
        Err(err) => {
            tracing::warn!(file = which.name(), path = %path.display(), error = %err, "not loaded; the previous version keeps serving");
            state.metrics.reload(which.name(), "error");
            let err = err.clone();
            state.files.update(which, |s| {
                s.last_error = Some(err);
                s.last_error_at = Some(now);
            });
        }
    }
    result
}

fn read_and_apply(state: &AppState, which: DataFile, path: &Path) -> Result<Loaded, String> {
    let before = Fingerprint::of(path);
    state
        .files
        .update(which, |s| s.fingerprint = before.clone());
    if before.is_none() && !which.required() {
        return Ok(Loaded::Absent);
    }
    let (sha, apply): (String, Box<dyn FnOnce() -> String>) = match which {
        DataFile::Kb => {
            let sha =
                fleet_common::sha256_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if is_current(state, which, &sha) {
                return Ok(Loaded::Unchanged);
            }
            let kb = Kb::open(path).map_err(|e| format!("{e:#}"))?;
            if Fingerprint::of(path) != before {
                // Replaced while loading: what was hashed and what was opened
                // may differ. The reloader sees the new fingerprint and retries.
                return Err("replaced while loading; loading the newer file".to_string());
            }
            let summary = format!("{} chunks", kb.info().chunk_count);
            (
                sha,
                Box::new(move || {
                    state.kb.store(Some(Arc::new(kb)));
                    summary
                }),
            )
        }
        _ => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let sha = fleet_common::sha256_hex(&bytes);
            if is_current(state, which, &sha) {
                return Ok(Loaded::Unchanged);
            }
            match which {
                DataFile::Tokens => {
                    let entries = fleet_common::tokens::parse(&bytes).map_err(|e| e.to_string())?;
                    let store = TokenStore::new(entries);
                    (
                        sha,
                        Box::new(move || {
                            let summary = format!("{} tokens", store.len());
                            state.tokens.store(Arc::new(store));
                            summary
                        }),
                    )
                }
                DataFile::Users => {
                    let users = fleet_common::users::parse(&bytes).map_err(|e| e.to_string())?;
                    let store = UserStore::new(users);
                    (
                        sha,
                        Box::new(move || {
                            let summary = format!("{} users", store.len());
                            state.users.store(Arc::new(store));
                            summary
                        }),
                    )
                }
                DataFile::SessionKey => {
                    let keys =
                        fleet_common::session_key::parse(&bytes).map_err(|e| e.to_string())?;
                    (
                        sha,
                        Box::new(move || {
                            let summary = format!("{} keys", keys.len());
                            state.session_keys.store(Arc::new(keys));
                            summary
                        }),
                    )
                }
                DataFile::Kb => unreachable!("handled above"),
            }
        }
    };
    let summary = apply();
    let mut generation = 0;
    let now = now_rfc3339();
    state.files.update(which, |s| {
        s.generation += 1;
        generation = s.generation;
        s.sha256 = Some(sha[..12].to_string());
        s.full_sha256 = Some(sha);
        s.summary = Some(summary.clone());
        s.loaded_at = Some(now);
        s.last_error = None;
        s.last_error_at = None;
    });
    Ok(Loaded::Applied {
        generation,
        summary,
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn is_current(state: &AppState, which: DataFile, sha: &str) -> bool {
    state
        .files
        .get(which)
        .is_some_and(|s| s.full_sha256.as_deref() == Some(sha))
}
