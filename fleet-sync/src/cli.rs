//! Flags both sync binaries take: what to sync, and how to reach sources.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use fleet_common::logging::LogFormat;

use crate::manifest::Manifest;
use crate::source::SourceOptions;

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// Sync manifest (YAML): dest_dir and files.
    #[arg(long, env = "KB_CONFIG", conflicts_with_all = ["dest", "files"])]
    pub config: Option<PathBuf>,
    /// Destination directory, with --file instead of a manifest.
    #[arg(long, env = "KB_DEST")]
    pub dest: Option<PathBuf>,
    /// NAME=SOURCE, repeatable; SOURCE is s3://, gs://, az://, https://, http:// or file://.
    #[arg(long = "file", value_name = "NAME=SOURCE")]
    pub files: Vec<String>,
    /// Timeout of one request to a source (connect, and each read).
    #[arg(long = "request-timeout", env = "KB_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Give up on verifying one fetched file (and preparing a KB's search
    /// index) after this long: the file is refused, as one that fails.
    #[arg(long = "verify-timeout", env = "KB_VERIFY_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub verify_timeout: Duration,
    /// Address S3 buckets path-style (most S3-compatible stores need this).
    #[arg(long, env = "KB_S3_PATH_STYLE")]
    pub s3_path_style: bool,
    /// Log format [default: text on a terminal, json otherwise].
    #[arg(long, env = "KB_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

impl SyncArgs {
    pub fn manifest(&self) -> anyhow::Result<Manifest> {
        match (&self.config, &self.dest) {
            (Some(path), _) => Manifest::from_file(path),
            (None, Some(dest)) => Manifest::from_flags(dest.clone(), &self.files),
            (None, None) => bail!("give --config FILE, or --dest DIR with --file NAME=SOURCE"),
        }
    }

    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            timeout: self.request_timeout,
            s3_path_style: self.s3_path_style,
        }
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format
            .unwrap_or_else(fleet_common::logging::default_format)
    }
}
