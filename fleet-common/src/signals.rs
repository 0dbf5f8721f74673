//! Termination signals as a future, for every binary's shutdown path, and
//! as a flag ([`terminating`]) that blocking work (an SQLite statement
//! under a [`crate::deadline::Deadline`]) looks at to stop early.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a SIGTERM or SIGINT has arrived.
static TERMINATING: AtomicBool = AtomicBool::new(false);

/// Whether a termination signal has arrived (only once
/// [`termination_signal`] listens for them).
pub fn terminating() -> bool {
    TERMINATING.load(Ordering::Acquire)
}

/// A future that completes on the first SIGTERM or SIGINT, which also sets
/// [`terminating`]. The handler is installed when this is called, so call
/// it early.
pub fn termination_signal() -> std::io::Result<impl Future<Output = ()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                TERMINATING.store(true, Ordering::Release);
                tracing::info!(signal = sig, "termination signal received");
                let _ = tx.send(());
            }
        })?;
    Ok(async move {
        let _ = rx.await;
    })
}
