//! `mcp-server` binary: parses the command line and hands off to the library.

use std::process::ExitCode;

use clap::Parser;
use fleet_common::exit::Exit;
use fleet_common::logging;
use mcp_server::cli::{Cli, Command, KbCommand, TokenCommand, UserCommand};
use mcp_server::{commands, config, demo};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => config::Config::resolve(*args).and_then(|cfg| {
            logging::init(cfg.log_format, &cfg.instance_id);
            serve(mcp_server::run(cfg, |_| {}))
        }),
        Command::Demo(args) => demo::prepare(&args).and_then(|d| {
            logging::init(d.config.log_format, &d.config.instance_id);
            let banner = demo::banner(&d);
            let result = serve(mcp_server::run(d.config.clone(), |_| eprintln!("{banner}")));
            drop(d);
            result
        }),
        Command::Kb(KbCommand::Build(args)) => commands::kb_build(args),
        Command::Token(TokenCommand::Add(args)) => commands::token_add(args),
        Command::Token(TokenCommand::List(args)) => commands::token_list(args),
        Command::Token(TokenCommand::Revoke(args)) => commands::token_revoke(args),
        Command::User(UserCommand::Add(args)) => commands::user_add(args),
        Command::Check(args) => return commands::check(args),
        Command::Healthcheck(args) => {
            return fleet_common::local_probe::healthcheck(&args.listen, &args.paths, args.timeout)
                .into();
        }
    };
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            Exit::Config.into()
        }
    }
}

/// Run the server on a new runtime. Once it has stopped, work still on the
/// runtime's blocking threads (a search or login past its request) gets a
/// moment to end and is then abandoned: the process exits on time.
fn serve(server: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(server);
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
