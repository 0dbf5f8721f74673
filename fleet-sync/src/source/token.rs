//! Bearer tokens that expire: fetched once, shared by every request of a
//! process, and fetched again a few minutes before they run out. GCS and
//! Azure identities (service accounts, metadata servers, workload and
//! managed identity) all hand out such tokens.

use std::future::Future;
use std::time::{Duration, Instant};

use super::SourceError;

/// Fetch a new token this long before the current one expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A token's lifetime when the issuer does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// A secret bearer token. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token {
    secret: String,
    expires: Instant,
}

impl Token {
    /// A token valid for `lifetime` (an hour when `None`) from now.
    pub fn new(secret: String, lifetime: Option<Duration>) -> Token {
        Token {
            secret,
            expires: Instant::now() + lifetime.unwrap_or(DEFAULT_LIFETIME),
        }
    }

    /// The value for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    fn fresh(&self) -> bool {
        Instant::now() + REFRESH_MARGIN < self.expires
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The current token of one identity.
#[derive(Default)]
pub struct TokenCache {
    current: tokio::sync::Mutex<Option<Token>>,
}

impl TokenCache {
    /// The cached token while it is fresh, else the one `fetch` gets (and
    /// keeps). Concurrent callers wait for a single fetch.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Token, SourceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, SourceError>>,
    {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref().filter(|t| t.fresh()) {
            return Ok(t.clone());
        }
        let token = fetch().await?;
        *current = Some(token.clone());
        Ok(token)
    }
}

/// The common shape of OAuth token answers (Google's token endpoint and
/// metadata server, Microsoft Entra ID, Azure IMDS): `access_token` and a
/// lifetime in seconds, which IMDS sends as a string.
#[derive(serde::Deserialize)]
pub struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenAnswer {
    /// Parse a token endpoint's JSON answer; `who` names the endpoint in the
    /// error (the body itself is never quoted: it may hold a token).
    pub fn parse(body: &[u8], who: &str) -> Result<Token, SourceError> {
        let answer: TokenAnswer = serde_json::from_slice(body).map_err(|_| {
            SourceError::Transient(format!("{who}: the token answer is not the expected JSON"))
        })?;
        let lifetime = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .map(Duration::from_secs);
        if answer.access_token.is_empty() {
            return Err(SourceError::Transient(format!("{who}: an empty token")));
        }
        Ok(Token::new(answer.access_token, lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn cached_while_fresh_refetched_near_expiry() {
        let cache = TokenCache::default();
        let fetches = AtomicUsize::new(0);
        let fetch = |lifetime: u64| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(Token::new(
                    format!("t{n}"),
                    Some(Duration::from_secs(lifetime)),
                ))
            }
        };
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap().secret(), "t0");
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap().secret(), "t0");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // A token inside the refresh margin is replaced on next use.
        let cache = TokenCache::default();
        assert_eq!(cache.get(|| fetch(60)).await.unwrap().secret(), "t1");
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap().secret(), "t2");
        // A failed fetch is reported and nothing is cached.
        let cache = TokenCache::default();
        let err = cache
            .get(|| async { Err(SourceError::Transient("down".into())) })
            .await;
        assert!(err.is_err());
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap().secret(), "t3");
    }

    #[test]
    fn answers_and_debug() {
        let t =
            TokenAnswer::parse(br#"{"access_token":"s3cret","expires_in":"3599"}"#, "x").unwrap();
        assert_eq!(t.secret(), "s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
        let t = TokenAnswer::parse(
            br#"{"access_token":"a","expires_in":120,"token_type":"Bearer"}"#,
            "x",
        )
        .unwrap();
        assert!(!t.fresh());
        let e = TokenAnswer::parse(
            br#"{"error":"invalid_grant","access":"s3cret"}"#,
            "endpoint",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("endpoint") && !e.contains("s3cret"), "{e}");
    }
}

/// A token endpoint on 127.0.0.1 for tests: records every request and
/// answers with what `reply` says.
#[cfg(test)]
pub(crate) mod test_endpoint {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{Request, Response};

    #[derive(Debug, Clone)]
    pub struct Recorded {
        pub method: String,
        /// Path and query.
        pub target: String,
        pub headers: http::HeaderMap,
        pub body: String,
    }

    pub type Log = Arc<Mutex<Vec<Recorded>>>;

    /// Serve until the test ends; returns `http://127.0.0.1:PORT` and the log.
    pub async fn serve<F>(reply: F) -> (String, Log)
    where
        F: Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Log = Arc::default();
        let reply = Arc::new(reply);
        let l = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, reply) = (l.clone(), reply.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
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
                                let (status, text) = reply(&rec);
                                log.lock().unwrap().push(rec);
                                let mut resp = Response::new(Full::new(Bytes::from(text)));
                                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                                Ok::<_, Infallible>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), log)
    }

    /// The value of `key` in an `application/x-www-form-urlencoded` body.
    pub fn form_value(body: &str, key: &str) -> Option<String> {
        form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}
