//! `kb-init`: fetch the KB and auth files once, verify, publish atomically.
//!
//! Command-line skeleton: the fetch, verify and publish cycle arrives with the
//! sync work (see the README); until then it refuses to run (exit 2).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "kb-init",
    version,
    about = "Fetch, verify and publish the fleet's files once"
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
}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!("kb-init: not implemented in this release");
    ExitCode::from(2)
}
