//! What every sync tool does before its first cycle, written once for
//! `kb-init`, `kb-sync-sidecar --once` and the sidecar's loop: read the
//! manifest, install the termination signal handlers, set up the sources
//! and the destination. A configuration error ends the run with
//! [`Exit::Config`], a failure to install the handlers with
//! [`Exit::Failed`].

use std::future::Future;

use fleet_common::exit::Exit;

use crate::cli::SyncArgs;
use crate::sync::Syncer;

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
    let syncer = Syncer::new(&manifest, &args.source_options())
        .await
        .map_err(|err| {
            tracing::error!(error = %format!("{err:#}"), "configuration error");
            Exit::Config
        })?;
    Ok((syncer, shutdown))
}
