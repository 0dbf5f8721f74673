//! The listener: accepts connections, serves them with hyper, and shuts down
//! in order.
//!
//! Start-up binds first and serves `/livez` and a 503 `/health` while the data
//! files load, so orchestrators can tell "starting" from "dead". Shutdown
//! marks the instance draining (health turns 503), keeps serving for the drain
//! delay so load balancers take it out of rotation, stops accepting without
//! resetting a queued connection ([`crate::listener`]), and waits for in-flight
//! requests up to the shutdown timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use fleet_common::conn::{ConnLimits, DeadlineIo};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::ShutdownTimings;
use crate::data::{DataFile, load};
use crate::state::{AppState, Phase};

/// Bind the configured address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// How long start-up waits for the first load of every file. A file still
/// loading after that (storage that hangs) keeps loading in the background
/// while the server serves what did load, reporting not ready until the
/// required files are in.
pub const FIRST_LOAD_WAIT: Duration = Duration::from_secs(60);

/// Load every data file once, each on its own thread, and wait for them (up
/// to [`FIRST_LOAD_WAIT`]). A missing or invalid file is recorded in its
/// status; the server serves what did load.
pub async fn load_all(state: &Arc<AppState>) {
    let (tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let started = DataFile::ALL
        .into_iter()
        .filter(|&f| load::spawn_load(state, f, Some(tx.clone())))
        .count();
    drop(tx);
    let all = async {
        for _ in 0..started {
            if done.recv().await.is_none() {
                break;
            }
        }
    };
    if tokio::time::timeout(FIRST_LOAD_WAIT, all).await.is_err() {
        tracing::warn!(
            wait_s = FIRST_LOAD_WAIT.as_secs(),
            "a data file is still loading; serving what has loaded"
        );
    }
}

/// Serve until `shutdown` completes, then drain and stop.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    timings: ShutdownTimings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let app = crate::http::App::new(state.clone());
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Header and idle deadlines are the connection's (`DeadlineIo`), which
    // tells a slow head from an idle keep-alive connection; hyper's own
    // header timer cannot.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let limits = ConnLimits::new(state.config.connections);
    let deadlines = state.config.deadlines;
    tokio::pin!(shutdown);
    let drain_deadline = async {
        (&mut shutdown).await;
        state.set_phase(Phase::Draining);
        tracing::info!(
            drain_delay_ms = timings.drain_delay.as_millis() as u64,
            "draining: /health now answers 503"
        );
        tokio::time::sleep(timings.drain_delay).await;
    };
    tokio::pin!(drain_deadline);
    let connections = tokio_util::task::TaskTracker::new();
    let serve_one = |stream: tokio::net::TcpStream, peer: SocketAddr| {
        let exempt = state.client_ip.is_trusted(peer.ip());
        let permit = match limits.acquire(peer.ip(), exempt) {
            Ok(permit) => permit,
            Err(refused) => {
                // Closed on arrival: the client sees the connection end.
                state
                    .metrics
                    .connections_refused
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: refused.label(),
                    })
                    .inc();
                tracing::debug!(%peer, limit = refused.label(), "connection refused: too many open");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.call(req.map(Body::new), peer).await) }
        });
        let io = TokioIo::new(DeadlineIo::new(stream, deadlines));
        let conn = builder.serve_connection(io, svc);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            let _permit = permit;
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => serve_one(stream, peer),
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut drain_deadline => break,
        }
    }
    // Connections the kernel completed but we have not accepted yet would be
    // reset when the listener closes, after their client sent a request.
    // Accept and answer them (with `Connection: close`) first.
    crate::listener::close(listener, serve_one).await;
    connections.close();
    tracing::info!(
        open = connections.len(),
        "stopped accepting; waiting for connections to finish"
    );
    // Every answer now carries `Connection: close`, and a load balancer closes
    // its idle connections after its own keep-alive timeout, so connections
    // end by themselves. hyper's graceful shutdown is kept for the deadline:
    // it would close a connection whose request has arrived but not yet been
    // read.
    if tokio::time::timeout(timings.shutdown_timeout, connections.wait())
        .await
        .is_ok()
    {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!(
            open = connections.len(),
            timeout_ms = timings.shutdown_timeout.as_millis() as u64,
            "shutdown timeout: closing the remaining connections"
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
    }
    Ok(())
}
