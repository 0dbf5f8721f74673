//! `https://` and `http://` sources: a conditional GET (`If-None-Match`,
//! `If-Modified-Since`), so an unchanged object costs a 304 and no body; a
//! server that ignores the conditions but repeats the same `ETag` is treated
//! as unchanged too, and its body is dropped unread.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use reqwest::{StatusCode, Url};

use super::{
    Body, Download, Fetch, SourceError, SourceOptions, Validators, chain, header_str, redacted,
};

/// Headers a publisher may use to announce the body's sha256 (hex).
const SHA256_HEADERS: [&str; 2] = ["x-amz-meta-sha256", "x-checksum-sha256"];

/// How many redirects are followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// An object at an HTTP(S) URL.
#[derive(Debug, Clone)]
pub struct HttpSource {
    client: reqwest::Client,
    url: Url,
}

impl HttpSource {
    /// Parse the URL and build the client (connect and per-read timeouts from
    /// `opts`, at most 5 redirects). Credentials in the URL's userinfo are
    /// sent as basic auth and never shown by [`HttpSource::describe`].
    pub fn new(url: &str, opts: &SourceOptions) -> Result<HttpSource, SourceError> {
        let parsed = Url::parse(url).map_err(|e| {
            SourceError::Permanent(format!(
                "bad http source {}: {e}",
                redacted_str(url).unwrap_or_else(|| "(unparsable URL)".to_string())
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SourceError::Permanent(format!(
                "bad http source {}: not an http:// or https:// URL",
                redacted(&parsed)
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(SourceError::Permanent(format!(
                "bad http source {}: no host",
                redacted(&parsed)
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .user_agent(concat!("kb-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                SourceError::Permanent(format!("building an HTTP client: {}", chain(&e)))
            })?;
        Ok(HttpSource {
            client,
            url: parsed,
        })
    }

    /// GET the object unless it still matches `have`.
    pub async fn fetch(&self, have: &Validators) -> Result<Fetch, SourceError> {
        let mut req = self.client.get(self.url.clone());
        // Validators come from our own state file; one that is not a valid
        // header value is simply not sent (the download is then unconditional).
        if let Some(v) = have
            .etag
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            req = req.header(header::IF_NONE_MATCH, v);
        }
        if let Some(v) = have
            .last_modified
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            req = req.header(header::IF_MODIFIED_SINCE, v);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        match status {
            StatusCode::NOT_MODIFIED if !have.is_empty() => Ok(Fetch::NotModified),
            StatusCode::OK | StatusCode::NON_AUTHORITATIVE_INFORMATION => {
                let headers = resp.headers();
                let validators = Validators::from_headers(headers);
                if have.same_version(&validators) {
                    // The server ignored the conditions; drop the body unread.
                    return Ok(Fetch::NotModified);
                }
                let sha256_meta = super::sha256_meta(
                    SHA256_HEADERS
                        .iter()
                        .find_map(|h| header_str(headers, h))
                        .as_deref(),
                );
                Ok(Fetch::Changed(Download {
                    validators,
                    sha256_meta,
                    size: resp.content_length(),
                    body: Body::Http(resp),
                }))
            }
            _ => Err(self.status_error(status)),
        }
    }

    /// The URL without userinfo, query string or fragment.
    pub fn describe(&self) -> String {
        redacted(&self.url)
    }

    fn status_error(&self, status: StatusCode) -> SourceError {
        let msg = format!("{}: HTTP {status}", self.describe());
        match status.as_u16() {
            404 | 410 => SourceError::NotFound(msg),
            408 | 429 => SourceError::Transient(msg),
            500..=599 => SourceError::Transient(msg),
            304 => SourceError::Transient(format!("{msg} to an unconditional request")),
            300..=399 => SourceError::Permanent(format!("{msg} (redirect not followed)")),
            // 401, 403, every other 4xx and unexpected 1xx/2xx: refused for
            // good, or a server we do not understand.
            _ => SourceError::Permanent(msg),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> SourceError {
        let permanent = e.is_redirect() || e.is_builder();
        let msg = format!("{}: {}", self.describe(), chain(&e.without_url()));
        if permanent {
            SourceError::Permanent(msg)
        } else {
            SourceError::Transient(msg)
        }
    }
}

fn redacted_str(url: &str) -> Option<String> {
    Url::parse(url).ok().map(|u| redacted(&u))
}

/// The next chunk of the response body; a body cut short, a stalled read or
/// a reset connection is a transient failure.
pub(crate) async fn next_chunk(resp: &mut reqwest::Response) -> Result<Option<Bytes>, SourceError> {
    match resp.chunk().await {
        Ok(c) => Ok(c),
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out reading the body"
            } else {
                "reading the body"
            };
            Err(SourceError::Transient(format!(
                "{}: {what}: {}",
                redacted(resp.url()),
                chain(&e.without_url())
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use http_body_util::{BodyExt, Full, combinators::BoxBody};
    use hyper::body::{Frame, Incoming};
    use hyper::{Request, Response};

    type TestBody = BoxBody<Bytes, std::io::Error>;

    const BODY: &[u8] = b"hello, fleet\n";
    const ETAG: &str = "\"v1\"";
    const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    const BIG: usize = 64 * 1024 * 1024;

    #[derive(Default)]
    struct Counters {
        requests: AtomicUsize,
        /// Bytes of the big body produced for hyper to send.
        big_produced: AtomicUsize,
        /// The If-None-Match header of the last request, if any.
        last_inm: std::sync::Mutex<Option<String>>,
    }

    /// A body of `total` bytes, produced lazily, counting what was produced.
    struct Counted {
        left: usize,
        counters: Arc<Counters>,
    }

    impl hyper::body::Body for Counted {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            let n = self.left.min(64 * 1024);
            self.left -= n;
            self.counters.big_produced.fetch_add(n, Ordering::SeqCst);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
        }
    }

    /// Some bytes, then (once they are surely on the wire) an error: hyper
    /// aborts the connection short of the announced Content-Length.
    struct Truncated {
        sent: bool,
        pause: Pin<Box<tokio::time::Sleep>>,
    }

    impl hyper::body::Body for Truncated {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if !self.sent {
                self.sent = true;
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))));
            }
            match self.pause.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::other("cut")))),
            }
        }
    }

    /// Headers, then nothing, ever.
    struct Stalled;

    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Pending
        }
    }

    fn full(b: &'static [u8]) -> TestBody {
        Full::new(Bytes::from_static(b))
            .map_err(|never: Infallible| match never {})
            .boxed()
    }

    fn status(code: u16) -> Response<TestBody> {
        let mut r = Response::new(full(b""));
        *r.status_mut() = StatusCode::from_u16(code).unwrap();
        r
    }

    async fn handle(
        req: Request<Incoming>,
        counters: Arc<Counters>,
    ) -> Result<Response<TestBody>, Infallible> {
        counters.requests.fetch_add(1, Ordering::SeqCst);
        let inm = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let ims = req
            .headers()
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        *counters.last_inm.lock().unwrap() = inm.clone();
        let ua = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ua.starts_with("kb-sync/"), "user agent {ua:?}");
        let resp = match req.uri().path() {
            // Honours If-None-Match.
            "/file" => {
                if inm.as_deref() == Some(ETAG) {
                    let mut r = status(304);
                    r.headers_mut()
                        .insert(header::ETAG, HeaderValue::from_static(ETAG));
                    r
                } else {
                    let mut r = Response::new(full(BODY));
                    let h = r.headers_mut();
                    h.insert(header::ETAG, HeaderValue::from_static(ETAG));
                    h.insert(
                        header::LAST_MODIFIED,
                        HeaderValue::from_static(LAST_MODIFIED),
                    );
                    h.insert("x-amz-meta-sha256", HeaderValue::from_static("abc123"));
                    r
                }
            }
            // Only Last-Modified, honouring If-Modified-Since.
            "/lm" => {
                if ims.as_deref() == Some(LAST_MODIFIED) {
                    status(304)
                } else {
                    let mut r = Response::new(full(BODY));
                    r.headers_mut().insert(
                        header::LAST_MODIFIED,
                        HeaderValue::from_static(LAST_MODIFIED),
                    );
                    r.headers_mut()
                        .insert("x-checksum-sha256", HeaderValue::from_static("def456"));
                    r
                }
            }
            // Ignores every condition: always 200, same ETag, a big body.
            "/ignores" => {
                let mut r = Response::new(
                    Counted {
                        left: BIG,
                        counters: counters.clone(),
                    }
                    .boxed(),
                );
                r.headers_mut()
                    .insert(header::ETAG, HeaderValue::from_static(ETAG));
                r.headers_mut().insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from_str(&BIG.to_string()).unwrap(),
                );
                r
            }
            "/truncated" => {
                let mut r = Response::new(
                    Truncated {
                        sent: false,
                        pause: Box::pin(tokio::time::sleep(Duration::from_millis(100))),
                    }
                    .boxed(),
                );
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("100000"));
                r.headers_mut()
                    .insert(header::ETAG, HeaderValue::from_static("\"t\""));
                r
            }
            "/stalled" => {
                let mut r = Response::new(Stalled.boxed());
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
                r
            }
            "/redirect" => {
                let mut r = status(302);
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/file"));
                r
            }
            "/loop" => {
                let mut r = status(302);
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/loop"));
                r
            }
            "/gone" => status(410),
            "/forbidden" => status(403),
            "/unauthorized" => status(401),
            "/bad" => status(400),
            "/busy" => status(429),
            "/error" => status(500),
            "/unavailable" => status(503),
            _ => status(404),
        };
        Ok(resp)
    }

    async fn serve() -> (String, Arc<Counters>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let c = c.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, c.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), counters)
    }

    fn opts() -> SourceOptions {
        SourceOptions {
            timeout: Duration::from_millis(700),
            s3_path_style: false,
        }
    }

    async fn read_all(dl: &mut Download) -> Result<Vec<u8>, SourceError> {
        let mut out = Vec::new();
        while let Some(c) = dl.next_chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    async fn fetch(base: &str, path: &str, have: &Validators) -> Result<Fetch, SourceError> {
        HttpSource::new(&format!("{base}{path}"), &opts())
            .unwrap()
            .fetch(have)
            .await
    }

    #[tokio::test]
    async fn changed_then_not_modified_by_304() {
        let (base, counters) = serve().await;
        let src = HttpSource::new(&format!("{base}/file"), &opts()).unwrap();
        let Fetch::Changed(mut dl) = src.fetch(&Validators::default()).await.unwrap() else {
            panic!("expected Changed");
        };
        assert_eq!(dl.validators.etag.as_deref(), Some(ETAG));
        assert_eq!(dl.validators.last_modified.as_deref(), Some(LAST_MODIFIED));
        assert_eq!(dl.sha256_meta.as_deref(), Some("abc123"));
        assert_eq!(dl.size, Some(BODY.len() as u64));
        assert_eq!(read_all(&mut dl).await.unwrap(), BODY);
        assert_eq!(*counters.last_inm.lock().unwrap(), None);

        let have = dl.validators.clone();
        assert!(matches!(
            src.fetch(&have).await.unwrap(),
            Fetch::NotModified
        ));
        assert_eq!(counters.last_inm.lock().unwrap().as_deref(), Some(ETAG));

        // A different version held locally: the server's current one is new.
        let old = Validators {
            etag: Some("\"v0\"".into()),
            ..Validators::default()
        };
        let Fetch::Changed(mut dl) = src.fetch(&old).await.unwrap() else {
            panic!("expected Changed");
        };
        assert_eq!(read_all(&mut dl).await.unwrap(), BODY);
        assert_eq!(counters.requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn if_modified_since_and_checksum_header() {
        let (base, _) = serve().await;
        let Fetch::Changed(mut dl) = fetch(&base, "/lm", &Validators::default()).await.unwrap()
        else {
            panic!("expected Changed");
        };
        assert_eq!(dl.validators.etag, None);
        assert_eq!(dl.sha256_meta.as_deref(), Some("def456"));
        assert_eq!(read_all(&mut dl).await.unwrap(), BODY);
        assert!(matches!(
            fetch(&base, "/lm", &dl.validators).await.unwrap(),
            Fetch::NotModified
        ));
    }

    #[tokio::test]
    async fn server_ignoring_conditions_is_not_modified_without_reading_the_body() {
        let (base, counters) = serve().await;
        let have = Validators {
            etag: Some(ETAG.into()),
            ..Validators::default()
        };
        let r = fetch(&base, "/ignores", &have).await.unwrap();
        assert!(matches!(r, Fetch::NotModified));
        assert_eq!(counters.last_inm.lock().unwrap().as_deref(), Some(ETAG));
        // Give the server time to push whatever the socket buffers take.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let produced = counters.big_produced.load(Ordering::SeqCst);
        assert!(
            produced < BIG / 2,
            "the body was read: {produced} of {BIG} bytes produced"
        );

        // With other validators, the same server's body is a new version.
        let Fetch::Changed(dl) = fetch(&base, "/ignores", &Validators::default())
            .await
            .unwrap()
        else {
            panic!("expected Changed");
        };
        assert_eq!(dl.size, Some(BIG as u64));
    }

    #[tokio::test]
    async fn truncated_body_is_transient() {
        let (base, _) = serve().await;
        let Fetch::Changed(mut dl) = fetch(&base, "/truncated", &Validators::default())
            .await
            .unwrap()
        else {
            panic!("expected Changed");
        };
        assert_eq!(dl.size, Some(100_000));
        match read_all(&mut dl).await {
            Err(SourceError::Transient(msg)) => {
                assert!(msg.contains("/truncated"), "{msg}");
            }
            Err(e) => panic!("wrong error class: {e:?}"),
            Ok(b) => panic!("a truncated body was accepted: {} bytes", b.len()),
        }
    }

    #[tokio::test]
    async fn stalled_body_times_out_as_transient() {
        let (base, _) = serve().await;
        let Fetch::Changed(mut dl) = fetch(&base, "/stalled", &Validators::default())
            .await
            .unwrap()
        else {
            panic!("expected Changed");
        };
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(10), dl.next_chunk())
            .await
            .expect("the read timeout did not fire");
        assert!(matches!(r, Err(SourceError::Transient(_))), "{:?}", r.err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn redirects() {
        let (base, _) = serve().await;
        let Fetch::Changed(mut dl) = fetch(&base, "/redirect", &Validators::default())
            .await
            .unwrap()
        else {
            panic!("expected Changed");
        };
        assert_eq!(read_all(&mut dl).await.unwrap(), BODY);
        assert!(matches!(
            fetch(&base, "/loop", &Validators::default()).await,
            Err(SourceError::Permanent(_))
        ));
    }

    #[tokio::test]
    async fn error_classes() {
        let (base, _) = serve().await;
        let none = Validators::default();
        for (path, want) in [
            ("/missing", "not_found"),
            ("/gone", "not_found"),
            ("/forbidden", "permanent"),
            ("/unauthorized", "permanent"),
            ("/bad", "permanent"),
            ("/busy", "transient"),
            ("/error", "transient"),
            ("/unavailable", "transient"),
        ] {
            let got = match fetch(&base, path, &none).await {
                Err(SourceError::NotFound(_)) => "not_found",
                Err(SourceError::Permanent(_)) => "permanent",
                Err(SourceError::Transient(_)) => "transient",
                Ok(_) => "ok",
            };
            assert_eq!(got, want, "{path}");
        }

        // Nothing listens: a transient network error.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(matches!(
            fetch(&format!("http://{addr}"), "/x", &none).await,
            Err(SourceError::Transient(_))
        ));
    }

    #[tokio::test]
    async fn credentials_are_not_shown() {
        let (base, _) = serve().await;
        let with_creds = base.replace("http://", "http://user:s3cret@");
        let src =
            HttpSource::new(&format!("{with_creds}/error?token=t0ken#frag"), &opts()).unwrap();
        let d = src.describe();
        assert_eq!(d, format!("{base}/error"));
        let Err(e) = src.fetch(&Validators::default()).await else {
            panic!("expected an error");
        };
        let msg = e.to_string();
        assert!(!msg.contains("s3cret") && !msg.contains("t0ken"), "{msg}");
    }

    #[test]
    fn bad_urls_are_permanent() {
        for bad in ["http://", "ftp://x/y", "http://[::1/x", "http://a b/"] {
            assert!(
                matches!(
                    HttpSource::new(bad, &opts()),
                    Err(SourceError::Permanent(_))
                ),
                "{bad}"
            );
        }
        let e = HttpSource::new("http://u:pw@[bad/x?q=1", &opts())
            .err()
            .unwrap();
        assert!(!e.to_string().contains("pw"), "{e}");
    }
}
