//! Closing the listening socket without resetting a connection.
//!
//! The kernel completes TCP handshakes by itself and queues them until the
//! server accepts. Closing the listener resets every connection still in that
//! queue, and a client that has already sent its request there sees a reset
//! after the request went out. nginx answers that with a 502: it never retries
//! a POST, and every MCP request is a POST.
//!
//! So [`close`] shuts the door in order:
//! 1. a socket filter drops new SYNs, so no new connection joins the queue
//!    (the client's SYN is retransmitted, meets the closed port and gets
//!    "connection refused", which every load balancer retries elsewhere);
//! 2. handshakes already under way get [`SETTLE`] to complete;
//! 3. everything queued is accepted with direct `accept` calls (tokio's
//!    readiness can lag behind the kernel's queue), and handed to `serve`;
//! 4. only then is the socket closed.
//!
//! Where the filter cannot be attached (not Linux), steps 1 and 2 are skipped
//! and the window shrinks to the few microseconds between the last `accept`
//! and `close`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long handshakes under way get to complete once new SYNs are dropped.
/// A handshake needs one round trip, so this covers any LAN or cloud zone.
pub const SETTLE: Duration = Duration::from_millis(100);

/// Stop taking connections, hand every one the kernel already completed to
/// `serve`, and close the listener.
pub async fn close(listener: TcpListener, mut serve: impl FnMut(TcpStream, SocketAddr)) {
    match refuse_new_connections(&listener) {
        Ok(()) => {
            let settle = tokio::time::sleep(SETTLE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, peer)) = accepted {
                            serve(stream, peer);
                        }
                    }
                    () = &mut settle => break,
                }
            }
        }
        Err(err) => tracing::debug!(error = %err, "cannot filter new connections; closing at once"),
    }
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!(error = %err, "cannot drain the accept queue");
            return;
        }
    };
    loop {
        match listener.accept() {
            Ok((stream, peer)) => match adopt(stream) {
                Ok(stream) => serve(stream, peer),
                Err(err) => {
                    tracing::debug!(error = %err, %peer, "cannot serve a queued connection")
                }
            },
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed while closing");
                break;
            }
        }
    }
}

/// A socket `accept`ed by std is blocking; tokio needs it non-blocking.
fn adopt(stream: std::net::TcpStream) -> io::Result<TcpStream> {
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

/// Attach a classic BPF filter that drops TCP segments with SYN set and ACK
/// clear: new connection attempts. Everything else passes, so handshakes
/// under way (the client's final ACK) complete. Connections accepted later
/// inherit the filter, which never matches on an established connection.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn refuse_new_connections(listener: &TcpListener) -> io::Result<()> {
    use socket2::{SockFilter, SockRef};
    // The filter sees the TCP header at offset 0; byte 13 holds the flags.
    const LD_B_ABS: u16 = 0x30; // A = packet[k]
    const AND_K: u16 = 0x54; // A &= k
    const JEQ_K: u16 = 0x15; // if A == k then jt else jf
    const RET_K: u16 = 0x06; // accept k bytes (0 drops)
    const SYN: u32 = 0x02;
    const ACK: u32 = 0x10;
    let program = [
        SockFilter::new(LD_B_ABS, 0, 0, 13),
        SockFilter::new(AND_K, 0, 0, SYN | ACK),
        SockFilter::new(JEQ_K, 0, 1, SYN),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
    ];
    SockRef::from(listener).attach_filter(&program)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn refuse_new_connections(_listener: &TcpListener) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "socket filters need Linux",
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Answer one request line per connection, then close.
    fn answer(mut stream: TcpStream) {
        tokio::spawn(async move {
            let mut buf = [0u8; 5];
            if stream.read_exact(&mut buf).await.is_ok() {
                let _ = stream.write_all(b"pong\n").await;
            }
        });
    }

    /// What the clients of one listener saw.
    #[derive(Default)]
    struct Seen {
        answered: AtomicUsize,
        refused: AtomicUsize,
        lost: AtomicUsize,
    }

    /// Serve a listener under eight clients that connect in a tight loop, then
    /// close it while they keep connecting.
    async fn round() -> (usize, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let (stop, seen) = (stop.clone(), seen.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut s) = TcpStream::connect(addr).await else {
                            seen.refused.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let mut reply = Vec::new();
                        let ok = s.write_all(b"ping\n").await.is_ok()
                            && s.read_to_end(&mut reply).await.is_ok()
                            && reply == b"pong\n";
                        let counter = if ok { &seen.answered } else { &seen.lost };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let deadline = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                Ok((stream, _)) = listener.accept() => answer(stream),
                () = &mut deadline => break,
            }
        }
        let before = seen.answered.load(Ordering::Relaxed);
        close(listener, |stream, _| answer(stream)).await;
        // A client whose SYN was dropped retransmits after about a second
        // and is refused then; wait for that before stopping them.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.expect("client");
        }
        (before, seen)
    }

    /// Every connection the kernel completed must be answered: a reset or an
    /// empty read after connecting is what a proxy turns into a 502. Closing
    /// with a plain `drop` fails a round about one time in three, so four
    /// rounds run at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_connection_the_kernel_completed_is_reset() {
        let rounds: Vec<_> = (0..4).map(|_| tokio::spawn(round())).collect();
        for r in rounds {
            let (before, seen) = r.await.expect("round");
            assert!(before > 50, "the load must be real: {before} answered");
            assert!(
                seen.refused.load(Ordering::Relaxed) > 0,
                "the port must close"
            );
            let lost = seen.lost.load(Ordering::Relaxed);
            assert_eq!(lost, 0, "connections reset after connecting");
        }
    }
}
