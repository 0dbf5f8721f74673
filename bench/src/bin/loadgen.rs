//! `loadgen`: a closed-loop HTTP/1.1 load generator.
//!
//! `--concurrency` workers each hold one keep-alive connection (hyper's
//! http1 client) and send one request at a time, the next as soon as the
//! previous reply is fully read. After `--warmup`, every request that starts
//! and completes inside the `--duration` window has its latency recorded in
//! an HdrHistogram (microseconds). One JSON line goes to stdout.
//!
//! With several `--body-file`s, each worker rotates through them (worker `i`
//! starts at body `i`), so the mix is even. A reply counts as an error when
//! its status is not 2xx, when it carries `"isError": true` (an MCP tool
//! error) or a JSON-RPC `error`, or when the connection fails or times out
//! (the worker then reconnects).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bench::reply::{Outcome, classify};
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Closed-loop HTTP/1.1 load generator")]
struct Args {
    /// Target, e.g. http://127.0.0.1:8080/mcp (http only).
    #[arg(long)]
    url: String,
    /// Extra request header `Name: value`; repeatable.
    #[arg(long = "header", value_name = "K:V")]
    headers: Vec<String>,
    /// Request body (POST); repeatable, requests rotate through them.
    /// Without one, requests are GETs.
    #[arg(long = "body-file", value_name = "F")]
    body_files: Vec<PathBuf>,
    /// Concurrent workers, one connection each.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured window.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured run before the window.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Per-request timeout; a timed-out request is an error and its
    /// connection is replaced.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Runtime threads of the load generator (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// What every worker shares.
struct Plan {
    addr: String,
    authority: HeaderValue,
    path: Uri,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    bodies: Vec<Bytes>,
    measure_from: Instant,
    end: Instant,
    timeout: Duration,
}

/// One worker's tallies.
struct Tally {
    hist: Histogram<u64>,
    warmup_requests: u64,
    /// Every completed exchange, in or out of the window.
    total_requests: u64,
    errors: u64,
    status: BTreeMap<String, u64>,
    kinds: BTreeMap<&'static str, u64>,
    connects: u64,
    bytes: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Result<Tally> {
        Ok(Tally {
            hist: Histogram::new_with_bounds(1, 120_000_000, 3)
                .context("creating the histogram")?,
            warmup_requests: 0,
            total_requests: 0,
            errors: 0,
            status: BTreeMap::new(),
            kinds: BTreeMap::new(),
            connects: 0,
            bytes: 0,
            first_error: None,
        })
    }

    fn error(&mut self, kind: &'static str, detail: impl FnOnce() -> String) {
        self.errors += 1;
        *self.kinds.entry(kind).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(detail());
        }
    }

    fn merge(&mut self, other: Tally) -> Result<()> {
        self.hist.add(&other.hist).context("merging histograms")?;
        self.warmup_requests += other.warmup_requests;
        self.total_requests += other.total_requests;
        self.errors += other.errors;
        for (k, v) in other.status {
            *self.status.entry(k).or_default() += v;
        }
        for (k, v) in other.kinds {
            *self.kinds.entry(k).or_default() += v;
        }
        self.connects += other.connects;
        self.bytes += other.bytes;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    bench::exit_with(real_main())
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    ensure!(args.threads > 0, "--threads must be at least 1");
    ensure!(!args.duration.is_zero(), "--duration must be positive");
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

fn parse_header(spec: &str) -> Result<(HeaderName, HeaderValue)> {
    let Some((k, v)) = spec.split_once(':') else {
        bail!("header {spec:?} is not `Name: value`");
    };
    let name = HeaderName::from_bytes(k.trim().as_bytes())
        .with_context(|| format!("bad header name in {spec:?}"))?;
    let value =
        HeaderValue::from_str(v.trim()).with_context(|| format!("bad header value in {spec:?}"))?;
    Ok((name, value))
}

async fn run(args: Args) -> Result<()> {
    let uri: Uri = args
        .url
        .parse()
        .with_context(|| format!("bad --url {:?}", args.url))?;
    ensure!(
        uri.scheme_str() == Some("http"),
        "--url must be http://HOST:PORT/PATH"
    );
    let authority = uri.authority().context("--url has no host")?.clone();
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let path: Uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .context("bad --url path")?;
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>>>()?;
    let mut bodies = Vec::new();
    for f in &args.body_files {
        let bytes =
            std::fs::read(f).with_context(|| format!("reading body file {}", f.display()))?;
        bodies.push(Bytes::from(bytes));
    }
    let method = if bodies.is_empty() {
        bodies.push(Bytes::new());
        Method::GET
    } else {
        Method::POST
    };
    let start = Instant::now();
    let plan = Arc::new(Plan {
        addr,
        authority: HeaderValue::from_str(authority.as_str()).context("bad --url authority")?,
        path,
        method,
        headers,
        bodies,
        measure_from: start + args.warmup,
        end: start + args.warmup + args.duration,
        timeout: args.timeout,
    });

    let mut tasks = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        tasks.push(tokio::spawn(worker(i, plan.clone())));
    }
    let mut total = Tally::new()?;
    for t in tasks {
        let tally = t.await.context("a worker panicked")??;
        total.merge(tally)?;
    }
    let elapsed = args.duration.as_secs_f64();
    let h = &total.hist;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    // Errors are counted only inside the window and are not in the
    // histogram: requests = successes + errors.
    let requests = h.len() + total.errors;
    let out = json!({
        "requests": requests,
        "errors": total.errors,
        "rps": round2(requests as f64 / elapsed),
        "p50_ms": round3(ms(0.50)),
        "p90_ms": round3(ms(0.90)),
        "p99_ms": round3(ms(0.99)),
        "p999_ms": round3(ms(0.999)),
        "max_ms": round3(h.max() as f64 / 1000.0),
        "mean_ms": round3(h.mean() / 1000.0),
        "status_counts": total.status,
        "error_kinds": total.kinds,
        "warmup_requests": total.warmup_requests,
        "total_requests": total.total_requests,
        "connections": total.connects,
        "bytes_per_reply": if h.is_empty() { 0 } else { total.bytes / h.len() },
        "concurrency": args.concurrency,
        "duration_s": elapsed,
    });
    if let Some(e) = &total.first_error {
        eprintln!("loadgen: first error: {e}");
    }
    println!("{out}");
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn connect(plan: &Plan) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(&plan.addr)
        .await
        .with_context(|| format!("connecting to {}", plan.addr))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn build_request(plan: &Plan, i: usize) -> Result<Request<Full<Bytes>>> {
    let mut req = Request::builder()
        .method(plan.method.clone())
        .uri(plan.path.clone())
        .body(Full::new(plan.bodies[i % plan.bodies.len()].clone()))
        .context("building the request")?;
    let h = req.headers_mut();
    h.insert(hyper::header::HOST, plan.authority.clone());
    for (k, v) in &plan.headers {
        h.insert(k.clone(), v.clone());
    }
    Ok(req)
}

/// Send one request on `sender` and read the whole reply.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(u16, Bytes)> {
    sender.ready().await.context("connection not ready")?;
    let resp = sender.send_request(req).await.context("sending")?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the reply")?
        .to_bytes();
    Ok((status, body))
}

async fn worker(id: usize, plan: Arc<Plan>) -> Result<Tally> {
    let mut t = Tally::new()?;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut next_body = id;
    loop {
        let started = Instant::now();
        if started >= plan.end {
            break;
        }
        let in_window = started >= plan.measure_from;
        let s = match &mut sender {
            Some(s) => s,
            None => match connect(&plan).await {
                Ok(s) => {
                    t.connects += 1;
                    sender.insert(s)
                }
                Err(err) => {
                    if in_window {
                        t.error("connect", || format!("{err:#}"));
                        *t.status.entry("connect_error".into()).or_default() += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let req = build_request(&plan, next_body)?;
        next_body += 1;
        let started = Instant::now();
        let result = tokio::time::timeout(plan.timeout, exchange(s, req)).await;
        let done = Instant::now();
        t.total_requests += 1;
        let in_window = started >= plan.measure_from && done <= plan.end;
        if !in_window {
            if started < plan.measure_from {
                t.warmup_requests += 1;
            }
            if !matches!(result, Ok(Ok(_))) {
                sender = None;
            }
            continue;
        }
        match result {
            Ok(Ok((status, body))) => {
                *t.status.entry(status.to_string()).or_default() += 1;
                if !(200..300).contains(&status) {
                    t.error("status", || {
                        format!("HTTP {status}: {}", String::from_utf8_lossy(&body))
                    });
                    continue;
                }
                match classify(&body) {
                    Outcome::Ok => {
                        let us = (done - started).as_micros().max(1) as u64;
                        t.hist.saturating_record(us);
                        t.bytes += body.len() as u64;
                    }
                    Outcome::ToolError => t.error("tool_error", || {
                        format!("tool error: {}", String::from_utf8_lossy(&body))
                    }),
                    Outcome::RpcError => t.error("rpc_error", || {
                        format!("JSON-RPC error: {}", String::from_utf8_lossy(&body))
                    }),
                }
            }
            Ok(Err(err)) => {
                *t.status.entry("io_error".into()).or_default() += 1;
                t.error("io", || format!("{err:#}"));
                sender = None;
            }
            Err(_) => {
                *t.status.entry("timeout".into()).or_default() += 1;
                t.error("timeout", || format!("no reply within {:?}", plan.timeout));
                sender = None;
            }
        }
    }
    Ok(t)
}
