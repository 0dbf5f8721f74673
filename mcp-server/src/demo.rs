//! `mcp-server demo`: the whole server from nothing in one command.
//!
//! It builds a knowledge base from this project's own documentation, bundled
//! in the binary, mints an API token, and serves on 127.0.0.1:8080, printing
//! the URL, the token and commands for real MCP clients.

use std::path::PathBuf;

use anyhow::Context;
use fleet_kb::build::{BuildOptions, SourceDoc, build};

use crate::cli::{DemoArgs, LogFormat};
use crate::config::{Config, DataFiles};

/// The documentation bundled into the binary: (path, content).
pub const BUNDLED_DOCS: &[(&str, &str)] = &[
    ("README.md", include_str!("../../README.md")),
    (
        "docs/configuration.md",
        include_str!("../../docs/configuration.md"),
    ),
    (
        "docs/file-formats.md",
        include_str!("../../docs/file-formats.md"),
    ),
    (
        "docs/operations.md",
        include_str!("../../docs/operations.md"),
    ),
    ("docs/sync.md", include_str!("../../docs/sync.md")),
];

/// What the demo set up, for the caller to print and serve.
pub struct Demo {
    pub config: Config,
    pub token: String,
    /// Keeps a temporary data directory alive while the demo runs.
    pub _tempdir: Option<tempfile::TempDir>,
}

/// Build the KB and token into a data directory and return the config to serve.
pub fn prepare(args: &DemoArgs) -> anyhow::Result<Demo> {
    let (dir, tempdir): (PathBuf, _) = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new().prefix("mcp-demo-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let files = DataFiles::in_dir(&dir);
    let docs: Vec<SourceDoc> = BUNDLED_DOCS
        .iter()
        .map(|(path, content)| SourceDoc {
            path: (*path).to_string(),
            content: (*content).to_string(),
        })
        .collect();
    let opts = BuildOptions {
        project: "pg-mcp-fleet".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        built_at: None,
        embed_model: None,
    };
    build(&docs, &files.kb, &opts).context("building the demo knowledge base")?;
    let token = crate::commands::add_token_to_file(
        &files.tokens,
        "demo",
        None,
        None,
        fleet_common::permissions::EntryLists::default(),
    )?;
    // Every setting as `serve` would resolve it, but for what makes it a
    // demo: its own directory, text logs, no drain delay, no databases.
    let mut config = Config::resolve(crate::cli::ServeArgs {
        listen: Some(args.listen.clone()),
        tokens_file: Some(files.tokens.clone()),
        users_file: Some(files.users.clone()),
        session_key_file: Some(files.session_key.clone()),
        kb_file: Some(files.kb.clone()),
        instance_id: Some("demo".into()),
        log_format: Some(LogFormat::Text),
        drain_delay: Some(std::time::Duration::ZERO),
        ..Default::default()
    })?;
    config.databases = Vec::new();
    Ok(Demo {
        config,
        token,
        _tempdir: tempdir,
    })
}

/// The banner printed once the demo listens.
pub fn banner(demo: &Demo) -> String {
    let url = format!("http://{}/mcp", demo.config.listen);
    let token = &demo.token;
    format!(
        "\nmcp-server demo is serving the project's own documentation.\n\n\
         URL:    {url}\n\
         Token:  {token}\n\
         Data:   {dir}\n\n\
         Ask it something with the official Python MCP client:\n\n  \
         python3 -m pip install 'mcp==2.3.0' && python3 examples/mcp_client.py --url {url} --token={token} \"how do I rotate the session key\"\n\n\
         Or with curl:\n\n  \
         curl -s {url} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n    \
         -H 'Accept: application/json, text/event-stream' \\\n    \
         -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"search_knowledgebase\",\"arguments\":{{\"query\":\"hot reload\"}}}}}}'\n\n\
         Press Ctrl-C to stop.\n",
        dir = demo
            .config
            .files
            .kb
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    )
}
