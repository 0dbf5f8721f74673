//! `s3://bucket/key` sources: a HEAD first (an unchanged object costs no body,
//! even on stores that ignore conditional GET), then a GET of whatever version
//! is current. Credentials, region and endpoint come from the standard AWS
//! chain (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` for S3-compatible
//! stores); the SDK makes one attempt per call, the caller retries.

use std::path::Path;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use bytes::Bytes;

use super::chain;
use super::{Body, Download, Fetch, SHA256_META, SourceError, SourceOptions, Validators};

/// The region used when the chain (env, profile, IMDS) names none.
const FALLBACK_REGION: &str = "us-east-1";

/// Clients already built in this process, by (path style, timeout): the
/// files of one manifest usually share a bucket, and one client shares its
/// credentials cache and connection pool.
static CLIENTS: tokio::sync::Mutex<Vec<((bool, Duration), Client)>> =
    tokio::sync::Mutex::const_new(Vec::new());

/// One object in a bucket.
#[derive(Debug, Clone)]
pub struct S3Source {
    client: Client,
    bucket: String,
    key: String,
    timeout: Duration,
}

impl S3Source {
    /// Parse `s3://bucket/key/with/slashes` and get the shared client for
    /// `opts`. The key is taken literally (no percent-decoding).
    pub async fn new(url: &str, opts: &SourceOptions) -> Result<S3Source, SourceError> {
        let (bucket, key) = parse_url(url)?;
        let client = shared_client(opts).await;
        Ok(S3Source {
            client,
            bucket,
            key,
            timeout: opts.timeout,
        })
    }

    /// HEAD the object; GET it unless its ETag is `have.etag`.
    pub async fn fetch(&self, have: &Validators) -> Result<Fetch, SourceError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| self.error("HEAD", e))?;
        let current = Validators {
            etag: head.e_tag().map(str::to_string),
            last_modified: head.last_modified().and_then(http_date),
            version: None,
        };
        if have.same_version(&current) {
            return Ok(Fetch::NotModified);
        }
        // The object may change between HEAD and GET: the GET's own headers
        // describe the bytes we read, so they are what we keep.
        let get = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| self.error("GET", e))?;
        let validators = Validators {
            etag: get.e_tag().map(str::to_string),
            last_modified: get.last_modified().and_then(http_date),
            version: None,
        };
        let sha256_meta = super::sha256_meta(
            get.metadata()
                .and_then(|m| m.get(SHA256_META))
                .map(String::as_str),
        );
        let size = get.content_length().and_then(|n| u64::try_from(n).ok());
        Ok(Fetch::Changed(Download {
            validators,
            sha256_meta,
            size,
            body: Body::S3(get.body),
        }))
    }

    /// Upload a local file to this object, recording `sha256_hex` as the
    /// object's `sha256` user metadata (for `kb-sync-sidecar push`). The
    /// upload has no overall time limit; a stalled one is cut by the SDK's
    /// stalled-stream protection after the configured timeout.
    pub async fn put_file(&self, path: &Path, sha256_hex: &str) -> Result<(), SourceError> {
        let body = ByteStream::from_path(path).await.map_err(|e| {
            SourceError::Permanent(format!("reading {}: {}", path.display(), chain(&e)))
        })?;
        let upload_timeouts = TimeoutConfig::builder()
            .connect_timeout(self.timeout)
            .disable_read_timeout()
            .disable_operation_attempt_timeout()
            .disable_operation_timeout()
            .build();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .metadata(SHA256_META, sha256_hex)
            .body(body)
            .customize()
            .config_override(aws_sdk_s3::config::Builder::default().timeout_config(upload_timeouts))
            .send()
            .await
            .map_err(|e| self.error("PUT", e))?;
        Ok(())
    }

    /// `s3://bucket/key`.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn error<E>(&self, what: &str, err: SdkError<E>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        classify(&format!("{} {what}", self.describe()), err)
    }
}

/// Split `s3://bucket/key` into bucket and key.
fn parse_url(url: &str) -> Result<(String, String), SourceError> {
    let bad = |why: &str| SourceError::Permanent(format!("bad S3 source {url:?}: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL"))?;
    if !scheme.eq_ignore_ascii_case("s3") {
        return Err(bad("not an s3:// URL"));
    }
    let (bucket, key) = rest
        .split_once('/')
        .ok_or_else(|| bad("no key: use s3://bucket/key"))?;
    if bucket.is_empty() {
        return Err(bad("no bucket: use s3://bucket/key"));
    }
    // Lenient on purpose (S3-compatible stores and old buckets allow more
    // than today's AWS rules); the store refuses what it does not accept.
    if bucket.len() > 255
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(bad("invalid bucket name"));
    }
    if key.is_empty() || key.ends_with('/') {
        return Err(bad("no object key: use s3://bucket/key"));
    }
    if key.len() > 1024 {
        return Err(bad("the key is longer than 1024 bytes"));
    }
    Ok((bucket.to_string(), key.to_string()))
}

/// The process-wide client for these options, built on first use.
async fn shared_client(opts: &SourceOptions) -> Client {
    let key = (opts.s3_path_style, opts.timeout);
    let mut clients = CLIENTS.lock().await;
    if let Some((_, c)) = clients.iter().find(|(k, _)| *k == key) {
        return c.clone();
    }
    let client = build_client(opts).await;
    clients.push((key, client.clone()));
    client
}

async fn build_client(opts: &SourceOptions) -> Client {
    let t = opts.timeout;
    let region = RegionProviderChain::default_provider().or_else(Region::new(FALLBACK_REGION));
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        // One attempt: the caller backs off with jitter and retries.
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(t)
                // Until the response headers (the body is streamed after).
                .read_timeout(t)
                .operation_attempt_timeout(t)
                .build(),
        )
        // A body that stops flowing for `t` fails the read.
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .grace_period(t)
                .build(),
        )
        .load()
        .await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(opts.s3_path_style)
        .build();
    Client::from_conf(conf)
}

/// Map an SDK error to a class and a readable message (no credentials: the
/// message holds the error chain and the service's code and message, never
/// the request).
fn classify<E>(what: &str, err: SdkError<E>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(_) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let region_hint = err
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(|r| format!(" (the bucket is in region {r}: set AWS_REGION)"))
                .unwrap_or_default();
            let code = err.code().unwrap_or("");
            let mut msg = format!("{what}: ");
            match status {
                Some(s) => msg.push_str(&format!("HTTP {s}")),
                None => msg.push_str("error"),
            }
            if !code.is_empty() {
                msg.push_str(&format!(" {code}"));
            }
            if let Some(m) = err.message().filter(|m| !m.is_empty()) {
                msg.push_str(&format!(": {m}"));
            }
            msg.push_str(&region_hint);
            match code {
                "NoSuchKey" | "NotFound" | "NoSuchBucket" => return SourceError::NotFound(msg),
                "RequestTimeTooSkewed" | "ExpiredToken" | "TokenRefreshRequired" => {
                    return SourceError::Transient(msg);
                }
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "InvalidBucketName"
                | "AllAccessDisabled"
                | "AccountProblem"
                | "InvalidObjectState"
                | "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException" => return SourceError::Permanent(msg),
                _ => {}
            }
            match status {
                Some(404) => SourceError::NotFound(msg),
                Some(301 | 401 | 403) => SourceError::Permanent(msg),
                _ => SourceError::Transient(msg),
            }
        }
        SdkError::ConstructionFailure(_) => {
            SourceError::Permanent(format!("{what}: {}", chain(&err)))
        }
        SdkError::DispatchFailure(d) if d.is_user() => {
            SourceError::Permanent(format!("{what}: {}", chain(&err)))
        }
        // Timeouts, connection errors, credentials that could not be loaded
        // right now, unparsable responses.
        _ => SourceError::Transient(format!("{what}: {}", chain(&err))),
    }
}

/// An S3 `Last-Modified` as an HTTP date.
fn http_date(t: &DateTime) -> Option<String> {
    t.fmt(DateTimeFormat::HttpDate).ok()
}

/// The next chunk of an object's body; a connection cut short, a stalled
/// stream or a failed checksum is a transient failure.
pub(crate) async fn next_chunk(stream: &mut ByteStream) -> Result<Option<Bytes>, SourceError> {
    stream
        .try_next()
        .await
        .map_err(|e| SourceError::Transient(format!("reading an S3 object: {}", chain(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("s3://bucket/prod/kb.db").unwrap(),
            ("bucket".to_string(), "prod/kb.db".to_string())
        );
        assert_eq!(
            parse_url("S3://my.bucket-1/a%20b/c d").unwrap(),
            ("my.bucket-1".to_string(), "a%20b/c d".to_string())
        );
        for bad in [
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://bucket/dir/",
            "s3://bu cket/key",
            "s3://user@bucket/key",
            "s3:bucket/key",
            "https://bucket/key",
        ] {
            assert!(
                matches!(parse_url(bad), Err(SourceError::Permanent(_))),
                "{bad} should be refused"
            );
        }
    }
}
