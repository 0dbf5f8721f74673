//! `gs://bucket/key` sources over the Cloud Storage JSON API.
//!
//! The object's metadata is read first (a small JSON document, no body),
//! with `ifGenerationNotMatch` so that Cloud Storage answers 304 for the
//! generation we already have; an emulator that ignores the condition
//! still tells us the generation, which is compared here. Only a different
//! generation is downloaded, and that exact generation (`generation=G`), so
//! the bytes are those the metadata describes; if it was replaced meanwhile
//! the download is a 404 and the cycle is retried. The sha256 the publisher
//! recorded is the object's `metadata.sha256`.
//!
//! Credentials: [`super::google_auth`]. Uploads (`push`) are
//! one multipart request: the metadata, then the file streamed from disk.

use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{StatusCode, Url};

use super::cloud;
use super::google_auth::{self, GoogleEndpoint};
use super::{Body, Download, Fetch, SHA256_META, SourceError, SourceOptions, Validators};

/// One object in a bucket.
#[derive(Clone)]
pub struct GcsSource {
    http: reqwest::Client,
    endpoint: GoogleEndpoint,
    bucket: String,
    object: String,
}

/// The fields of an object resource we use.
#[derive(serde::Deserialize)]
struct ObjectMeta {
    generation: String,
    etag: Option<String>,
    updated: Option<String>,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

impl GcsSource {
    /// Parse `gs://bucket/object/with/slashes` (taken literally) and find
    /// the endpoint and credentials from the environment.
    pub fn new(url: &str, opts: &SourceOptions) -> Result<GcsSource, SourceError> {
        let (bucket, object) = parse_url(url)?;
        Ok(GcsSource {
            http: cloud::client(opts.timeout)?,
            endpoint: google_auth::endpoint()?,
            bucket,
            object,
        })
    }

    /// `gs://bucket/object`.
    pub fn describe(&self) -> String {
        format!("gs://{}/{}", self.bucket, self.object)
    }

    /// `{base}/{prefix...}/b/{bucket}/o[/{object}]`, each part escaped.
    fn api_url(&self, prefix: &[&str], with_object: bool) -> Result<Url, SourceError> {
        let mut url = Url::parse(&self.endpoint.base).map_err(|e| {
            SourceError::Permanent(format!("bad GCS endpoint {}: {e}", self.endpoint.base))
        })?;
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                SourceError::Permanent(format!("bad GCS endpoint {}", self.endpoint.base))
            })?;
            path.pop_if_empty()
                .extend(prefix)
                .extend(["b", &self.bucket, "o"]);
            if with_object {
                path.push(&self.object);
            }
        }
        Ok(url)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, SourceError> {
        let mut req = req;
        if let Some(token) = self.endpoint.token(&self.http).await? {
            req = req.bearer_auth(token.secret());
        }
        req.send()
            .await
            .map_err(|e| cloud::transport_error(&format!("{} {what}", self.describe()), e))
    }

    async fn error(&self, what: &str, resp: reqwest::Response) -> SourceError {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(cloud::short))
            .unwrap_or_default();
        cloud::status_error(&format!("{} {what}", self.describe()), status, &detail)
    }

    /// Read the metadata (conditionally); download the generation it names
    /// unless it is the one `have` describes.
    pub async fn fetch(&self, have: &Validators) -> Result<Fetch, SourceError> {
        let mut url = self.api_url(&["storage", "v1"], true)?;
        if let Some(g) = &have.version {
            url.query_pairs_mut().append_pair("ifGenerationNotMatch", g);
        }
        let resp = self.send(self.http.get(url), "metadata").await?;
        match resp.status() {
            StatusCode::NOT_MODIFIED if have.version.is_some() => return Ok(Fetch::NotModified),
            StatusCode::OK => {}
            _ => return Err(self.error("metadata", resp).await),
        }
        let what = format!("{} metadata", self.describe());
        let body = cloud::small_body(&what, resp).await?;
        let meta: ObjectMeta = serde_json::from_slice(&body)
            .map_err(|e| SourceError::Transient(format!("{what}: not an object resource: {e}")))?;
        let validators = Validators {
            etag: meta.etag.clone(),
            last_modified: meta.updated.clone(),
            version: Some(meta.generation.clone()),
        };
        if have.same_version(&validators) {
            return Ok(Fetch::NotModified);
        }
        let mut url = self.api_url(&["storage", "v1"], true)?;
        url.query_pairs_mut()
            .append_pair("alt", "media")
            .append_pair("generation", &meta.generation);
        let resp = self.send(self.http.get(url), "GET").await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(SourceError::Transient(format!(
                    "{}: generation {} was replaced while it was being read",
                    self.describe(),
                    meta.generation
                )));
            }
            _ => return Err(self.error("GET", resp).await),
        }
        Ok(Fetch::Changed(Download {
            validators,
            sha256_meta: super::sha256_meta(meta.metadata.get(SHA256_META).map(String::as_str)),
            size: resp.content_length(),
            body: Body::Http(resp),
        }))
    }

    /// Upload a local file as this object with `sha256_hex` in its
    /// metadata: one multipart request, the file streamed from disk.
    pub async fn put_file(&self, path: &Path, sha256_hex: &str) -> Result<(), SourceError> {
        let (len, file) = cloud::file_stream(path).await?;
        let boundary = format!("kb-sync-{:032x}", rand::random::<u128>());
        let resource = serde_json::json!({
            "name": self.object,
            "metadata": { SHA256_META: sha256_hex },
        });
        let head = Bytes::from(format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{resource}\r\n\
             --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        let total = head.len() as u64 + len + tail.len() as u64;
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(head)])
            .chain(file)
            .chain(futures_util::stream::iter([Ok(tail)]));
        let mut url = self.api_url(&["upload", "storage", "v1"], false)?;
        url.query_pairs_mut().append_pair("uploadType", "multipart");
        let req = self
            .http
            .post(url)
            .header(
                "content-type",
                format!("multipart/related; boundary={boundary}"),
            )
            .header("content-length", total)
            .body(reqwest::Body::wrap_stream(stream));
        let resp = self.send(req, "upload").await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.error("upload", resp).await)
        }
    }
}

/// Split `gs://bucket/object` into bucket and object.
fn parse_url(url: &str) -> Result<(String, String), SourceError> {
    let bad = |why: &str| SourceError::Permanent(format!("bad GCS source {url:?}: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL"))?;
    if !scheme.eq_ignore_ascii_case("gs") {
        return Err(bad("not a gs:// URL"));
    }
    let (bucket, object) = rest
        .split_once('/')
        .ok_or_else(|| bad("no object: use gs://bucket/object"))?;
    // Cloud Storage's rules: 3 to 222 characters of a-z, 0-9, '-', '_', '.'.
    if bucket.len() < 3
        || bucket.len() > 222
        || !bucket.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
    {
        return Err(bad("invalid bucket name"));
    }
    if object.is_empty() || object.ends_with('/') {
        return Err(bad("no object name: use gs://bucket/object"));
    }
    if object.len() > 1024 || object.contains(['\r', '\n']) {
        return Err(bad("invalid object name"));
    }
    Ok((bucket.to_string(), object.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("gs://my-bucket/prod/kb.db").unwrap(),
            ("my-bucket".to_string(), "prod/kb.db".to_string())
        );
        assert_eq!(
            parse_url("GS://b.c_d/a b/c%20d").unwrap(),
            ("b.c_d".to_string(), "a b/c%20d".to_string())
        );
        for bad in [
            "gs://bucket",
            "gs://bucket/",
            "gs:///obj",
            "gs://ab/obj",
            "gs://Bucket/obj",
            "gs://bucket/dir/",
            "gs://user@bucket/obj",
            "s3://bucket/obj",
        ] {
            assert!(
                matches!(parse_url(bad), Err(SourceError::Permanent(_))),
                "{bad} should be refused"
            );
        }
    }
}
