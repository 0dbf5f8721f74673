//! Azure Blob Storage sources: `az://container/blob` (the account from the
//! connection string or `AZURE_STORAGE_ACCOUNT`) and
//! `https://ACCOUNT.blob.core.windows.net/container/blob` (optionally with a
//! SAS token in the query).
//!
//! A conditional Get Blob (`If-None-Match` with the ETag we have): Azure
//! and Azurite answer 304 for an unchanged blob; a store that ignores the
//! condition but repeats the ETag is treated as unchanged too, and its body
//! is dropped unread. The sha256 the publisher recorded is the blob's
//! `x-ms-meta-sha256`. Uploads (`push`) are one Put Blob with the file
//! streamed from disk (up to 5000 MiB). Credentials:
//! [`azure_auth`](super::azure_auth).

use std::path::Path;

use http::header::{self, HeaderValue};
use reqwest::{StatusCode, Url};

use super::azure_auth::{
    API_VERSION, AzureAccount, AzureAuth, SignedParts, process_env, shared_key_authorization,
};
use super::cloud;
use super::{Body, Download, Fetch, SHA256_META, SourceError, SourceOptions, Validators};
use super::{header_str, redacted};

/// The host suffix that makes an `https://` URL an Azure Blob source.
const BLOB_HOST_SUFFIX: &str = ".blob.core.windows.net";

/// Whether `url` is an `https://ACCOUNT.blob.core.windows.net/...` URL.
pub fn is_blob_url(url: &str) -> bool {
    Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
        .is_some_and(|h| h.ends_with(BLOB_HOST_SUFFIX) && h.len() > BLOB_HOST_SUFFIX.len())
}

/// One blob.
#[derive(Clone)]
pub struct AzureSource {
    http: reqwest::Client,
    account: AzureAccount,
    /// The blob's URL, without any query.
    url: Url,
    /// What logs show: `az://container/blob` or the URL without its query.
    display: String,
}

impl AzureSource {
    /// Parse either URL form and find the account's credentials.
    pub fn new(url: &str, opts: &SourceOptions) -> Result<AzureSource, SourceError> {
        let http = cloud::client(opts.timeout)?;
        if url
            .split_once("://")
            .is_some_and(|(s, _)| s.eq_ignore_ascii_case("az"))
        {
            let (container, blob) = parse_az_url(url)?;
            let account = AzureAccount::from_env(&process_env)?;
            let blob_url = blob_url(&account.endpoint, &container, &blob)?;
            return Ok(AzureSource {
                http,
                account,
                url: blob_url,
                display: format!("az://{container}/{blob}"),
            });
        }
        let (name, endpoint, blob_url, sas) = parse_https_url(url)?;
        let account = AzureAccount::named(name, endpoint, sas, &process_env)?;
        Ok(AzureSource {
            http,
            account,
            display: redacted(&blob_url),
            url: blob_url,
        })
    }

    pub fn describe(&self) -> String {
        self.display.clone()
    }

    /// A request with the date, version, `headers` (besides `x-ms-*` ones:
    /// content length and type, If-None-Match) and the account's
    /// authorization.
    async fn request(
        &self,
        method: reqwest::Method,
        content: Option<(u64, &str)>,
        if_none_match: Option<&str>,
        ms_headers: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, SourceError> {
        let date = http_date_now();
        let mut all_ms: Vec<(&str, &str)> =
            vec![("x-ms-date", date.as_str()), ("x-ms-version", API_VERSION)];
        all_ms.extend_from_slice(ms_headers);
        let mut url = self.url.clone();
        let mut authorization = None;
        match &*self.account.auth {
            AzureAuth::SharedKey { account, key } => {
                authorization = Some(shared_key_authorization(
                    account,
                    key,
                    &SignedParts {
                        method: method.as_str(),
                        path: url.path(),
                        content_length: content.map(|(n, _)| n),
                        content_type: content.map(|(_, t)| t),
                        if_none_match,
                        ms_headers: &all_ms,
                    },
                ));
            }
            AzureAuth::Sas(sas) => url.set_query(Some(sas)),
            _ => {
                if let Some(token) = self.account.auth.token(&self.http).await? {
                    authorization = Some(format!("Bearer {}", token.secret()));
                }
            }
        }
        let mut req = self.http.request(method, url);
        for (name, value) in &all_ms {
            req = req.header(*name, *value);
        }
        if let Some((len, ctype)) = content {
            req = req
                .header(header::CONTENT_LENGTH, len)
                .header(header::CONTENT_TYPE, ctype);
        }
        if let Some(etag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(a) = authorization {
            let mut v = HeaderValue::from_str(&a).map_err(|_| {
                SourceError::Permanent(format!("{}: unusable credentials", self.describe()))
            })?;
            v.set_sensitive(true);
            req = req.header(header::AUTHORIZATION, v);
        }
        Ok(req)
    }

    fn send_error(&self, what: &str, e: reqwest::Error) -> SourceError {
        cloud::transport_error(&format!("{} {what}", self.describe()), e)
    }

    fn status_error(&self, what: &str, resp: &reqwest::Response) -> SourceError {
        let code = header_str(resp.headers(), "x-ms-error-code").unwrap_or_default();
        cloud::status_error(
            &format!("{} {what}", self.describe()),
            resp.status(),
            &cloud::short(&code),
        )
    }

    /// Get the blob unless its ETag is still `have.etag`.
    pub async fn fetch(&self, have: &Validators) -> Result<Fetch, SourceError> {
        // Validators come from our own state file; one that is not a valid
        // header value is not sent (the download is then unconditional).
        let inm = have
            .etag
            .as_deref()
            .filter(|e| HeaderValue::from_str(e).is_ok());
        let resp = self
            .request(reqwest::Method::GET, None, inm, &[])
            .await?
            .send()
            .await
            .map_err(|e| self.send_error("GET", e))?;
        match resp.status() {
            StatusCode::NOT_MODIFIED if !have.is_empty() => Ok(Fetch::NotModified),
            StatusCode::OK => {
                let headers = resp.headers();
                let validators = Validators::from_headers(headers);
                if have.same_version(&validators) {
                    return Ok(Fetch::NotModified);
                }
                let meta = format!("x-ms-meta-{SHA256_META}");
                Ok(Fetch::Changed(Download {
                    sha256_meta: super::sha256_meta(header_str(headers, &meta).as_deref()),
                    validators,
                    size: resp.content_length(),
                    body: Body::Http(resp),
                }))
            }
            _ => Err(self.status_error("GET", &resp)),
        }
    }

    /// Upload a local file as this blob (a block blob) with `sha256_hex` in
    /// its metadata.
    pub async fn put_file(&self, path: &Path, sha256_hex: &str) -> Result<(), SourceError> {
        let (len, file) = cloud::file_stream(path).await?;
        let meta = format!("x-ms-meta-{SHA256_META}");
        let req = self
            .request(
                reqwest::Method::PUT,
                Some((len, "application/octet-stream")),
                None,
                &[("x-ms-blob-type", "BlockBlob"), (&meta, sha256_hex)],
            )
            .await?;
        let resp = req
            .body(reqwest::Body::wrap_stream(file))
            .send()
            .await
            .map_err(|e| self.send_error("PUT", e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error("PUT", &resp))
        }
    }
}

/// Now, as an HTTP date (`x-ms-date`).
fn http_date_now() -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}

/// `endpoint/container/blob`, each path segment escaped.
fn blob_url(endpoint: &str, container: &str, blob: &str) -> Result<Url, SourceError> {
    let bad = || SourceError::Permanent(format!("bad Azure Blob endpoint {endpoint}"));
    let mut url = Url::parse(endpoint).map_err(|_| bad())?;
    url.set_query(None);
    url.path_segments_mut()
        .map_err(|()| bad())?
        .pop_if_empty()
        .push(container)
        .extend(blob.split('/'));
    Ok(url)
}

fn check_names(container: &str, blob: &str) -> Result<(), &'static str> {
    // Azure's rules: 3 to 63 characters of a-z, 0-9 and '-' ($root and
    // $web are special containers).
    let container_ok = matches!(container, "$root" | "$web")
        || (container.len() >= 3
            && container.len() <= 63
            && container
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    if !container_ok {
        return Err("invalid container name");
    }
    if blob.is_empty() || blob.ends_with('/') {
        return Err("no blob name");
    }
    if blob.len() > 1024 || blob.contains(['\r', '\n']) {
        return Err("invalid blob name");
    }
    Ok(())
}

/// Split `az://container/blob`.
fn parse_az_url(url: &str) -> Result<(String, String), SourceError> {
    if url.contains(['?', '#']) {
        // Not quoted: what follows may be a SAS token.
        return Err(SourceError::Permanent(
            "bad Azure source: az:// URLs take no query; give a SAS token in \
             AZURE_STORAGE_SAS_TOKEN or the connection string, or use \
             https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB?SAS"
                .to_string(),
        ));
    }
    let bad = |why: &str| SourceError::Permanent(format!("bad Azure source {url:?}: {why}"));
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let (container, blob) = rest
        .split_once('/')
        .ok_or_else(|| bad("use az://container/blob"))?;
    check_names(container, blob).map_err(|why| bad(&format!("{why}: use az://container/blob")))?;
    Ok((container.to_string(), blob.to_string()))
}

/// Split `https://ACCOUNT.blob.core.windows.net/container/blob[?SAS]` into
/// the account, its endpoint, the blob's URL and the SAS. Errors show the
/// URL without its query.
fn parse_https_url(url: &str) -> Result<(String, String, Url, Option<String>), SourceError> {
    let parsed = Url::parse(url)
        .map_err(|e| SourceError::Permanent(format!("bad Azure Blob source: {e}")))?;
    let shown = redacted(&parsed);
    let bad = |why: &str| SourceError::Permanent(format!("bad Azure Blob source {shown}: {why}"));
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials in the URL are not used by Azure: use a SAS token",
        ));
    }
    let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
    let account = host
        .strip_suffix(BLOB_HOST_SUFFIX)
        .filter(|a| !a.is_empty() && !a.contains('.'))
        .ok_or_else(|| bad("not an ACCOUNT.blob.core.windows.net URL"))?
        .to_string();
    let path = parsed.path().trim_start_matches('/');
    let decoded: String = percent_decode(path);
    let (container, blob) = decoded
        .split_once('/')
        .ok_or_else(|| bad("use https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB"))?;
    check_names(container, blob).map_err(&bad)?;
    let sas = match parsed.query() {
        None | Some("") => None,
        Some(q) if parsed.query_pairs().any(|(k, _)| k == "sig") => Some(q.to_string()),
        Some(_) => {
            return Err(bad(
                "the only query a blob URL may carry is a SAS token (sig=...)",
            ));
        }
    };
    let endpoint = format!("{}://{host}", parsed.scheme());
    let blob_url = blob_url(&endpoint, container, blob)?;
    Ok((account, endpoint, blob_url, sas))
}

/// Percent-decoding of a URL path (invalid escapes kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_blob_urls() {
        assert!(is_blob_url("https://acct.blob.core.windows.net/c/k"));
        assert!(is_blob_url(
            "HTTPS://Acct.Blob.Core.Windows.Net/c/k?sv=1&sig=x"
        ));
        assert!(!is_blob_url("https://blob.core.windows.net/c/k"));
        assert!(!is_blob_url(
            "https://example.com/acct.blob.core.windows.net/k"
        ));
        assert!(!is_blob_url("not a url"));
    }

    #[test]
    fn parses_az_urls() {
        assert_eq!(
            parse_az_url("az://kb-prod/dir/kb.db").unwrap(),
            ("kb-prod".to_string(), "dir/kb.db".to_string())
        );
        for bad in [
            "az://kb",
            "az://kb/",
            "az://Kb/x",
            "az://k/x",
            "az:///x",
            "az://kb-prod/d/",
        ] {
            assert!(parse_az_url(bad).is_err(), "{bad}");
        }
        let e = parse_az_url("az://kbs/kb.db?sv=1&sig=s3cret")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret") && e.contains("SAS"), "{e}");
    }

    #[test]
    fn parses_https_urls_and_keeps_the_sas_out_of_sight() {
        let (account, endpoint, url, sas) = parse_https_url(
            "https://acct.blob.core.windows.net/kbs/dir/kb%20v2.db?sv=2021-12-02&sig=s3cret%3D",
        )
        .unwrap();
        assert_eq!(account, "acct");
        assert_eq!(endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(
            url.as_str(),
            "https://acct.blob.core.windows.net/kbs/dir/kb%20v2.db"
        );
        assert_eq!(sas.as_deref(), Some("sv=2021-12-02&sig=s3cret%3D"));

        let (_, _, _, sas) =
            parse_https_url("https://acct.blob.core.windows.net/kbs/kb.db").unwrap();
        assert_eq!(sas, None);

        for bad in [
            "https://acct.blob.core.windows.net/kbs",
            "https://acct.blob.core.windows.net/kbs/?sig=s3cret",
            "https://acct.blob.core.windows.net/kbs/kb.db?snapshot=1&x=s3cret",
            "https://user:s3cret@acct.blob.core.windows.net/kbs/kb.db",
            "https://a.b.blob.core.windows.net/kbs/kb.db?sig=s3cret",
        ] {
            let e = parse_https_url(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(matches!(e, SourceError::Permanent(_)));
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn blob_urls_for_both_endpoint_styles() {
        assert_eq!(
            blob_url("http://127.0.0.1:10000/devstoreaccount1", "kbs", "a/b c.db")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/kbs/a/b%20c.db"
        );
        assert_eq!(
            blob_url("https://acct.blob.core.windows.net/", "kbs", "kb.db")
                .unwrap()
                .as_str(),
            "https://acct.blob.core.windows.net/kbs/kb.db"
        );
        assert!(http_date_now().ends_with(" GMT"));
    }
}
