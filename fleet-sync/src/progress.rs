//! Download progress: a progress bar on a terminal, log lines otherwise.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Told about each download as it streams.
pub trait Progress: Send + Sync {
    fn begin(&self, name: &str, total: Option<u64>);
    fn advance(&self, bytes: u64);
    fn end(&self);
}

/// Says nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

/// Downloads smaller than this get no progress output.
const LARGE: u64 = 8 << 20;
/// Log-line progress is reported this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A bar when stderr is a terminal, a log line every 10 s otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        Box::new(Bar(Mutex::new(None)))
    } else {
        Box::new(Lines(Mutex::new(None)))
    }
}

struct Bar(Mutex<Option<ProgressBar>>);

impl Progress for Bar {
    fn begin(&self, name: &str, total: Option<u64>) {
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        let style = ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(name.to_string());
        if let Ok(mut b) = self.0.lock() {
            *b = Some(bar);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(b) = self.0.lock()
            && let Some(bar) = b.as_ref()
        {
            bar.inc(bytes);
        }
    }
    fn end(&self) {
        if let Ok(mut b) = self.0.lock()
            && let Some(bar) = b.take()
        {
            bar.finish_and_clear();
        }
    }
}

struct LineState {
    name: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last: Instant,
}

struct Lines(Mutex<Option<LineState>>);

impl Progress for Lines {
    fn begin(&self, name: &str, total: Option<u64>) {
        if let Ok(mut s) = self.0.lock() {
            let now = Instant::now();
            *s = Some(LineState {
                name: name.to_string(),
                total,
                done: 0,
                started: now,
                last: now,
            });
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(mut s) = self.0.lock()
            && let Some(st) = s.as_mut()
        {
            st.done += bytes;
            if st.last.elapsed() >= LOG_EVERY && st.total.is_none_or(|t| t >= LARGE) {
                st.last = Instant::now();
                tracing::info!(file = %st.name, bytes = st.done, total = st.total, "downloading");
            }
        }
    }
    fn end(&self) {
        if let Ok(mut s) = self.0.lock()
            && let Some(st) = s.take()
            && st.done >= LARGE
        {
            let secs = st.started.elapsed().as_secs_f64().max(1e-6);
            tracing::info!(file = %st.name, bytes = st.done, mib_per_s = (st.done as f64 / secs / 1048576.0).round(), "downloaded");
        }
    }
}
