//! `kb-sync-sidecar`: keep the fleet's files current in a loop.
//!
//! Command-line skeleton: the sync loop arrives with the sync work (see the
//! README); until then it refuses to run (exit 2).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "kb-sync-sidecar",
    version,
    about = "Keep the fleet's files current"
)]
struct Cli {
    /// Sync manifest (YAML).
    #[arg(long, env = "KB_CONFIG")]
    config: Option<PathBuf>,
    /// Destination directory (instead of a manifest).
    #[arg(long, env = "KB_DEST")]
    dest: Option<PathBuf>,
    /// NAME=SOURCE, repeatable (s3://, https://, http://, file://).
    #[arg(long = "file")]
    files: Vec<String>,
    /// Run one cycle and exit like kb-init.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!("kb-sync-sidecar: not implemented in this release");
    ExitCode::from(2)
}
