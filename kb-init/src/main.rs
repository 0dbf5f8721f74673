//! `kb-init`: an init container. Fetch the KB and auth files once, verify
//! them, publish them atomically into the shared directory, and exit with
//! one of [`fleet_common::exit::Exit`]'s statuses: 0 all files published, 1 a source could not
//! be fetched after retries, 2 usage or config error (or a destination it
//! can never write), 3 a fetched file failed verification. The run itself
//! is [`once::run`], shared with `kb-sync-sidecar --once`; it ends with the
//! run, even while a file's verification is giving up
//! ([`fleet_sync::start::run_main`]).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fleet_sync::cli::SyncArgs;
use fleet_sync::once::{self, OnceOptions};

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
    let opts = OnceOptions {
        retries: cli.retries,
        timeout: cli.timeout,
        ..OnceOptions::default()
    };
    fleet_sync::start::run_main("kb-init", once::run(&cli.sync, opts))
}
