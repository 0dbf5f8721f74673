//! The `healthcheck` subcommands of `mcp-server` and `kb-sync-sidecar`: ask
//! the running process's own HTTP endpoints over loopback and turn the
//! answers into an exit status, 0 healthy and 1 not ([`Exit`]).
//!
//! The image has no shell and no HTTP client, so a compose `healthcheck:` or
//! a Dockerfile `HEALTHCHECK` cannot run `curl`; the binary itself can. It
//! speaks just enough HTTP/1.1 for that: one `GET` per path with
//! `Connection: close`, the status line read back, everything within one
//! deadline. The address is the one the process listens on; an unspecified
//! address (`0.0.0.0`, `[::]`) is probed on the loopback address of its
//! family, so the check needs no network and no name resolution.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::exit::Exit;

/// The most of an answer that is read: enough for a status line, headers
/// and the start of a JSON body.
const MAX_ANSWER: usize = 64 * 1024;

/// How much of a body an unhealthy verdict quotes (the health endpoints
/// answer JSON that says why; docker keeps the output in `docker inspect`).
const QUOTED_BODY: usize = 400;

/// What one endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The body, as text (lossy), possibly cut at [`MAX_ANSWER`].
    pub body: String,
}

/// The address to probe for a listen address such as `0.0.0.0:8080`,
/// `[::]:9090`, `10.0.0.5:8080` or `localhost:8080`.
pub fn probe_addr(listen: &str) -> Result<SocketAddr, String> {
    let listen = listen.trim();
    let addr = match listen.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => listen
            .to_socket_addrs()
            .map_err(|e| format!("listen address {listen:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("listen address {listen:?} resolves to nothing"))?,
    };
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

/// A request path: absolute, printable ASCII, no spaces.
fn check_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "path {path:?} must start with '/' and hold no spaces or control characters"
        ))
    }
}

/// `GET path` on `addr`, all of it (connect, send, read) within `timeout`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Answer, String> {
    check_path(path)?;
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer within {}", humanize(timeout)))
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, left()?).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| format!("socket: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: fleet-healthcheck\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let head_seen = |a: &[u8]| memchr::memmem::find(a, b"\r\n\r\n").is_some();
    // Until the server closes (it was asked to), the cap, or the deadline;
    // at the deadline, a complete head is an answer (a server that keeps
    // the connection open despite `Connection: close`), anything less is not.
    loop {
        let Ok(wait) = left() else {
            if head_seen(&answer) {
                break;
            }
            return Err(format!("no answer within {}", humanize(timeout)));
        };
        stream
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("socket: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() >= MAX_ANSWER {
                    answer.truncate(MAX_ANSWER);
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    parse(&answer)
}

/// The status and body of a raw HTTP/1.x answer.
fn parse(raw: &[u8]) -> Result<Answer, String> {
    let head_end = memchr::memmem::find(raw, b"\r\n\r\n");
    let status_line_end = memchr::memchr(b'\n', raw).ok_or("no status line in the answer")?;
    let status_line = String::from_utf8_lossy(&raw[..status_line_end]);
    let mut words = status_line.split_ascii_whitespace();
    let version = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 answer: {:?}", cut(&status_line, 60)));
    }
    let status = words
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("bad status line {:?}", cut(&status_line, 60)))?;
    let body = head_end
        .map(|i| String::from_utf8_lossy(&raw[i + 4..]).into_owned())
        .unwrap_or_default();
    Ok(Answer { status, body })
}

/// Why an answer is unhealthy, briefly. The health endpoints answer JSON
/// with the reason spread over many fields (sorted by name, so the start of
/// the body is rarely it): pick the status, the last reload error and each
/// file's error or missing publication; anything else is quoted as is.
fn why(body: &str) -> String {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(body) else {
        return cut(body, QUOTED_BODY);
    };
    let mut parts = Vec::new();
    if let Some(status) = doc.get("status").and_then(|v| v.as_str()) {
        parts.push(format!("status {status}"));
    }
    if let Some(err) = doc.get("last_reload_error").and_then(|v| v.as_str()) {
        parts.push(format!("last reload error: {err}"));
    }
    if let Some(files) = doc.get("files").and_then(|v| v.as_object()) {
        for (name, f) in files {
            if let Some(err) = f.get("last_error").and_then(|v| v.as_str()) {
                parts.push(format!("{name}: {err}"));
            } else if f.get("published").and_then(|v| v.as_bool()) == Some(false) {
                parts.push(format!("{name}: not published yet"));
            }
        }
    }
    if parts.is_empty() {
        cut(body, QUOTED_BODY)
    } else {
        cut(&parts.join("; "), QUOTED_BODY)
    }
}

fn cut(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

fn humanize(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The verdict on one path: `Ok(line)` when it answered 200.
fn verdict(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let url = format!("http://{addr}{path}");
    match get(addr, path, timeout) {
        Ok(a) if a.status == 200 => Ok(format!("healthy: GET {url} answered 200")),
        Ok(a) => Err(format!(
            "unhealthy: GET {url} answered {}: {}",
            a.status,
            why(&a.body)
        )),
        Err(e) => Err(format!("unhealthy: GET {url}: {e}")),
    }
}

/// The whole subcommand: every path must answer 200 within `timeout` (each).
/// Prints one line per path (stdout when healthy, stderr when not) and
/// returns [`Exit::Ok`] or [`Exit::Failed`]; an address or path that cannot
/// be used is [`Exit::Config`].
pub fn healthcheck(listen: &str, paths: &[String], timeout: Duration) -> Exit {
    let addr = match probe_addr(listen) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return Exit::Config;
        }
    };
    if paths.is_empty() {
        eprintln!("healthcheck: no path to probe");
        return Exit::Config;
    }
    if let Some(e) = paths.iter().find_map(|p| check_path(p).err()) {
        eprintln!("healthcheck: {e}");
        return Exit::Config;
    }
    for path in paths {
        match verdict(addr, path, timeout) {
            Ok(line) => println!("{line}"),
            Err(line) => {
                eprintln!("{line}");
                return Exit::Failed;
            }
        }
    }
    Exit::Ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection server that reads the request and sends `reply`
    /// (or nothing, holding the connection, when `reply` is None).
    fn serve_once(reply: Option<&'static str>) -> (SocketAddr, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while memchr::memmem::find(&req, b"\r\n\r\n").is_none() {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            match reply {
                Some(r) => s.write_all(r.as_bytes()).unwrap(),
                None => thread::sleep(Duration::from_millis(800)),
            }
            String::from_utf8(req).unwrap()
        });
        (addr, handle)
    }

    #[test]
    fn unspecified_addresses_are_probed_on_loopback() {
        assert_eq!(
            probe_addr("0.0.0.0:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            probe_addr("[::]:9090").unwrap(),
            "[::1]:9090".parse().unwrap()
        );
        assert_eq!(
            probe_addr(" 10.1.2.3:80 ").unwrap(),
            "10.1.2.3:80".parse().unwrap()
        );
        assert!(probe_addr("localhost:8080").unwrap().ip().is_loopback());
        assert!(probe_addr("no port").is_err());
        assert!(probe_addr("").is_err());
    }

    #[test]
    fn a_200_is_healthy_and_the_request_is_a_plain_get() {
        let (addr, server) = serve_once(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}",
        ));
        let a = get(addr, "/health", Duration::from_secs(2)).unwrap();
        assert_eq!(
            a,
            Answer {
                status: 200,
                body: "{\"status\":\"ok\"}".into()
            }
        );
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /health HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
        assert_eq!(
            healthcheck(&addr.to_string(), &[], Duration::from_secs(1)),
            Exit::Config
        );
    }

    #[test]
    fn every_path_must_answer_200() {
        let (addr, _s) = serve_once(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert_eq!(
            healthcheck(
                &addr.to_string(),
                &["/healthz".into()],
                Duration::from_secs(2)
            ),
            Exit::Ok
        );
        let (addr, _s) = serve_once(Some(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 22\r\n\r\n{\"status\":\"draining\"}\n",
        ));
        let err = verdict(addr, "/health", Duration::from_secs(2)).unwrap_err();
        assert!(
            err.contains("answered 503") && err.contains("draining"),
            "{err}"
        );
        let (addr, _s) = serve_once(Some("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        assert_eq!(
            healthcheck(
                &addr.to_string(),
                &["/readyz".into()],
                Duration::from_secs(2)
            ),
            Exit::Failed
        );
    }

    #[test]
    fn the_reason_is_picked_from_a_json_body() {
        let server = r#"{"auth":{"tokens":1},"files":{"kb":{"last_error":null},"tokens":{"last_error":"tokens.yaml: line 3: bad"}},"last_reload_error":"tokens.yaml: line 3: bad","status":"draining"}"#;
        assert_eq!(
            why(server),
            "status draining; last reload error: tokens.yaml: line 3: bad; tokens: tokens.yaml: line 3: bad"
        );
        let sidecar = r#"{"files":{"kb.db":{"last_error":null,"published":false},"notes":{"last_error":"404","published":true}},"live":true,"ready":false}"#;
        assert_eq!(why(sidecar), "kb.db: not published yet; notes: 404");
        assert_eq!(why("plain\ntext"), "plain text");
        assert_eq!(why(r#"{"other":1}"#), r#"{"other":1}"#);
        assert!(why(&"x".repeat(5000)).len() < QUOTED_BODY + 10);
    }

    #[test]
    fn nothing_listening_or_no_answer_is_unhealthy_within_the_timeout() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(
            get(closed, "/health", Duration::from_secs(1))
                .unwrap_err()
                .starts_with("connect:")
        );
        assert_eq!(
            healthcheck(
                &closed.to_string(),
                &["/health".into()],
                Duration::from_secs(1)
            ),
            Exit::Failed
        );
        let (addr, _s) = serve_once(None);
        let start = Instant::now();
        let err = get(addr, "/health", Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("no answer within"), "{err}");
        assert!(start.elapsed() < Duration::from_millis(700));
    }

    #[test]
    fn garbage_answers_and_bad_paths_are_refused() {
        let (addr, _s) = serve_once(Some("SSH-2.0-OpenSSH\r\n"));
        assert!(
            get(addr, "/health", Duration::from_secs(2))
                .unwrap_err()
                .contains("not an HTTP/1 answer")
        );
        let (addr, _s) = serve_once(Some("HTTP/1.1 abc\r\n\r\n"));
        assert!(
            get(addr, "/health", Duration::from_secs(2))
                .unwrap_err()
                .contains("bad status line")
        );
        for bad in ["health", "/a b", "/x\r\nHost: evil", ""] {
            assert!(check_path(bad).is_err(), "{bad:?}");
            assert_eq!(
                healthcheck("127.0.0.1:1", &[bad.to_string()], Duration::from_secs(1)),
                Exit::Config
            );
        }
        assert_eq!(
            healthcheck("nonsense", &["/health".into()], Duration::from_secs(1)),
            Exit::Config
        );
    }
}
