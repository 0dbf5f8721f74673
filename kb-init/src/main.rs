//! `kb-init`: an init container. Fetch the KB and auth files once, verify
//! them, publish them atomically into the shared directory, and exit:
//! 0 all files published, 1 a source could not be fetched after retries,
//! 2 usage or config error, 3 a fetched file failed verification.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fleet_sync::cli::SyncArgs;
use fleet_sync::once::{OnceOptions, run_once};
use fleet_sync::sync::Syncer;

#[derive(Debug, Parser)]
#[command(
    name = "kb-init",
    version,
    about = "Fetch, verify and publish the fleet's files once"
)]
struct Cli {
    #[command(flatten)]
    sync: SyncArgs,
    /// Retries per file after the first attempt (capped exponential backoff with jitter).
    #[arg(long, env = "KB_RETRIES", default_value_t = 5)]
    retries: u32,
    /// Give up on the whole run after this long.
    #[arg(long, env = "KB_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    fleet_common::logging::init(cli.sync.log_format(), "kb-init");
    let manifest = match cli.sync.manifest() {
        Ok(m) => m,
        Err(err) => {
            eprintln!("kb-init: {err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("kb-init: {err}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let mut syncer = match Syncer::new(&manifest, &cli.sync.source_options()).await {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "configuration error");
                return ExitCode::from(2);
            }
        };
        let opts = OnceOptions {
            retries: cli.retries,
            timeout: cli.timeout,
            ..OnceOptions::default()
        };
        let shutdown = match fleet_common::signals::termination_signal() {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(error = %err, "cannot install signal handlers");
                return ExitCode::from(1);
            }
        };
        let progress = fleet_sync::progress::for_stderr();
        tokio::select! {
            status = run_once(&mut syncer, opts, progress.as_ref()) => ExitCode::from(status.code()),
            () = shutdown => {
                // Dropping the run drops any temporary file: nothing half published.
                tracing::warn!("terminated before every file was published");
                ExitCode::from(1)
            }
        }
    })
}
