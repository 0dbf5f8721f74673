//! What every HTTP listener of the fleet needs against slow and greedy
//! clients: deadlines on a connection's reads ([`DeadlineIo`]) and a bound on
//! how many connections are open, in all and per client ([`ConnLimits`]).
//!
//! A connection is in one of three phases, read off the bytes that cross it:
//! reading a request's head (from its first byte, or from the connection's
//! start, until the blank line that ends the headers), in a request (its
//! body and the answer: the server's own timeouts govern that), and idle
//! between requests (from the first byte of an answer until the next
//! request's first byte). A head that takes longer than the header deadline,
//! or an idle time longer than the idle deadline, ends the connection. So a
//! client dribbling headers is cut after seconds, while a load balancer's
//! idle keep-alive connection lives as long as the balancer expects.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a connection may take over a request's head, and stay idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From a request's first byte (or the connection's start) to the end
    /// of its headers.
    pub header: Duration,
    /// Between the answer to one request and the first byte of the next.
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    InRequest,
    Idle,
}

/// An I/O stream that fails its reads with `TimedOut` once the deadline of
/// its phase has passed.
pub struct DeadlineIo<T> {
    io: T,
    deadlines: Deadlines,
    phase: Phase,
    /// The last three bytes of the head read so far, to spot its end
    /// across reads.
    tail: [u8; 3],
    timer: Pin<Box<Sleep>>,
}

impl<T> DeadlineIo<T> {
    /// A new connection: its first request's head is due within the header
    /// deadline.
    pub fn new(io: T, deadlines: Deadlines) -> DeadlineIo<T> {
        DeadlineIo {
            io,
            deadlines,
            phase: Phase::Head,
            tail: [0; 3],
            timer: Box::pin(tokio::time::sleep(deadlines.header)),
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    fn saw_bytes(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            self.tail = [0; 3];
            let deadline = Instant::now() + self.deadlines.header;
            self.timer.as_mut().reset(deadline);
        }
        if self.phase != Phase::Head {
            return;
        }
        // The head ends at CRLF CRLF, or the bare LF LF that HTTP parsers
        // also accept: look only at the line feeds.
        let tail = self.tail;
        let before = |i: usize, back: usize| -> u8 {
            if i >= back {
                bytes[i - back]
            } else {
                tail[3 - (back - i)]
            }
        };
        for i in memchr::memchr_iter(b'\n', bytes) {
            if before(i, 1) == b'\n' || (before(i, 1) == b'\r' && before(i, 2) == b'\n') {
                self.phase = Phase::InRequest;
                return;
            }
        }
        for &b in bytes.iter().rev().take(3).rev() {
            self.tail = [self.tail[1], self.tail[2], b];
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    this.saw_bytes(&filled[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.phase != Phase::InRequest && this.timer.as_mut().poll(cx).is_ready() {
                    let what = match this.phase {
                        Phase::Head => "request headers not received in time",
                        _ => "connection idle for too long",
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.phase != Phase::Idle && !buf.is_empty() {
            // An answer is going out: from here the connection idles until
            // the next request begins.
            this.phase = Phase::Idle;
            let deadline = Instant::now() + this.deadlines.idle;
            this.timer.as_mut().reset(deadline);
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.phase != Phase::Idle && bufs.iter().any(|b| !b.is_empty()) {
            this.phase = Phase::Idle;
            let deadline = Instant::now() + this.deadlines.idle;
            this.timer.as_mut().reset(deadline);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How many connections may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    /// Per client IP, except for IPs the caller exempts (its load balancers).
    pub per_ip: usize,
}

/// Why a connection was refused on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerIp => "per_ip",
        }
    }
}

/// The open connections, counted in all and per client IP.
#[derive(Debug)]
pub struct ConnLimits {
    limits: Limits,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnPermit {
    owner: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl ConnLimits {
    pub fn new(limits: Limits) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            limits,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Count a new connection from `ip`, or refuse it. `exempt` connections
    /// count against the total only.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, exempt: bool) -> Result<ConnPermit, Refused> {
        let total = self.total.fetch_add(1, Ordering::AcqRel);
        let mut permit = ConnPermit {
            owner: self.clone(),
            ip: None,
        };
        if total >= self.limits.total {
            return Err(Refused::Total); // the permit's drop gives the place back
        }
        if !exempt {
            let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= self.limits.per_ip {
                return Err(Refused::PerIp);
            }
            *n += 1;
            permit.ip = Some(ip);
        }
        Ok(permit)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.owner.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut map = self.owner.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const D: Deadlines = Deadlines {
        header: Duration::from_millis(300),
        idle: Duration::from_millis(1200),
    };

    async fn read_some<T: AsyncRead + Unpin>(io: &mut DeadlineIo<T>) -> io::Result<usize> {
        let mut buf = [0u8; 256];
        io.read(&mut buf).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_head_times_out_but_an_idle_connection_lives_longer() {
        // Head dribbled one byte at a time: cut at the header deadline.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = DeadlineIo::new(server, D);
        let started = Instant::now();
        let reader = async {
            loop {
                match read_some(&mut io).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    Err(e) => return Err((e, started.elapsed())),
                }
            }
        };
        let writer = async {
            for b in b"POST /mcp HTTP/1.1\r\nHost: x\r\n" {
                client.write_all(&[*b]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let (read, ()) = tokio::join!(reader, writer);
        let (err, after) = read.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            after >= Duration::from_millis(300) && after < Duration::from_millis(400),
            "{after:?}"
        );

        // A complete head, an answer, then idle: the idle deadline applies.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = DeadlineIo::new(server, D);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(read_some(&mut io).await.unwrap() > 0);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let idle_from = Instant::now();
        let err = read_some(&mut io).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let idled = idle_from.elapsed();
        assert!(
            idled >= Duration::from_millis(1200) && idled < Duration::from_millis(1300),
            "{idled:?}"
        );

        // A head whose blank line is split across reads is seen to end.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = DeadlineIo::new(server, D);
        for part in [&b"GET / HTTP/1.1\r\nHost: x\r"[..], b"\n", b"\r", b"\n"] {
            client.write_all(part).await.unwrap();
            assert!(read_some(&mut io).await.unwrap() > 0);
        }
        let waited = tokio::time::timeout(Duration::from_secs(5), read_some(&mut io)).await;
        assert!(
            waited.is_err(),
            "no header deadline once the head is complete"
        );

        // In a request (after the head, before the answer) no deadline runs.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = DeadlineIo::new(server, D);
        client.write_all(b"POST / HTTP/1.1\n\n").await.unwrap();
        assert!(read_some(&mut io).await.unwrap() > 0);
        let waited = tokio::time::timeout(Duration::from_secs(5), read_some(&mut io)).await;
        assert!(waited.is_err(), "still waiting for the body after 5 s");
    }

    #[test]
    fn limits_count_per_ip_and_in_all() {
        let limits = ConnLimits::new(Limits {
            total: 3,
            per_ip: 2,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = limits.acquire(a, false).unwrap();
        let p2 = limits.acquire(a, false).unwrap();
        assert_eq!(limits.acquire(a, false).unwrap_err(), Refused::PerIp);
        let p3 = limits.acquire(b, true).unwrap();
        assert_eq!(limits.acquire(b, true).unwrap_err(), Refused::Total);
        assert_eq!(limits.open(), 3);
        drop(p1);
        assert!(limits.acquire(a, false).is_ok(), "a place came back");
        drop((p2, p3));
        assert_eq!(limits.open(), 0);
        assert!(limits.per_ip.lock().unwrap().is_empty());
    }
}
