//! `baseline-server`: the least an HTTP/1.1 JSON server can do on this
//! machine, as the yardstick for `mcp-server`.
//!
//! Plain hyper 1 on a multi-threaded tokio runtime (like the real server),
//! keep-alive on, `TCP_NODELAY` on every connection. Every request's body is
//! read and answered with the same fixed JSON body, shaped and sized like
//! the real server's `tools/list` reply, with `Content-Type:
//! application/json`. No routing, no auth, no parsing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A snapshot of the real server's `tools/list` reply (1,059 bytes), taken
/// when it had one tool.
const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_knowledgebase","description":"Search the documentation knowledge base (full-text, BM25-ranked). Filter with project_names / project_versions; set list_products=true to see which products and versions are available.","inputSchema":{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"list_products":{"default":null,"description":"List the products and versions in the knowledge base instead of searching.","type":["boolean","null"]},"project_names":{"default":null,"description":"Only these products (see list_products).","items":{"type":"string"},"type":["array","null"]},"project_versions":{"default":null,"description":"Only these product versions.","items":{"type":"string"},"type":["array","null"]},"query":{"default":null,"description":"What to look for, in natural language or keywords.","type":["string","null"]},"top_n":{"default":null,"description":"How many results (default 5, at most 20).","format":"uint32","minimum":0,"type":["integer","null"]}},"type":"object"}}]}}"#;

#[derive(Debug, Parser)]
#[command(
    name = "baseline-server",
    about = "Minimal hyper server answering a fixed JSON body"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    bench::exit_with(real_main())
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(serve(args.listen))
}

async fn serve(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("baseline-server: listening on {addr}");
    let body = Bytes::from_static(BODY.as_bytes());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(err) => {
                eprintln!("baseline-server: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let body = body.clone();
                async move {
                    // Read the request like a real server would; ignore it.
                    let _ = req.into_body().collect().await;
                    let mut resp = Response::new(Full::new(body));
                    resp.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
