//! Termination signals as a future, for every binary's shutdown path.

use std::future::Future;

/// A future that completes on the first SIGTERM or SIGINT. The handler is
/// installed when this is called, so call it early.
pub fn termination_signal() -> std::io::Result<impl Future<Output = ()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(signal = sig, "termination signal received");
                let _ = tx.send(());
            }
        })?;
    Ok(async move {
        let _ = rx.await;
    })
}
