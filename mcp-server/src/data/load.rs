//! Loading a data file into the live stores.
//!
//! [`load`] is the only way a file reaches a store. It parses and validates
//! the whole file with the same code the sync tools verify with, and swaps
//! the store only on success; on failure the previous generation keeps
//! serving and the error is recorded for `/health`.
//!
//! A load never holds up a later version of its file: each attempt runs
//! under a [`Deadline`] that the reloader cancels as soon as the file moves
//! on (`FileTable::supersede`), and that ends anyway after
//! [`KB_LOAD_LIMIT`] or at SIGTERM. (Only a KB's load can take long: YAML
//! files are refused before parsing if they nest deeper than a few dozen
//! levels, and are parsed in linear time otherwise.)

use std::path::Path;
use std::sync::Arc;

use fleet_common::deadline::{Cancel, Deadline};
use fleet_common::logging::now_rfc3339;
use fleet_kb::search::{Kb, OpenOptions};

use crate::auth::tokens::TokenStore;
use crate::auth::users::UserStore;
use crate::data::audit::{Undo, audit_vouched};
use crate::data::fingerprint::Fingerprint;
use crate::data::metrics::{set_credential_metrics, set_error_metric, set_generation_metrics};
use crate::data::{DataFile, FileStatus};
use crate::state::AppState;

/// Why a file was not loaded. Its text (never a secret: the parsers'
/// errors name a location, not a value) is what `/health` and the log show.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read: missing, not a regular file, too large,
    /// no permission.
    Read(fleet_common::Error),
    /// Read, but not a valid file of its kind.
    Invalid(String),
    /// Replaced while it was being loaded; the newer file is loaded next.
    Replaced,
    /// Given up: [`KB_LOAD_LIMIT`] passed, or the process is terminating.
    Interrupted(String),
}

/// The longest a KB's load may take (the index of a pgEdge KB of millions
/// of chunks is built in minutes); past it the load gives up, the previous
/// generation keeps serving and the error shows until the file changes.
pub const KB_LOAD_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read(e) => write!(f, "{e}"),
            LoadError::Invalid(why) => f.write_str(why),
            LoadError::Replaced => f.write_str("replaced while loading; loading the newer file"),
            LoadError::Interrupted(why) => write!(f, "gave up: {why}"),
        }
    }
}

impl std::error::Error for LoadError {}

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
/// (then `false`, and that load is stopped if the file has moved on since it
/// began). Each file loads independently: one that is slow to read never
/// holds up another's reload, nor the process's exit (the thread is not
/// waited for). If the file changed while it was being loaded, it is loaded
/// again. `done` hears when the load has finished.
pub fn spawn_load(
    state: &Arc<AppState>,
    which: DataFile,
    done: Option<tokio::sync::mpsc::UnboundedSender<DataFile>>,
) -> bool {
    if !state.files.begin_load(which) {
        let current = Fingerprint::of(which.path(&state.config.files));
        if state.files.supersede(which, &current) {
            tracing::info!(
                file = which.name(),
                "the file changed while it was loading: loading the newer one"
            );
        }
        return false;
    }
    let worker = state.clone();
    let run = move || {
        let state = worker;
        let path = which.path(&state.config.files).to_path_buf();
        loop {
            let cancel = Cancel::new();
            let began = Fingerprint::of(&path);
            state
                .files
                .update(which, |s| s.attempt = Some((began, cancel.clone())));
            let deadline =
                Deadline::after(KB_LOAD_LIMIT, "the KB load limit of").with_cancel(cancel);
            let outcome = load(&state, which, &deadline);
            if matches!(outcome, Err(LoadError::Interrupted(_))) {
                break; // Tried again when the file changes.
            }
            let loaded = state.files.get(which).and_then(|s| s.fingerprint);
            if Fingerprint::of(&path) == loaded {
                break;
            }
        }
        state.files.update(which, |s| {
            s.loading_since = None;
            s.attempt = None;
        });
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

/// Read, validate and apply one file, giving up once `deadline` passes.
/// Blocking (a KB load may take a while): call it from a thread of its own
/// (see [`crate::data::reloader`]).
pub fn load(
    state: &Arc<AppState>,
    which: DataFile,
    deadline: &Deadline,
) -> Result<Loaded, LoadError> {
    let path = which.path(&state.config.files).to_path_buf();
    let result = read_and_apply(state, which, &path, deadline);
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
                if which != DataFile::Tools {
                    set_credential_metrics(state);
                }
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
            let err = err.to_string();
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

fn read_and_apply(
    state: &Arc<AppState>,
    which: DataFile,
    path: &Path,
    deadline: &Deadline,
) -> Result<Loaded, LoadError> {
    let before = Fingerprint::of(path);
    state
        .files
        .update(which, |s| s.fingerprint = before.clone());
    if before.is_none() && !which.required() {
        return Ok(Loaded::Absent);
    }
    let prepared = match which {
        DataFile::Kb => prepare_kb(state, path, before.as_ref(), deadline)?,
        _ => prepare_whole(state, which, path)?,
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

/// Read and parse a file that is read whole, an auth file or `tools.yaml`
/// (bounded: a regular file within its kind's size limit); `None` if its
/// content is the live generation's.
fn prepare_whole<'a>(
    state: &'a Arc<AppState>,
    which: DataFile,
    path: &Path,
) -> Result<Option<Prepared<'a>>, LoadError> {
    let bytes = which.kind().read(path).map_err(LoadError::Read)?;
    let sha = fleet_common::sha256_hex(&bytes);
    if is_current(state, which, &sha) {
        return Ok(None);
    }
    let apply: Box<dyn FnOnce() -> String + 'a> = match which {
        DataFile::Tokens => {
            let store = TokenStore::new(fleet_common::tokens::parse(&bytes).map_err(invalid)?);
            Box::new(move || {
                let summary = format!("{} tokens", store.len());
                state.credentials.tokens.store(Arc::new(store));
                summary
            })
        }
        DataFile::Users => {
            let store = UserStore::new(fleet_common::users::parse(&bytes).map_err(invalid)?);
            Box::new(move || {
                let summary = format!("{} users", store.len());
                state.credentials.users.store(Arc::new(store));
                summary
            })
        }
        DataFile::SessionKey => {
            let keys = fleet_common::session_key::parse(&bytes).map_err(invalid)?;
            Box::new(move || {
                let summary = format!("{} keys", keys.len());
                state.credentials.session_keys.store(Arc::new(keys));
                summary
            })
        }
        DataFile::Tools => {
            let catalog = crate::catalog::Catalog::new(
                fleet_common::tools_file::parse(&bytes).map_err(invalid)?,
            );
            Box::new(move || {
                let summary = catalog.summary();
                state.catalog.store(Arc::new(catalog));
                summary
            })
        }
        DataFile::Kb => return Err(LoadError::Invalid("not read whole".to_string())),
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
    deadline: &Deadline,
) -> Result<Option<Prepared<'a>>, LoadError> {
    let max = DataFile::Kb.kind().max_bytes();
    // Not a FIFO, a device or a directory, and within the limit: refused at
    // once rather than hashed or waited on for ever.
    drop(fleet_common::read::open_regular(path, max).map_err(LoadError::Read)?);
    // A file exactly as kb-init or the sidecar verified and published it
    // needs neither hashing nor a page check again.
    let vouched = fleet_common::published::vouched_sha256(path);
    let hash = || fleet_common::read::sha256_capped(path, max).map_err(LoadError::Read);
    // The hash names the file's index pack in the caches and tells an
    // unchanged file from a new one. With nothing loaded yet and no pack
    // to look for (no cache directory, nothing published beside the KB),
    // it is not needed first: the file is hashed beside the load (a
    // pgEdge KB placed by hand is searchable ~0.1 s sooner).
    let hash_first = vouched.is_none()
        && (state.config.index_cache_dir.is_some()
            || state
                .files
                .get(DataFile::Kb)
                .and_then(|s| s.full_sha256)
                .is_some()
            || fleet_common::kb_index::cache::published_dir(path).exists());
    let sha = match &vouched {
        Some(sha) => Some(sha.clone()),
        None if hash_first => Some(hash()?),
        None => None,
    };
    if let Some(sha) = &sha
        && is_current(state, DataFile::Kb, sha)
    {
        return Ok(None);
    }
    let checked = match vouched {
        Some(_) => "verified at publish",
        None => "verified at load",
    };
    let opts = OpenOptions {
        sha256: sha.clone(),
        vouched: vouched.is_some(),
        index_cache_dir: state.config.index_cache_dir.clone(),
        vectors: state.embedder.as_ref().map(|e| e.vector_source()),
        deadline: deadline.clone(),
    };
    let open = || {
        Kb::open_with(path, &opts).map_err(|e| match deadline.passed() {
            // Stopped because the file moved on: the newer one loads next.
            Some(_) if Fingerprint::of(path).as_ref() != before => LoadError::Replaced,
            Some(why) => LoadError::Interrupted(why),
            None => LoadError::Invalid(format!("{e:#}")),
        })
    };
    let (sha, kb) = match sha {
        Some(sha) => (sha, open()?),
        None => std::thread::scope(|scope| {
            let hashing = scope.spawn(hash);
            let kb = open();
            let sha = hashing
                .join()
                .map_err(|_| LoadError::Invalid("hashing the file panicked".into()))?;
            Ok::<_, LoadError>((sha?, kb?))
        })?,
    };
    if Fingerprint::of(path).as_ref() != before {
        // Replaced while loading: what was hashed and what was opened
        // may differ. The reloader sees the new fingerprint and retries.
        return Err(LoadError::Replaced);
    }
    let vectors = match (kb.vectors(), kb.no_vectors()) {
        (Some(v), _) => format!(", {} vectors of {} dimensions", v.len(), v.dimensions()),
        (None, Some(why)) => format!(", keyword search only: {why}"),
        (None, None) => String::new(),
    };
    let summary = format!(
        "{} chunks, {}{vectors}, {checked}",
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

/// A parser's error, as text that names where, never what.
fn invalid(e: impl std::fmt::Display) -> LoadError {
    LoadError::Invalid(e.to_string())
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
