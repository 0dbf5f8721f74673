//! What every sync tool does before its first cycle, written once for
//! `kb-init`, `kb-sync-sidecar --once` and the sidecar's loop: read the
//! manifest, install the termination signal handlers, set up the sources
//! and the destination. A configuration error ends the run with
//! [`Exit::Config`], a failure to install the handlers with
//! [`Exit::Failed`].

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use fleet_common::exit::Exit;

use crate::cli::SyncArgs;
use crate::sync::Syncer;

/// How long a sync binary waits, once its run has ended, for work on
/// blocking threads (a verification stops at its deadline within
/// milliseconds); nothing else holds up the exit.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Run a sync binary's `main` future on a runtime of its own and end with
/// its exit status, not waiting more than [`EXIT_GRACE`] for blocking work
/// left behind (an init container that ends when its run does, whatever a
/// file it was verifying holds).
pub fn run_main(binary: &str, main: impl Future<Output = Exit>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let exit = runtime.block_on(main);
            runtime.shutdown_timeout(EXIT_GRACE);
            exit.into()
        }
        Err(err) => {
            eprintln!("{binary}: {err}");
            Exit::Failed.into()
        }
    }
}

/// A syncer ready for its first cycle, and the future that completes on
/// SIGTERM or SIGINT (installed before anything else starts).
pub async fn start(args: &SyncArgs) -> Result<(Syncer, impl Future<Output = ()>), Exit> {
    let manifest = args.manifest().map_err(|err| {
        tracing::error!(error = %format!("{err:#}"), "configuration error");
        Exit::Config
    })?;
    let shutdown = fleet_common::signals::termination_signal().map_err(|err| {
        tracing::error!(error = %err, "cannot install signal handlers");
        Exit::Failed
    })?;
    let mut syncer = Syncer::new(&manifest, &args.source_options())
        .await
        .map_err(|err| {
            tracing::error!(error = %format!("{err:#}"), "configuration error");
            Exit::Config
        })?;
    syncer.verify_timeout = args.verify_timeout;
    Ok((syncer, shutdown))
}
