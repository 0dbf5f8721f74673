//! The background audit of a KB loaded on its sync record's word: hash it,
//! and unload that generation if its bytes are not what was published.

use std::path::PathBuf;
use std::sync::Arc;

use fleet_common::logging::now_rfc3339;
use fleet_kb::search::Kb;

use crate::data::metrics::set_generation_metrics;
use crate::data::{DataFile, FileStatus};
use crate::state::AppState;

/// What to put back if an audited generation turns out bad.
pub(crate) struct Undo {
    pub vouched_sha: String,
    pub previous_kb: Option<Arc<Kb>>,
    pub previous_status: FileStatus,
}

/// Trust, then verify: hash a KB that was loaded on its sync record's word,
/// in the background. Only a file altered in place with its modification
/// time put back, or a disk gone bad, can differ; if it does, that
/// generation is unloaded (the one before it serves again, or none, and the
/// instance reports not ready) and `/health` and the metrics say why.
pub(crate) fn audit_vouched(state: Arc<AppState>, path: PathBuf, generation: u64, undo: Undo) {
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
                let (fingerprint, loading_since, attempt) =
                    (s.fingerprint.take(), s.loading_since, s.attempt.take());
                *s = undo.previous_status;
                s.fingerprint = fingerprint;
                s.loading_since = loading_since;
                s.attempt = attempt;
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
