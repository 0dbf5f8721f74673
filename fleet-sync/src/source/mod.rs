//! Where files come from: `s3://`, `gs://`, `az://` (and
//! `https://ACCOUNT.blob.core.windows.net/...`), `https://`/`http://` and
//! `file://`.
//!
//! Every source answers one question, [`Source::fetch`]: given the validators
//! of the version we already have, is there a different one, and if so, its
//! bytes as a stream of chunks. An unchanged source transfers no body: S3 is
//! asked with a HEAD and GCS for the object's metadata (which works whether
//! or not a store honours conditional reads), Azure and HTTP with
//! `If-None-Match` / `If-Modified-Since`, and a local file is compared by its
//! identity. Whatever the store answers, [`Validators::same_version`] decides
//! "unchanged" the same way for all of them. The caller streams the body to a
//! temporary file, hashing and bounding it as it goes.
//!
//! - [`s3`], [`gcs`], [`azure`], [`http`], [`file`](mod@file): one source each.
//! - [`cloud`]: what the GCS and Azure clients share (HTTP client, status
//!   classes, uploads of a local file); [`google_auth`] and [`azure_auth`]:
//!   each platform's storage credentials. The identity-based ones (Google
//!   ADC, Entra ID workload and managed identity) and their token cache are
//!   `fleet_cloud`'s, shared with the server; their [`fleet_cloud::CloudError`]
//!   becomes a [`SourceError`] of the same class.

pub mod azure;
pub mod azure_auth;
pub mod cloud;
pub mod file;
pub mod gcs;
pub mod google_auth;
pub mod http;
pub mod s3;

use std::path::Path;

use bytes::Bytes;

/// The user metadata key under which `kb-sync-sidecar push` records a file's
/// sha256 and which every object store source reads back
/// (`x-amz-meta-sha256`, `x-goog-meta-sha256`, `x-ms-meta-sha256`).
pub const SHA256_META: &str = "sha256";

/// What identifies a version of a source's object, as the source reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The store's own version number, where it has one that names the
    /// content exactly (a GCS object's generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Validators {
    /// An HTTP answer's `ETag` and `Last-Modified`.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Validators {
        Validators {
            etag: header_str(headers, reqwest::header::ETAG.as_str()),
            last_modified: header_str(headers, reqwest::header::LAST_MODIFIED.as_str()),
            version: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none() && self.version.is_none()
    }

    /// Whether `got`, what a store reports now, is the version these
    /// validators describe: the same version number when both have one,
    /// else the same ETag, else (neither has an ETag) the same
    /// Last-Modified. Empty validators match nothing.
    pub fn same_version(&self, got: &Validators) -> bool {
        if let (Some(a), Some(b)) = (&self.version, &got.version) {
            return a == b;
        }
        match (&self.etag, &got.etag) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.last_modified.is_some() && self.last_modified == got.last_modified,
            _ => false,
        }
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

impl From<fleet_cloud::CloudError> for SourceError {
    fn from(e: fleet_cloud::CloudError) -> SourceError {
        match e {
            fleet_cloud::CloudError::Transient(m) => SourceError::Transient(m),
            fleet_cloud::CloudError::Permanent(m) => SourceError::Permanent(m),
        }
    }
}

/// A response header as trimmed text, if it is there and is text.
pub(crate) fn header_str(headers: &::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// A URL fit for logs: no userinfo, query string or fragment.
pub(crate) fn redacted(url: &reqwest::Url) -> String {
    fleet_common::redact::url(url.as_str())
}

/// An error and its sources, `: `-separated (what every client library's
/// error needs to be told in one line).
pub(crate) use fleet_cloud::error::chain;

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
    /// The sha256 the publisher recorded in the object's metadata (the
    /// [`SHA256_META`] key, set by `kb-sync-sidecar push`), if any.
    pub sha256_meta: Option<String>,
    /// The body's length, when the source knows it.
    pub size: Option<u64>,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    S3(aws_sdk_s3::primitives::ByteStream),
    /// HTTP, GCS and Azure bodies.
    Http(reqwest::Response),
    File(tokio::fs::File),
}

/// A recorded sha256 as found in metadata: trimmed, `None` when blank.
pub(crate) fn sha256_meta(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
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
    Gcs(gcs::GcsSource),
    Azure(azure::AzureSource),
    Http(http::HttpSource),
    File(file::FileSource),
}

impl Source {
    /// Parse a source URL (`s3://bucket/key`, `gs://bucket/key`,
    /// `az://container/key`, `https://ACCOUNT.blob.core.windows.net/...`,
    /// `https://...`, `http://...`, `file:///abs/path`).
    pub async fn parse(url: &str, opts: &SourceOptions) -> Result<Source, SourceError> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("s3") => Ok(Source::S3(s3::S3Source::new(url, opts).await?)),
            Some("gs") => Ok(Source::Gcs(gcs::GcsSource::new(url, opts)?)),
            Some("az") => Ok(Source::Azure(azure::AzureSource::new(url, opts)?)),
            Some("http") | Some("https") if azure::is_blob_url(url) => {
                Ok(Source::Azure(azure::AzureSource::new(url, opts)?))
            }
            Some("http") | Some("https") => Ok(Source::Http(http::HttpSource::new(url, opts)?)),
            Some("file") => Ok(Source::File(file::FileSource::new(url)?)),
            // Not quoted: an unparsable URL may still carry a signature.
            _ => Err(SourceError::Permanent(
                "unsupported source: use s3://, gs://, az://, https://, http:// or file://"
                    .to_string(),
            )),
        }
    }

    /// Ask for a version different from `have`; with empty validators, any
    /// version is new.
    pub async fn fetch(&self, have: &Validators) -> Result<Fetch, SourceError> {
        match self {
            Source::S3(s) => s.fetch(have).await,
            Source::Gcs(s) => s.fetch(have).await,
            Source::Azure(s) => s.fetch(have).await,
            Source::Http(s) => s.fetch(have).await,
            Source::File(s) => s.fetch(have).await,
        }
    }

    /// Upload a local file here, recording `sha256_hex` under
    /// [`SHA256_META`] (for `kb-sync-sidecar push`). Object stores only.
    pub async fn put_file(&self, path: &Path, sha256_hex: &str) -> Result<(), SourceError> {
        match self {
            Source::S3(s) => s.put_file(path, sha256_hex).await,
            Source::Gcs(s) => s.put_file(path, sha256_hex).await,
            Source::Azure(s) => s.put_file(path, sha256_hex).await,
            Source::Http(_) | Source::File(_) => Err(SourceError::Permanent(format!(
                "{}: uploads go to s3://, gs:// or az:// (or a file:// path)",
                self.describe()
            ))),
        }
    }

    /// A short description of the source for logs and the sync state: no
    /// credentials, no signature, no query string.
    pub fn describe(&self) -> String {
        match self {
            Source::S3(s) => s.describe(),
            Source::Gcs(s) => s.describe(),
            Source::Azure(s) => s.describe(),
            Source::Http(s) => s.describe(),
            Source::File(s) => s.describe(),
        }
    }
}
