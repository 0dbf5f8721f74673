//! Bearer tokens that expire, and the cache that shares one among every
//! caller of a process: fetched once (concurrent callers wait for the same
//! fetch), fetched again when a quarter of its lifetime (at least a minute)
//! remains, and kept in use while its endpoint is down and it is still
//! valid. Google, Entra ID and RDS tokens all go through it.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::CloudError;

/// A token's lifetime when the issuer does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Fetch again when less than this remains, at least.
const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A token with less than this left is not handed out: a connection or a
/// request started with it would meet its expiry on the way.
const USABLE_MARGIN: Duration = Duration::from_secs(5);

/// After a failed refresh, while the cached token is still valid, callers
/// get it without a new attempt for this long: an endpoint that is down is
/// not asked once per new connection, each waiting for its timeout.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

/// A secret bearer token. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token {
    secret: String,
    issued: Instant,
    expires: Instant,
}

impl Token {
    /// A token valid for `lifetime` (an hour when `None`) from now.
    pub fn new(secret: String, lifetime: Option<Duration>) -> Token {
        let issued = Instant::now();
        Token {
            secret,
            issued,
            expires: issued + lifetime.unwrap_or(DEFAULT_LIFETIME),
        }
    }

    /// The value for an `Authorization: Bearer` header, or a password.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// How long it stays valid (zero once expired).
    pub fn expires_in(&self) -> Duration {
        self.expires.saturating_duration_since(Instant::now())
    }

    /// Its whole lifetime, from when it was issued.
    pub fn lifetime(&self) -> Duration {
        self.expires.saturating_duration_since(self.issued)
    }

    /// Whether it is time to fetch a new one: less than a quarter of its
    /// lifetime, and less than a minute at least, remains. An hour's token
    /// is renewed after 45 minutes, an RDS token (15 minutes) after about
    /// 11.
    pub fn needs_refresh(&self) -> bool {
        self.expires_in() < MIN_REFRESH_MARGIN.max(self.lifetime() / 4)
    }

    /// Whether it may still be handed out (a few seconds left at least).
    pub fn usable(&self) -> bool {
        self.expires_in() > USABLE_MARGIN
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(.., expires in {} s)", self.expires_in().as_secs())
    }
}

/// What a cache has done, for health checks and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Fetches attempted (successful or not).
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Whether the last fetch succeeded; `None` before the first.
    pub last_fetch_ok: Option<bool>,
    /// When the last fetch ended.
    pub last_fetch_at: Option<Instant>,
    /// The last failure's message (never a secret), kept after a success.
    pub last_error: Option<String>,
    /// When that failure happened.
    pub last_error_at: Option<Instant>,
    /// When the cached token expires; `None` when none was fetched.
    pub expires_at: Option<Instant>,
}

/// The current token of one identity.
#[derive(Default)]
pub struct TokenCache {
    slot: tokio::sync::Mutex<Slot>,
    /// Fetches that have ended: a caller that waited for the lock while
    /// one ended shares its outcome instead of fetching again.
    ended: AtomicU64,
    /// Apart from `slot`, so that reading it never waits for a fetch.
    stats: Mutex<CacheStats>,
    /// The token `slot` holds, readable while a fetch is in flight.
    latest: Mutex<Option<Token>>,
}

#[derive(Default)]
struct Slot {
    token: Option<Token>,
    last_failure: Option<(Instant, CloudError)>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl TokenCache {
    /// The token held now, if it may still be handed out (due for a
    /// refresh or not), without waiting for a fetch in flight.
    pub fn usable(&self) -> Option<Token> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|t| t.usable())
            .cloned()
    }

    /// The cached token while it does not need a refresh, else the one
    /// `fetch` gets (and keeps). Concurrent callers share a single fetch
    /// and its outcome. When a refresh fails and the cached token is still
    /// valid, that token is returned (the failure is recorded in
    /// [`TokenCache::stats`]), and no new attempt is made for
    /// [`RETRY_AFTER`].
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Token, CloudError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, CloudError>>,
    {
        let ended_before = self.ended.load(Ordering::SeqCst);
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.token.as_ref().filter(|t| !t.needs_refresh()) {
            return Ok(t.clone());
        }
        let usable = slot.token.as_ref().filter(|t| t.usable()).cloned();
        if let Some((at, err)) = &slot.last_failure {
            let shared = self.ended.load(Ordering::SeqCst) != ended_before;
            let backing_off = usable.is_some() && at.elapsed() < RETRY_AFTER;
            if shared || backing_off {
                return usable.ok_or_else(|| err.clone());
            }
        }
        let result = fetch().await;
        self.ended.fetch_add(1, Ordering::SeqCst);
        let now = Instant::now();
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.fetches += 1;
        stats.last_fetch_at = Some(now);
        match result {
            Ok(token) => {
                stats.last_fetch_ok = Some(true);
                stats.expires_at = Some(token.expires);
                slot.token = Some(token.clone());
                *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                slot.last_failure = None;
                Ok(token)
            }
            Err(e) => {
                stats.failures += 1;
                stats.last_fetch_ok = Some(false);
                stats.last_error = Some(e.message().to_string());
                stats.last_error_at = Some(now);
                slot.last_failure = Some((now, e.clone()));
                match usable {
                    Some(t) => {
                        tracing::warn!(
                            "token refresh failed, the cached token (valid {} s more) stays in use: {e}",
                            t.expires_in().as_secs()
                        );
                        Ok(t)
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// Counts, last outcome and the cached token's expiry.
    pub fn stats(&self) -> CacheStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
    pub fn parse(body: &[u8], who: &str) -> Result<Token, CloudError> {
        let answer: TokenAnswer = serde_json::from_slice(body).map_err(|_| {
            CloudError::transient(format!("{who}: the token answer is not the expected JSON"))
        })?;
        let lifetime = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .map(Duration::from_secs);
        if answer.access_token.is_empty() {
            return Err(CloudError::transient(format!("{who}: an empty token")));
        }
        Ok(Token::new(answer.access_token, lifetime))
    }
}

#[cfg(test)]
mod tests;
