//! One complete sync of every file, with retries: what `kb-init` does, and
//! `kb-sync-sidecar --once`.
//!
//! Exit status: 0 every file is published and current; 1 a source could not
//! be fetched after the retries or within the overall timeout; 2 the
//! destination cannot be written (permission denied, read-only, a path
//! leading out of it: a local, permanent error, reported at once); 3 a
//! fetched file failed verification (a bad file is never published, so
//! retrying it would not help). Usage errors (also 2) are the binaries' to
//! report.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::progress::Progress;
use crate::sync::{SyncError, Syncer};

#[derive(Debug, Clone, Copy)]
pub struct OnceOptions {
    /// Retries per file after the first attempt.
    pub retries: u32,
    /// The whole run's deadline.
    pub timeout: Duration,
    /// First retry delay; doubles up to 30 s, with jitter.
    pub backoff_base: Duration,
}

impl Default for OnceOptions {
    fn default() -> Self {
        OnceOptions {
            retries: 5,
            timeout: Duration::from_secs(300),
            backoff_base: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Ok = 0,
    FetchFailed = 1,
    Denied = 2,
    VerifyFailed = 3,
}

impl RunStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Sync every file once, retrying what may succeed on a later try.
pub async fn run_once(
    syncer: &mut Syncer,
    opts: OnceOptions,
    progress: &dyn Progress,
) -> RunStatus {
    match tokio::time::timeout(opts.timeout, all_files(syncer, opts, progress)).await {
        Ok(status) => status,
        Err(_) => {
            tracing::error!(
                timeout_s = opts.timeout.as_secs(),
                "gave up: overall timeout reached"
            );
            RunStatus::FetchFailed
        }
    }
}

async fn all_files(syncer: &mut Syncer, opts: OnceOptions, progress: &dyn Progress) -> RunStatus {
    let mut status = RunStatus::Ok;
    let names: Vec<String> = syncer.specs().map(|s| s.name.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        let mut backoff = Backoff::new(opts.backoff_base, Duration::from_secs(30));
        loop {
            let attempt = syncer.sync_file(i, progress).await;
            match attempt.result {
                Ok(outcome) => {
                    tracing::info!(file = %name, outcome = outcome.label(), bytes = attempt.bytes, "synced");
                    break;
                }
                Err(err) if err.is_retryable() && backoff.attempts() < opts.retries => {
                    let delay = backoff.next_delay();
                    tracing::warn!(file = %name, error = %err, retry_in_ms = delay.as_millis() as u64,
                        attempt = backoff.attempts(), "sync failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(err) => {
                    tracing::error!(file = %name, error = %err, "sync failed; the previous file, if any, is left in place");
                    let this = match err {
                        SyncError::Verify(_) => RunStatus::VerifyFailed,
                        SyncError::Denied(_) => {
                            // Every other file would meet the same wall.
                            return RunStatus::Denied;
                        }
                        _ => RunStatus::FetchFailed,
                    };
                    if status != RunStatus::VerifyFailed {
                        status = this;
                    }
                    break;
                }
            }
        }
    }
    status
}
