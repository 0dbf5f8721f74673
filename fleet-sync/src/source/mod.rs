//! Where files come from: `s3://`, `https://`/`http://` and `file://`.
//!
//! Every source answers one question, [`Source::fetch`]: given the validators
//! of the version we already have, is there a different one, and if so, its
//! bytes as a stream of chunks. An unchanged source transfers no body: S3 is
//! asked with a HEAD (which works whether or not a store honours conditional
//! GET), HTTP with `If-None-Match` / `If-Modified-Since`, and a local file is
//! compared by its identity. The caller streams the body to a temporary file,
//! hashing and bounding it as it goes.

pub mod file;
pub mod http;
pub mod s3;

use bytes::Bytes;

/// What identifies a version of a source's object, as the source reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// Settings shared by every source.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Connect and per-read timeout for network sources.
    pub timeout: std::time::Duration,
    /// Address S3 as `endpoint/bucket/key` rather than `bucket.endpoint/key`.
    pub s3_path_style: bool,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            timeout: std::time::Duration::from_secs(30),
            s3_path_style: false,
        }
    }
}

/// Why a fetch failed. Only `Permanent` errors are worth no retry.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source answered that the object does not exist (404, NoSuchKey,
    /// missing file). Retried: it may be published later.
    #[error("not found: {0}")]
    NotFound(String),
    /// Network trouble, 5xx, throttling, timeouts, a body cut short.
    #[error("{0}")]
    Transient(String),
    /// Refused for good: bad URL, access denied, unsupported scheme.
    #[error("{0}")]
    Permanent(String),
}

/// The outcome of asking a source for a newer version.
// One `Fetch` per sync cycle, moved once: boxing the download gains nothing.
#[allow(clippy::large_enum_variant)]
pub enum Fetch {
    /// Same version as the validators passed in; no body was transferred.
    NotModified,
    /// A different version; read it with [`Download::next_chunk`].
    Changed(Download),
}

/// A version being downloaded.
pub struct Download {
    pub validators: Validators,
    /// The sha256 the publisher recorded in the object's metadata
    /// (`x-amz-meta-sha256` on S3, set by `kb-sync-sidecar push`), if any.
    pub sha256_meta: Option<String>,
    /// The body's length, when the source knows it.
    pub size: Option<u64>,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    S3(aws_sdk_s3::primitives::ByteStream),
    Http(reqwest::Response),
    File(tokio::fs::File),
}

impl Download {
    /// The next chunk of the body, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
        match &mut self.body {
            Body::S3(stream) => s3::next_chunk(stream).await,
            Body::Http(resp) => http::next_chunk(resp).await,
            Body::File(f) => file::next_chunk(f).await,
        }
    }
}

/// One configured source.
pub enum Source {
    S3(s3::S3Source),
    Http(http::HttpSource),
    File(file::FileSource),
}

impl Source {
    /// Parse a source URL (`s3://bucket/key`, `https://...`, `http://...`,
    /// `file:///abs/path`).
    pub async fn parse(url: &str, opts: &SourceOptions) -> Result<Source, SourceError> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("s3") => Ok(Source::S3(s3::S3Source::new(url, opts).await?)),
            Some("http") | Some("https") => Ok(Source::Http(http::HttpSource::new(url, opts)?)),
            Some("file") => Ok(Source::File(file::FileSource::new(url)?)),
            _ => Err(SourceError::Permanent(format!(
                "unsupported source {url:?}: use s3://, https://, http:// or file://"
            ))),
        }
    }

    /// Ask for a version different from `have`; with empty validators, any
    /// version is new.
    pub async fn fetch(&self, have: &Validators) -> Result<Fetch, SourceError> {
        match self {
            Source::S3(s) => s.fetch(have).await,
            Source::Http(s) => s.fetch(have).await,
            Source::File(s) => s.fetch(have).await,
        }
    }

    /// A short description of the source for logs (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Source::S3(s) => s.describe(),
            Source::Http(s) => s.describe(),
            Source::File(s) => s.describe(),
        }
    }
}
