//! What the GCS and Azure clients share: one HTTP client per timeout, the
//! mapping of an answer's status to an error class, and the body of an
//! upload streamed from a local file.
//!
//! Both speak their store's REST API over the `reqwest` the HTTP source
//! already uses; what differs between them (URLs, headers, credentials) is
//! in `gcs`/`google_auth` and `azure`/`azure_auth`. The client itself and
//! the transport error classes are `fleet_cloud::http`'s, which the token
//! endpoints use too.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;

use super::SourceError;

pub use fleet_cloud::http::short;

const USER_AGENT: &str = concat!("kb-sync/", env!("CARGO_PKG_VERSION"));

/// The shared client with connect and per-read timeouts of `timeout`; it
/// follows no redirect (see `fleet_cloud::http::client`).
pub fn client(timeout: Duration) -> Result<reqwest::Client, SourceError> {
    Ok(fleet_cloud::http::client(timeout, USER_AGENT)?)
}

/// A request that failed before an answer: `what` says which (it must hold
/// no secret); the URL, which may carry a signature, is left out.
pub fn transport_error(what: &str, e: reqwest::Error) -> SourceError {
    fleet_cloud::http::transport_error(what, e).into()
}

/// An unexpected answer: `detail` is the store's own error code or message.
/// 404 and 410 are "not found" (retried: it may be published later); 408,
/// 412 (changed meanwhile), 429 and 5xx are worth a retry; 401, 403 and
/// every other answer are refused for good.
pub fn status_error(what: &str, status: StatusCode, detail: &str) -> SourceError {
    let mut msg = format!("{what}: HTTP {status}");
    if !detail.is_empty() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    match status.as_u16() {
        404 | 410 => SourceError::NotFound(msg),
        408 | 412 | 429 | 500..=599 => SourceError::Transient(msg),
        _ => SourceError::Permanent(msg),
    }
}

/// A local file to upload: its length and its bytes as a stream.
pub async fn file_stream(
    path: &Path,
) -> Result<(u64, tokio_util::io::ReaderStream<tokio::fs::File>), SourceError> {
    let read_err =
        |e: std::io::Error| SourceError::Permanent(format!("reading {}: {e}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(read_err)?;
    let len = file.metadata().await.map_err(read_err)?.len();
    Ok((
        len,
        tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024),
    ))
}

/// Read a whole (small) answer body: metadata answers.
pub async fn small_body(what: &str, resp: reqwest::Response) -> Result<bytes::Bytes, SourceError> {
    Ok(fleet_cloud::http::small_body(what, resp).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let class = |code: u16| match status_error("x", StatusCode::from_u16(code).unwrap(), "") {
            SourceError::NotFound(_) => "not_found",
            SourceError::Transient(_) => "transient",
            SourceError::Permanent(_) => "permanent",
        };
        for (code, want) in [
            (404, "not_found"),
            (410, "not_found"),
            (401, "permanent"),
            (403, "permanent"),
            (400, "permanent"),
            (409, "permanent"),
            (408, "transient"),
            (412, "transient"),
            (429, "transient"),
            (500, "transient"),
            (503, "transient"),
        ] {
            assert_eq!(class(code), want, "{code}");
        }
        let e = status_error(
            "gs://b/k GET",
            StatusCode::FORBIDDEN,
            "AuthorizationFailure",
        );
        assert_eq!(
            e.to_string(),
            "gs://b/k GET: HTTP 403 Forbidden: AuthorizationFailure"
        );
    }
}
