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
use std::time::Instant;

use fleet_common::kind::FileKind;
use fleet_kb::search::{Kb, OpenOptions};
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

    /// The kind of file it is, which sets how it is read and its size limit.
    pub fn kind(self) -> FileKind {
        match self {
            DataFile::Tokens => FileKind::Tokens,
            DataFile::Users => FileKind::Users,
            DataFile::SessionKey => FileKind::SessionKey,
            DataFile::Kb => FileKind::Kb,
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
    #[serde(skip)]
    pub full_sha256: Option<String>,
    /// Fingerprint of the file at the last load attempt, good or bad; the
    /// reloader looks again only when the file's fingerprint moves from it.
    #[serde(skip)]
    pub fingerprint: Option<Fingerprint>,
}

impl FileStatus {
    /// Nothing loaded yet.
    fn new(path: &Path) -> FileStatus {
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
    fn begin_load(&self, f: DataFile) -> bool {
        let mut began = false;
        self.update(f, |s| {
            if s.loading_since.is_none() {
                s.loading_since = Some(Instant::now());
                began = true;
            }
        });
        began
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

/// Load `which` on a thread of its own, unless a load of it is under way
/// (then `false`). Each file loads independently: one that is slow to read
/// never holds up another's reload, nor the process's exit (the thread is
/// not waited for). If the file changed while it was being loaded, it is
/// loaded again. `done` hears when the load has finished.
pub fn spawn_load(
    state: &Arc<AppState>,
    which: DataFile,
    done: Option<tokio::sync::mpsc::UnboundedSender<DataFile>>,
) -> bool {
    if !state.files.begin_load(which) {
        return false;
    }
    let worker = state.clone();
    let run = move || {
        let state = worker;
        let path = which.path(&state.config.files).to_path_buf();
        loop {
            let _ = load(&state, which);
            let loaded = state.files.get(which).and_then(|s| s.fingerprint);
            if Fingerprint::of(&path) == loaded {
                break;
            }
        }
        state.files.update(which, |s| s.loading_since = None);
        if let Some(done) = done {
            let _ = done.send(which);
        }
    };
    let spawned = std::thread::Builder::new()
        .name(format!("load-{}", which.name()))
        .spawn(run);
    if let Err(e) = spawned {
        tracing::warn!(file = which.name(), error = %e, "cannot start a load thread");
        state.files.update(which, |s| s.loading_since = None);
        return false;
    }
    true
}

/// Read, validate and apply one file. Blocking (a KB load may take a while):
/// call it from a thread of its own (see [`crate::reloader`]).
pub fn load(state: &Arc<AppState>, which: DataFile) -> Result<Loaded, String> {
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
            m.reload(which.name(), "applied");
            set_generation_metrics(state, which, *generation);
            let label = crate::metrics::FileLabel {
                file: which.name().to_string(),
            };
            m.last_reload.get_or_create(&label).set(unix_now());
            set_error_metric(state, which, false);
            if which != DataFile::Kb {
                set_credential_metrics(state);
                // A smaller file replaced a larger one: give the freed heap
                // back rather than keep the peak for ever.
                trim_heap();
            }
        }
        Ok(Loaded::Unchanged) => {
            // The file on disk is good again (e.g. a broken version was
            // replaced by a copy of the live one): its error no longer holds.
            let mut cleared = false;
            state.files.update(which, |s| {
                cleared = s.last_error.take().is_some();
                s.last_error_at = None;
            });
            if cleared {
                tracing::info!(file = which.name(), path = %path.display(), "the file is the live version again; its error is cleared");
                set_error_metric(state, which, false);
            }
        }
        Ok(Loaded::Absent) => {
            tracing::debug!(file = which.name(), path = %path.display(), "optional file not present");
        }
        Err(err) => {
            state.metrics.reload(which.name(), "error");
            set_error_metric(state, which, true);
            let err = err.clone();
            let mut repeated = false;
            state.files.update(which, |s| {
                repeated = s.last_error.as_deref() == Some(err.as_str());
                if !repeated {
                    s.last_error_at = Some(now);
                }
                s.last_error = Some(err.clone());
            });
            // Once per new error, not once per look at the same bad file.
            if repeated {
                tracing::debug!(file = which.name(), path = %path.display(), error = %err, "still not loaded");
            } else {
                tracing::warn!(file = which.name(), path = %path.display(), error = %err, "not loaded; the previous version keeps serving");
            }
        }
    }
    result
}

/// A file read and validated, ready to become the live generation.
struct Prepared<'a> {
    sha: String,
    /// Swaps the store; returns the summary for /health and the log.
    apply: Box<dyn FnOnce() -> String + 'a>,
    /// For a KB loaded on its sync record's word: what to undo if the
    /// background audit finds other bytes.
    audit: Option<Undo>,
}

fn read_and_apply(state: &Arc<AppState>, which: DataFile, path: &Path) -> Result<Loaded, String> {
    let before = Fingerprint::of(path);
    state
        .files
        .update(which, |s| s.fingerprint = before.clone());
    if before.is_none() && !which.required() {
        return Ok(Loaded::Absent);
    }
    let prepared = match which {
        DataFile::Kb => prepare_kb(state, path, before.as_ref())?,
        _ => prepare_auth(state, which, path)?,
    };
    let Some(Prepared { sha, apply, audit }) = prepared else {
        return Ok(Loaded::Unchanged);
    };
    // Swap and record under the table's lock, so an audit that undoes a
    // generation (below) can never undo a newer one by mistake.
    let mut generation = 0;
    let mut summary = String::new();
    let now = now_rfc3339();
    state.files.update(which, |s| {
        summary = apply();
        s.generation += 1;
        generation = s.generation;
        s.sha256 = Some(sha[..12].to_string());
        s.full_sha256 = Some(sha);
        s.summary = Some(summary.clone());
        s.loaded_at = Some(now);
        s.last_error = None;
        s.last_error_at = None;
    });
    if let Some(undo) = audit {
        audit_vouched(state.clone(), path.to_path_buf(), generation, undo);
    }
    Ok(Loaded::Applied {
        generation,
        summary,
    })
}

/// Read and parse an auth file (bounded: a regular file within its kind's
/// size limit); `None` if its content is the live generation's.
fn prepare_auth<'a>(
    state: &'a Arc<AppState>,
    which: DataFile,
    path: &Path,
) -> Result<Option<Prepared<'a>>, String> {
    let bytes = which.kind().read(path).map_err(|e| e.to_string())?;
    let sha = fleet_common::sha256_hex(&bytes);
    if is_current(state, which, &sha) {
        return Ok(None);
    }
    let apply: Box<dyn FnOnce() -> String + 'a> = match which {
        DataFile::Tokens => {
            let store =
                TokenStore::new(fleet_common::tokens::parse(&bytes).map_err(|e| e.to_string())?);
            Box::new(move || {
                let summary = format!("{} tokens", store.len());
                state.tokens.store(Arc::new(store));
                summary
            })
        }
        DataFile::Users => {
            let store =
                UserStore::new(fleet_common::users::parse(&bytes).map_err(|e| e.to_string())?);
            Box::new(move || {
                let summary = format!("{} users", store.len());
                state.users.store(Arc::new(store));
                summary
            })
        }
        DataFile::SessionKey => {
            let keys = fleet_common::session_key::parse(&bytes).map_err(|e| e.to_string())?;
            Box::new(move || {
                let summary = format!("{} keys", keys.len());
                state.session_keys.store(Arc::new(keys));
                summary
            })
        }
        DataFile::Kb => return Err("not an auth file".to_string()),
    };
    Ok(Some(Prepared {
        sha,
        apply,
        audit: None,
    }))
}

/// Verify and open a KB; `None` if its content is the live generation's.
fn prepare_kb<'a>(
    state: &'a Arc<AppState>,
    path: &Path,
    before: Option<&Fingerprint>,
) -> Result<Option<Prepared<'a>>, String> {
    let max = DataFile::Kb.kind().max_bytes();
    // Not a FIFO, a device or a directory, and within the limit: refused at
    // once rather than hashed or waited on for ever.
    drop(fleet_common::read::open_regular(path, max).map_err(|e| e.to_string())?);
    // A file exactly as kb-init or the sidecar verified and published it
    // needs neither hashing nor a page check again.
    let vouched = fleet_common::published::vouched_sha256(path);
    let sha = match &vouched {
        Some(sha) => sha.clone(),
        None => fleet_common::read::sha256_capped(path, max).map_err(|e| e.to_string())?,
    };
    if is_current(state, DataFile::Kb, &sha) {
        return Ok(None);
    }
    let checked = match vouched {
        Some(_) => "verified at publish",
        None => "verified at load",
    };
    let opts = OpenOptions {
        sha256: Some(sha.clone()),
        vouched: vouched.is_some(),
        index_cache_dir: state.config.index_cache_dir.clone(),
    };
    let kb = Kb::open_with(path, &opts).map_err(|e| format!("{e:#}"))?;
    if Fingerprint::of(path).as_ref() != before {
        // Replaced while loading: what was hashed and what was opened
        // may differ. The reloader sees the new fingerprint and retries.
        return Err("replaced while loading; loading the newer file".to_string());
    }
    let summary = format!(
        "{} chunks, {}, {checked}",
        kb.info().chunk_count,
        kb.index_source().as_str()
    );
    let audit = vouched.is_some().then(|| Undo {
        vouched_sha: sha.clone(),
        previous_kb: state.kb.load_full(),
        previous_status: state
            .files
            .get(DataFile::Kb)
            .unwrap_or_else(|| FileStatus::new(path)),
    });
    Ok(Some(Prepared {
        sha,
        apply: Box::new(move || {
            state.kb.store(Some(Arc::new(kb)));
            summary
        }),
        audit,
    }))
}

/// Trust, then verify: hash a KB that was loaded on its sync record's word,
/// in the background. Only a file altered in place with its modification
/// time put back, or a disk gone bad, can differ; if it does, that
/// generation is unloaded (the one before it serves again, or none, and the
/// instance reports not ready) and `/health` and the metrics say why.
fn audit_vouched(state: Arc<AppState>, path: PathBuf, generation: u64, undo: Undo) {
    let spawned = std::thread::Builder::new()
        .name("kb-audit".into())
        .spawn(move || {
            let max = DataFile::Kb.kind().max_bytes();
            let Ok(sha) = fleet_common::read::sha256_capped(&path, max) else {
                return; // Gone or replaced: the reloader handles what comes next.
            };
            let vouched = &undo.vouched_sha;
            if sha == *vouched {
                tracing::debug!(path = %path.display(), "kb content matches its sync record");
                return;
            }
            let err = format!(
                "content (sha256 {}) is not what its sync record vouched for ({}); unloaded",
                &sha[..12],
                &vouched[..12]
            );
            let mut undone = false;
            state.files.update(DataFile::Kb, |s| {
                if s.generation != generation {
                    return; // A newer generation is live already.
                }
                state.kb.store(undo.previous_kb);
                // What the reloader knows of the file now stays as it is:
                // its fingerprint, and whether a load of it is under way.
                let (fingerprint, loading_since) = (s.fingerprint.take(), s.loading_since);
                *s = undo.previous_status;
                s.fingerprint = fingerprint;
                s.loading_since = loading_since;
                s.last_error = Some(err.clone());
                s.last_error_at = Some(now_rfc3339());
                undone = true;
            });
            if undone {
                let live = state.files.get(DataFile::Kb).map_or(0, |s| s.generation);
                set_generation_metrics(&state, DataFile::Kb, live);
                tracing::error!(file = "kb", path = %path.display(), error = %err, "not loaded; the previous version keeps serving");
                state.metrics.reload(DataFile::Kb.name(), "error");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the kb audit thread");
    }
}

/// Show `generation` of `which` as live in the metrics, with the KB's size.
fn set_generation_metrics(state: &AppState, which: DataFile, generation: u64) {
    let m = &state.metrics;
    let label = crate::metrics::FileLabel {
        file: which.name().to_string(),
    };
    m.file_generation
        .get_or_create(&label)
        .set(generation as i64);
    if which == DataFile::Kb {
        let chunks = state.kb.load().as_ref().map_or(0, |k| k.info().chunk_count);
        m.kb_chunks.set(chunks as i64);
        m.kb_generation.set(generation as i64);
    }
}

/// What to put back if an audited generation turns out bad.
struct Undo {
    vouched_sha: String,
    previous_kb: Option<Arc<Kb>>,
    previous_status: FileStatus,
}

/// Show whether `which`'s last load failed.
fn set_error_metric(state: &AppState, which: DataFile, failed: bool) {
    let label = crate::metrics::FileLabel {
        file: which.name().to_string(),
    };
    state
        .metrics
        .file_error
        .get_or_create(&label)
        .set(i64::from(failed));
}

/// Show how many credentials of each kind can authenticate now.
fn set_credential_metrics(state: &AppState) {
    let m = &state.metrics.credentials;
    let set = |kind, n: usize| {
        m.get_or_create(&crate::metrics::KindLabel { kind })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    };
    set("tokens", state.tokens.load().len());
    set("users", state.users.load().len());
    set("session_keys", state.session_keys.load().len());
}

/// Return freed heap pages to the system. glibc keeps what a large parse
/// allocated (a 1,000,000-entry token file held 1.5 GB after it shrank)
/// unless asked.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
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
