//! The data files' gauges: each file's live generation, whether its last
//! load failed, and how many credentials of each kind can authenticate.

use crate::data::DataFile;
use crate::state::AppState;

/// Show `generation` of `which` as live in the metrics, with the KB's size.
pub(crate) fn set_generation_metrics(state: &AppState, which: DataFile, generation: u64) {
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

/// Show whether `which`'s last load failed.
pub(crate) fn set_error_metric(state: &AppState, which: DataFile, failed: bool) {
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
pub(crate) fn set_credential_metrics(state: &AppState) {
    let m = &state.metrics.credentials;
    let set = |kind, n: usize| {
        m.get_or_create(&crate::metrics::KindLabel { kind })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    };
    let n = state.credentials.counts();
    set("tokens", n.tokens);
    set("users", n.users);
    set("session_keys", n.session_keys);
}
