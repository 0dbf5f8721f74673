//! A stand-in HTTP endpoint on 127.0.0.1 for tests (feature
//! `test-support`): token endpoints, metadata servers, container credential
//! endpoints. It records every request and answers with what the test's
//! `reply` function says.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};

/// One request as the endpoint received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Recorded {
    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of `key` in the query string, decoded.
    pub fn query_value(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        form_value(query, key)
    }
}

/// Every request received so far.
pub type Log = Arc<Mutex<Vec<Recorded>>>;

/// The simple answer: status and body; a body that starts with `{` goes
/// out as `application/json`.
pub type Reply = (u16, String);

/// An answer with headers of its own (IMDS sends its session token's TTL in
/// one).
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl From<Reply> for Answer {
    fn from((status, body): Reply) -> Answer {
        Answer {
            status,
            body,
            headers: Vec::new(),
        }
    }
}

/// Serve on a fresh port until the runtime ends; returns
/// `http://127.0.0.1:PORT` and the log.
pub async fn serve<F, A>(reply: F) -> (String, Log)
where
    F: Fn(&Recorded) -> A + Send + Sync + 'static,
    A: Into<Answer>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a port on 127.0.0.1");
    let addr = listener.local_addr().expect("the bound address");
    (format!("http://{addr}"), serve_listener(listener, reply))
}

/// Serve on a listener bound before the runtime started (a test that puts
/// the address into the process environment before any thread runs).
pub fn serve_std<F, A>(listener: std::net::TcpListener, reply: F) -> Log
where
    F: Fn(&Recorded) -> A + Send + Sync + 'static,
    A: Into<Answer>,
{
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("a listener inside a tokio runtime");
    serve_listener(listener, reply)
}

fn serve_listener<F, A>(listener: tokio::net::TcpListener, reply: F) -> Log
where
    F: Fn(&Recorded) -> A + Send + Sync + 'static,
    A: Into<Answer>,
{
    let log: Log = Arc::default();
    let reply = Arc::new(reply);
    let l = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, reply) = (l.clone(), reply.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (log, reply) = (log.clone(), reply.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let rec = Recorded {
                            method: parts.method.to_string(),
                            target: parts.uri.to_string(),
                            headers: parts.headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        };
                        let answer: Answer = reply(&rec).into();
                        log.lock().unwrap_or_else(|p| p.into_inner()).push(rec);
                        let json = answer.body.trim_start().starts_with('{');
                        let mut resp = Response::new(Full::new(bytes::Bytes::from(answer.body)));
                        *resp.status_mut() = http::StatusCode::from_u16(answer.status)
                            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                        if json {
                            resp.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/json"),
                            );
                        }
                        for (name, value) in answer.headers {
                            if let Ok(v) = http::HeaderValue::from_str(&value) {
                                resp.headers_mut().insert(name, v);
                            }
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    log
}

/// The value of `key` in an `application/x-www-form-urlencoded` text.
pub fn form_value(body: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}
