//! `kb-sync-sidecar` binary: parse flags, run the loop (or one cycle, or a
//! push), stop cleanly on SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fleet_common::exit::Exit;
use fleet_sync::cli::SyncArgs;
use fleet_sync::once::{self, OnceOptions};
use kb_sync_sidecar::engine::{self, LoopOptions, Status};

#[derive(Debug, Parser)]
#[command(
    name = "kb-sync-sidecar",
    version,
    about = "Keep the fleet's files current",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sync: SyncArgs,
    /// Time between checks of each file.
    #[arg(long, env = "KB_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Random spread of the interval, e.g. 10%.
    #[arg(long, env = "KB_JITTER", default_value = "10%", value_parser = parse_percent)]
    jitter: f64,
    /// Serve /healthz, /readyz and /metrics here.
    #[arg(long, env = "KB_LISTEN")]
    listen: Option<SocketAddr>,
    /// Run one cycle with retries and exit like kb-init (0, 1, 2, 3): the CI mode.
    #[arg(long)]
    once: bool,
    /// With --once: retries per file.
    #[arg(long, env = "KB_RETRIES", default_value_t = 5)]
    retries: u32,
    /// With --once: give up after this long.
    #[arg(long, env = "KB_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify local files, then upload each with its sha256 in the metadata.
    Push {
        /// LOCAL=DEST_URL, repeatable (s3://, gs://, az://, https://ACCOUNT.blob.core.windows.net/... or file://).
        #[arg(long = "file", value_name = "LOCAL=DEST_URL", required = true)]
        files: Vec<String>,
        /// Timeout of one request.
        #[arg(long = "request-timeout", env = "KB_REQUEST_TIMEOUT", default_value = "300s", value_parser = humantime::parse_duration)]
        request_timeout: Duration,
        #[arg(long, env = "KB_S3_PATH_STYLE")]
        s3_path_style: bool,
    },
    /// Ask the running sidecar's /healthz and /readyz over loopback: exit 0
    /// when both answer 200, 1 otherwise. For container health checks in an
    /// image without a shell.
    Healthcheck {
        /// The sidecar's --listen address; an unspecified address (0.0.0.0,
        /// [::]) is probed on loopback.
        #[arg(long, env = "KB_LISTEN", required = true)]
        listen: String,
        /// A path that must answer 200; repeat to probe several.
        #[arg(long = "path", value_name = "PATH", default_values = ["/healthz", "/readyz"])]
        paths: Vec<String>,
        /// Give up on a path after this long.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage like 10%"))?;
    let v = v / scale;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?} must be between 0% and 100%"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck {
        listen,
        paths,
        timeout,
    }) = &cli.command
    {
        return fleet_common::local_probe::healthcheck(listen, paths, *timeout).into();
    }
    fleet_common::logging::init(cli.sync.log_format(), "kb-sync-sidecar");
    fleet_sync::start::run_main("kb-sync-sidecar", run(cli))
}

async fn run(cli: Cli) -> Exit {
    if let Some(Command::Push {
        files,
        request_timeout,
        s3_path_style,
    }) = &cli.command
    {
        let items = match kb_sync_sidecar::push::parse_items(files) {
            Ok(i) => i,
            Err(err) => {
                tracing::error!(error = %err, "usage");
                return Exit::Config;
            }
        };
        let opts = fleet_sync::source::SourceOptions {
            timeout: *request_timeout,
            s3_path_style: *s3_path_style,
        };
        return kb_sync_sidecar::push::push(&items, &opts).await;
    }
    if cli.once {
        let opts = OnceOptions {
            retries: cli.retries,
            timeout: cli.timeout,
            ..OnceOptions::default()
        };
        return once::run(&cli.sync, opts).await;
    }
    let (syncer, shutdown) = match fleet_sync::start::start(&cli.sync).await {
        Ok(started) => started,
        Err(exit) => return exit,
    };
    let progress = fleet_sync::progress::for_stderr();
    let opts = LoopOptions {
        interval: cli.interval,
        jitter: cli.jitter,
    };
    let names = syncer.specs().map(|s| s.name.clone()).collect();
    let status = Status::new(
        names,
        &opts,
        cli.sync.request_timeout,
        cli.sync.verify_timeout,
    );
    if let Some(addr) = cli.listen {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(err) => {
                tracing::error!(%addr, error = %err, "cannot listen");
                return Exit::Config;
            }
        };
        tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
        tokio::spawn(kb_sync_sidecar::http::serve(listener, status.clone()));
    }
    tokio::select! {
        () = engine::run(syncer, status, opts, progress) => Exit::Ok,
        () = shutdown => {
            // Dropping the loop abandons any download in flight; its temporary
            // file is removed with it, so nothing is half published.
            tracing::info!("stopping");
            Exit::Ok
        }
    }
}
