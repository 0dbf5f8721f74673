//! One complete sync of every file, with retries: what `kb-init` does, and
//! `kb-sync-sidecar --once`.
//!
//! Exit status ([`Exit`]): 0 every file is published and current; 1 a
//! source could not be fetched after the retries or within the overall
//! timeout; 2 a usage or configuration error, or a destination that cannot
//! be written (permission denied, read-only, a path leading out of it: a
//! local, permanent error, reported at once); 3 a fetched file failed
//! verification (a bad file is never published, so retrying it would not
//! help).

use std::time::Duration;

use fleet_common::exit::Exit;

use crate::backoff::Backoff;
use crate::cli::SyncArgs;
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

/// The whole one-shot run of `kb-init` and `kb-sync-sidecar --once`, from
/// their flags to their exit status; SIGTERM or SIGINT ends it with
/// [`Exit::Failed`] and nothing half published.
pub async fn run(args: &SyncArgs, opts: OnceOptions) -> Exit {
    let (mut syncer, shutdown) = match crate::start::start(args).await {
        Ok(started) => started,
        Err(exit) => return exit,
    };
    let progress = crate::progress::for_stderr();
    tokio::select! {
        status = run_once(&mut syncer, opts, progress.as_ref()) => status,
        () = shutdown => {
            // Dropping the run drops any temporary file: nothing half published.
            tracing::warn!("terminated before every file was published");
            Exit::Failed
        }
    }
}

/// Sync every file once, retrying what may succeed on a later try.
pub async fn run_once(syncer: &mut Syncer, opts: OnceOptions, progress: &dyn Progress) -> Exit {
    // The verifications on blocking threads give up at the same time as
    // the run: nothing outlives --timeout.
    syncer.until = fleet_common::deadline::Deadline::after(opts.timeout, "--timeout");
    match tokio::time::timeout(opts.timeout, all_files(syncer, opts, progress)).await {
        Ok(status) => status,
        Err(_) => {
            tracing::error!(
                timeout_s = opts.timeout.as_secs(),
                "gave up: overall timeout reached"
            );
            Exit::Failed
        }
    }
}

async fn all_files(syncer: &mut Syncer, opts: OnceOptions, progress: &dyn Progress) -> Exit {
    let mut status = Exit::Ok;
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
                        SyncError::Verify(_) => Exit::Invalid,
                        // Every other file would meet the same wall.
                        SyncError::Denied(_) => return Exit::Config,
                        _ => Exit::Failed,
                    };
                    status = status.worst(this);
                    break;
                }
            }
        }
    }
    status
}
