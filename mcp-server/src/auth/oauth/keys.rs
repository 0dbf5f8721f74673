//! One trusted issuer's signing keys: found through its discovery document
//! (OpenID Connect, else RFC 8414), fetched from its `jwks_uri`, cached,
//! and fetched again on a timer and when a token names a key the cache does
//! not hold (at most once per [`MIN_ON_DEMAND_INTERVAL`], so forged `kid`s
//! cannot make the server hammer the issuer). A failed fetch keeps the keys
//! already held: an issuer that is down does not stop valid tokens.
//!
//! Only signing keys of the asymmetric families are kept (RSA, EC, OKP);
//! a symmetric (`oct`) key in a JWKS is dropped, so no token can be checked
//! with an HMAC whose secret is a published key.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use reqwest::Url;
use serde::Deserialize;

use super::settings::{IssuerSettings, web_url};

/// Fewest seconds between two fetches caused by unknown key ids.
pub const MIN_ON_DEMAND_INTERVAL: Duration = Duration::from_secs(10);
/// Longest a fetch of a discovery document or a JWKS may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 64;
/// Retry delays after a failed fetch, doubling up to the last.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// A verification key as a token's header is matched against it.
pub struct Key {
    pub kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    pub alg: Option<Algorithm>,
    pub family: AlgorithmFamily,
    pub key: DecodingKey,
}

/// The keys of one fetch.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// The key a token with this `kid` and `alg` is checked with. A token
    /// without a `kid` gets the only key of its family, if there is one.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        let fits = |k: &&Key| k.family == alg.family() && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(fits)
                .find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut of_family = self.keys.iter().filter(fits);
                let only = of_family.next()?;
                of_family.next().is_none().then_some(only)
            }
        }
    }
}

/// How an issuer's keys stand, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// The first fetch has not finished yet.
    Pending,
    /// The last fetch worked.
    Ok,
    /// The last fetch failed; the keys of an earlier one are in use.
    Stale,
    /// No fetch has worked: no token of this issuer can be checked.
    Unavailable,
}

#[derive(Default)]
struct Status {
    last_success: Option<Instant>,
    last_on_demand: Option<Instant>,
    last_error: Option<String>,
    failed_last: bool,
    fetches: u64,
}

/// What `/health` shows of one issuer: no key material, no token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuerHealth {
    pub issuer: String,
    pub state: KeyState,
    pub keys: usize,
    pub last_refresh_age_s: Option<u64>,
    pub last_error: Option<String>,
}

/// One issuer: its settings and its live keys.
pub struct IssuerKeys {
    pub settings: IssuerSettings,
    keys: ArcSwap<KeySet>,
    /// Bumped whenever `keys` is replaced: what a token was verified with.
    generation: std::sync::atomic::AtomicU64,
    status: Mutex<Status>,
    /// One fetch at a time; the others wait for it and use its keys.
    fetching: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    metrics: crate::metrics::OAuthMetrics,
}

/// Why a fetch failed: said in `/health` and the log, with the URL and
/// never a body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {reason}")]
    At { url: String, reason: String },
}

/// A failed fetch of `url`, named without userinfo, query or fragment.
fn at(url: &Url, reason: impl std::fmt::Display) -> FetchError {
    FetchError::At {
        url: fleet_common::redact::url(url.as_str()),
        reason: reason.to_string(),
    }
}

impl IssuerKeys {
    pub fn new(
        settings: IssuerSettings,
        http: reqwest::Client,
        metrics: crate::metrics::OAuthMetrics,
    ) -> IssuerKeys {
        IssuerKeys {
            metrics,
            settings,
            keys: ArcSwap::from_pointee(KeySet::default()),
            generation: Default::default(),
            status: Mutex::new(Status::default()),
            fetching: tokio::sync::Mutex::new(()),
            http,
        }
    }

    /// The keys now held.
    pub fn keys(&self) -> arc_swap::Guard<std::sync::Arc<KeySet>> {
        self.keys.load()
    }

    /// Which key set is held: changes whenever the keys are replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn store(&self, set: KeySet) {
        let n = i64::try_from(set.keys.len()).unwrap_or(i64::MAX);
        self.metrics
            .keys
            .get_or_create(&crate::metrics::IssuerLabel {
                issuer: self.settings.issuer.clone(),
            })
            .set(n);
        self.keys.store(std::sync::Arc::new(set));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fetch again because a token named a key not held; `false` if a
    /// fetch ran too recently to try again (the token is refused).
    pub async fn refresh_for_unknown_key(&self) -> bool {
        let seen = self.lock().fetches;
        let _one = self.fetching.lock().await;
        // Someone fetched while this waited: use what they found.
        if self.lock().fetches != seen {
            return true;
        }
        {
            let mut st = self.lock();
            if st
                .last_on_demand
                .is_some_and(|t| t.elapsed() < MIN_ON_DEMAND_INTERVAL)
            {
                return false;
            }
            st.last_on_demand = Some(Instant::now());
        }
        self.fetch_and_store().await.is_ok()
    }

    /// Fetch on the timer; the delay until the next fetch.
    pub async fn refresh_on_timer(&self, every: Duration, retry: &mut Duration) -> Duration {
        let _one = self.fetching.lock().await;
        match self.fetch_and_store().await {
            Ok(()) => {
                *retry = RETRY_FIRST;
                every
            }
            Err(_) => {
                let wait = *retry;
                *retry = (*retry * 2).min(RETRY_MAX);
                wait.min(every)
            }
        }
    }

    async fn fetch_and_store(&self) -> Result<(), FetchError> {
        let outcome = self.fetch().await;
        self.metrics
            .key_fetches
            .get_or_create(&crate::metrics::IssuerFetchLabels {
                issuer: self.settings.issuer.clone(),
                outcome: if outcome.is_ok() { "ok" } else { "error" },
            })
            .inc();
        let mut st = self.lock();
        st.fetches += 1;
        match outcome {
            Ok(set) => {
                let n = set.keys.len();
                self.store(set);
                if st.failed_last || st.last_success.is_none() {
                    tracing::info!(issuer = %self.settings.issuer, keys = n, "issuer keys loaded");
                }
                st.last_success = Some(Instant::now());
                st.failed_last = false;
                st.last_error = None;
                Ok(())
            }
            Err(e) => {
                if !st.failed_last {
                    tracing::warn!(
                        issuer = %self.settings.issuer,
                        error = %e,
                        "issuer keys could not be fetched; the keys held keep serving"
                    );
                }
                st.failed_last = true;
                st.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let jwks_uri = match &self.settings.jwks_uri {
            Some(u) => u.clone(),
            None => self.discover().await?,
        };
        let body = self.get(&jwks_uri).await?;
        parse_jwks(&body).map_err(|e| at(&jwks_uri, e))
    }

    /// The issuer's `jwks_uri`, from its OpenID Connect discovery document,
    /// else its RFC 8414 metadata. The document must name this issuer
    /// (a mix-up defence: another issuer's keys are never taken for its).
    async fn discover(&self) -> Result<Url, FetchError> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: Option<String>,
        }
        let issuer = self.settings.issuer.as_str();
        let base = Url::parse(issuer).map_err(|e| FetchError::At {
            url: fleet_common::redact::url(issuer),
            reason: e.to_string(),
        })?;
        let mut failed = Vec::new();
        for url in discovery_urls(&base) {
            let body = match self.get(&url).await {
                Ok(b) => b,
                Err(e) => {
                    failed.push(e.to_string());
                    continue;
                }
            };
            let meta: Metadata = serde_json::from_slice(&body)
                .map_err(|e| at(&url, format!("not a metadata document: {e}")))?;
            if meta.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                return Err(at(&url, "the document names another issuer"));
            }
            let jwks = meta
                .jwks_uri
                .ok_or_else(|| at(&url, "the document has no jwks_uri"))?;
            return web_url("jwks_uri", &jwks).map_err(|e| at(&url, e));
        }
        Err(FetchError::At {
            url: fleet_common::redact::url(issuer),
            reason: format!("no discovery document ({})", failed.join("; ")),
        })
    }

    async fn get(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let mut response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| at(url, reqwest_reason(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(at(url, format!("HTTP {}", status.as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| at(url, reqwest_reason(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(at(url, "document larger than 256 KiB"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    pub fn health(&self) -> IssuerHealth {
        let st = self.lock();
        let keys = self.keys.load().keys.len();
        let state = match (st.last_success, st.failed_last) {
            (None, _) if st.fetches == 0 => KeyState::Pending,
            (Some(_), false) => KeyState::Ok,
            (Some(_), true) => KeyState::Stale,
            (None, _) => KeyState::Unavailable,
        };
        IssuerHealth {
            issuer: self.settings.issuer.clone(),
            state,
            keys,
            last_refresh_age_s: st.last_success.map(|t| t.elapsed().as_secs()),
            last_error: st.last_error.clone(),
        }
    }
}

/// Where the metadata of `issuer` may be: OpenID Connect's
/// `ISSUER/.well-known/openid-configuration`, then RFC 8414's
/// `ORIGIN/.well-known/oauth-authorization-server/PATH`.
fn discovery_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    let mut rfc8414 = issuer.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    vec![oidc, rfc8414]
}

/// Why a request failed, without reqwest's URL (already said) or chain.
fn reqwest_reason(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    }
}

/// The signing keys of a JWKS document. Keys this server cannot use
/// (symmetric, for encryption, of an unknown type) are skipped; a document
/// with none it can use is an error, so a broken JWKS never replaces good
/// keys with nothing.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    #[derive(Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for value in doc.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if let Some(key) = key_of(&jwk) {
            keys.push(key);
        }
        if keys.len() == MAX_KEYS {
            break;
        }
    }
    if keys.is_empty() {
        return Err("the JWKS holds no signing key this server can use".into());
    }
    Ok(KeySet { keys })
}

fn key_of(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
        // Symmetric keys are never published by an issuer for resource
        // servers; taking one would let its holder mint tokens.
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => {
            let alg = a.to_string().parse::<Algorithm>().ok()?;
            if alg.family() != family {
                return None;
            }
            Some(alg)
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_follow_oidc_then_rfc8414() {
        let u = discovery_urls(&Url::parse("https://idp.example.com/realms/fleet").unwrap());
        assert_eq!(
            u[0].as_str(),
            "https://idp.example.com/realms/fleet/.well-known/openid-configuration"
        );
        assert_eq!(
            u[1].as_str(),
            "https://idp.example.com/.well-known/oauth-authorization-server/realms/fleet"
        );
        let root = discovery_urls(&Url::parse("http://127.0.0.1:9000").unwrap());
        assert_eq!(
            root[0].as_str(),
            "http://127.0.0.1:9000/.well-known/openid-configuration"
        );
    }

    #[test]
    fn jwks_keeps_signing_keys_and_drops_symmetric_and_encryption_ones() {
        let body = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
            {"kty":"EC","crv":"P-256","kid":"enc","use":"enc",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"RSA","kid":"rsa-mislabelled","alg":"ES256","n":"sXch","e":"AQAB"},
            {"kty":"weird"}
        ]}"#;
        let set = parse_jwks(body).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert!(set.find(Some("ec1"), Algorithm::ES256).is_some());
        assert!(set.find(Some("ec1"), Algorithm::RS256).is_none());
        assert!(set.find(Some("hmac"), Algorithm::HS256).is_none());
        assert!(set.find(None, Algorithm::ES256).is_some());
        assert!(parse_jwks(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }
}
