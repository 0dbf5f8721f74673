//! The sync loop: every file on its own schedule, forever.
//!
//! After a good cycle a file is next due after the interval with jitter;
//! after a failed one, after a capped exponential backoff. A source that is
//! down never stops the loop or the process: the last good file stays
//! published, `/readyz` stays green, and the failure shows in `/healthz`'s
//! body and the metrics until the source is back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet_sync::backoff::{Backoff, jittered};
use fleet_sync::progress::Progress;
use fleet_sync::sync::Syncer;
use serde_json::json;

use crate::metrics::{FileLabel, Metrics, OutcomeLabels};

#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    pub interval: Duration,
    /// Fraction of the interval, e.g. 0.1 for ±10%.
    pub jitter: f64,
}

/// What the loop knows of one file.
#[derive(Debug, Clone, Default)]
struct FileState {
    published: bool,
    last_success_unix: Option<f64>,
    last_outcome: Option<String>,
    last_error: Option<String>,
    consecutive_failures: u32,
}

/// Shared between the loop and the HTTP endpoints.
pub struct Status {
    files: Mutex<Vec<(String, FileState)>>,
    last_progress: Mutex<Instant>,
    /// When the file cycle under way began, if one is.
    busy_since: Mutex<Option<Instant>>,
    /// Longest the loop may go without finishing a cycle before /healthz fails.
    stall_after: Duration,
    /// Longest one file's cycle may take before /healthz fails: a stall,
    /// plus `--verify-timeout` for a large KB's verification.
    cycle_limit: Duration,
    pub metrics: Metrics,
}

impl Status {
    pub fn new(
        names: Vec<String>,
        opts: &LoopOptions,
        request_timeout: Duration,
        verify_timeout: Duration,
    ) -> Arc<Status> {
        let stall_after = opts.interval * 3 + request_timeout * 4 + Duration::from_secs(60);
        Arc::new(Status {
            files: Mutex::new(
                names
                    .into_iter()
                    .map(|n| (n, FileState::default()))
                    .collect(),
            ),
            last_progress: Mutex::new(Instant::now()),
            busy_since: Mutex::new(None),
            stall_after,
            cycle_limit: stall_after + verify_timeout,
            metrics: Metrics::new(),
        })
    }

    /// Every file has a valid published version.
    pub fn ready(&self) -> bool {
        self.files
            .lock()
            .map(|f| f.iter().all(|(_, s)| s.published))
            .unwrap_or(false)
    }

    /// The loop finished a file's cycle recently, or is in one that has not
    /// run for longer than a cycle may (a KB's verification may take up to
    /// `--verify-timeout`).
    pub fn live(&self) -> bool {
        if let Ok(busy) = self.busy_since.lock()
            && let Some(since) = *busy
        {
            return since.elapsed() < self.cycle_limit;
        }
        self.last_progress
            .lock()
            .map(|t| t.elapsed() < self.stall_after)
            .unwrap_or(false)
    }

    fn busy(&self, on: bool) {
        if let Ok(mut busy) = self.busy_since.lock() {
            *busy = on.then(Instant::now);
        }
    }

    pub fn report(&self) -> serde_json::Value {
        let files = self.files.lock().map(|f| f.clone()).unwrap_or_default();
        json!({
            "ready": files.iter().all(|(_, s)| s.published),
            "live": self.live(),
            "files": files.iter().map(|(name, s)| (name.clone(), json!({
                "published": s.published,
                "last_success_unix": s.last_success_unix,
                "last_outcome": s.last_outcome,
                "last_error": s.last_error,
                "consecutive_failures": s.consecutive_failures,
            }))).collect::<serde_json::Map<_, _>>(),
        })
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut FileState)) {
        if let Ok(mut files) = self.files.lock()
            && let Some((_, s)) = files.get_mut(i)
        {
            f(s);
        }
    }

    fn tick(&self) {
        if let Ok(mut t) = self.last_progress.lock() {
            *t = Instant::now();
        }
    }
}

/// Run forever (until the future is dropped).
pub async fn run(
    mut syncer: Syncer,
    status: Arc<Status>,
    opts: LoopOptions,
    progress: Box<dyn Progress>,
) {
    let n = syncer.len();
    let names: Vec<String> = syncer.specs().map(|s| s.name.clone()).collect();
    let mut due = vec![Instant::now(); n];
    let mut backoffs: Vec<Backoff> = (0..n)
        .map(|_| {
            Backoff::new(
                Duration::from_secs(1),
                opts.interval.max(Duration::from_secs(1)),
            )
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        let published = syncer.is_published(i);
        status.update(i, |s| s.published = published);
        status
            .metrics
            .published
            .get_or_create(&FileLabel { file: name.clone() })
            .set(i64::from(published));
    }
    loop {
        for i in 0..n {
            if Instant::now() < due[i] {
                continue;
            }
            status.busy(true);
            let attempt = syncer.sync_file(i, progress.as_ref()).await;
            status.busy(false);
            status.tick();
            let file = names[i].clone();
            status
                .metrics
                .bytes
                .get_or_create(&FileLabel { file: file.clone() })
                .inc_by(attempt.bytes);
            match attempt.result {
                Ok(outcome) => {
                    let now = unix_now();
                    backoffs[i].reset();
                    due[i] = Instant::now() + jittered(opts.interval, opts.jitter);
                    status.update(i, |s| {
                        s.published = true;
                        s.last_success_unix = Some(now);
                        s.last_outcome = Some(outcome.label().to_string());
                        s.last_error = None;
                        s.consecutive_failures = 0;
                    });
                    let label = OutcomeLabels {
                        file: file.clone(),
                        outcome: outcome.label().to_string(),
                    };
                    status.metrics.syncs.get_or_create(&label).inc();
                    status
                        .metrics
                        .last_success
                        .get_or_create(&FileLabel { file: file.clone() })
                        .set(now);
                    status
                        .metrics
                        .published
                        .get_or_create(&FileLabel { file: file.clone() })
                        .set(1);
                    if outcome.bytes() > 0 {
                        tracing::info!(file = %file, outcome = outcome.label(), bytes = outcome.bytes(), "synced");
                    } else {
                        tracing::debug!(file = %file, outcome = outcome.label(), "synced");
                    }
                }
                Err(err) => {
                    let delay = backoffs[i].next_delay();
                    due[i] = Instant::now() + delay;
                    let message = err.to_string();
                    status.update(i, |s| {
                        s.last_outcome = Some(err.label().to_string());
                        s.last_error = Some(message.clone());
                        s.consecutive_failures += 1;
                    });
                    let label = OutcomeLabels {
                        file: file.clone(),
                        outcome: err.label().to_string(),
                    };
                    status.metrics.syncs.get_or_create(&label).inc();
                    tracing::warn!(file = %file, error = %message, retry_in_ms = delay.as_millis() as u64,
                        "sync failed; the published file stays as it is");
                }
            }
        }
        status.tick();
        let next = due.iter().min().copied().unwrap_or_else(Instant::now);
        tokio::time::sleep_until(next.into()).await;
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's cycle under way (a large KB's verification) keeps
    /// `/healthz` green for as long as a cycle may take, not for ever; a
    /// loop doing nothing goes red once it has stalled.
    #[test]
    fn liveness_allows_a_cycle_its_verification_time() {
        let status = Status {
            files: Mutex::new(Vec::new()),
            last_progress: Mutex::new(Instant::now()),
            busy_since: Mutex::new(None),
            stall_after: Duration::from_millis(30),
            cycle_limit: Duration::from_millis(300),
            metrics: Metrics::new(),
        };
        assert!(status.live());
        status.busy(true);
        std::thread::sleep(Duration::from_millis(60));
        assert!(status.live(), "verifying, within the cycle limit");
        std::thread::sleep(Duration::from_millis(300));
        assert!(!status.live(), "a cycle past its limit is a stall");
        status.busy(false);
        status.tick();
        assert!(status.live());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!status.live(), "no cycle finished for longer than a stall");
    }
}
