//! [`DbIdentity`]: the password of a new database connection made from the
//! server's cloud identity instead of a stored secret:
//!
//! - `aws-rds-iam`: an RDS IAM auth token ([`crate::aws`]), one per
//!   (host, port, user), signed with the AWS default chain's credentials.
//! - `gcp-iam`: a Google access token with the Cloud SQL login scope
//!   ([`crate::google::DATABASE_LOGIN_SCOPES`]) from Application Default
//!   Credentials, for Cloud SQL and AlloyDB IAM database users.
//! - `azure-entra`: a Microsoft Entra ID token for
//!   `https://ossrdbms-aad.database.windows.net/.default`
//!   ([`crate::azure::OSSRDBMS`]), for Azure Database for PostgreSQL.
//!
//! There is no background task: a token is fetched when a connection needs
//! one and it is due ([`crate::token::Token::needs_refresh`]: a quarter of
//! its lifetime, and at least a minute, left), concurrent callers sharing
//! the fetch. While the token endpoint is down, a cached token that is
//! still valid keeps being handed out, and [`DbIdentity::status`] reports
//! the failure; connections already open are not touched at all (a token
//! is only checked when a session starts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aws::RdsIam;
use crate::azure::{EntraCredential, OSSRDBMS};
use crate::env::{Env, process_env};
use crate::error::CloudError;
use crate::google::{DATABASE_LOGIN_SCOPES, GoogleAdc};
use crate::token::{CacheStats, Token, TokenCache};

/// Connect and read timeout of the token endpoints.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new connection waits for the refresh of a token that is
/// still valid before it goes ahead with that token.
pub const REFRESH_WAIT: Duration = Duration::from_millis(500);

const USER_AGENT: &str = concat!("fleet-cloud/", env!("CARGO_PKG_VERSION"));

/// Which cloud identity logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// RDS / Aurora IAM database authentication; the region of the
    /// database, else the AWS chain's.
    AwsRdsIam { region: Option<String> },
    /// Cloud SQL / AlloyDB IAM database authentication.
    GcpIam,
    /// Azure Database for PostgreSQL with Microsoft Entra ID.
    AzureEntra,
}

impl Method {
    /// `aws-rds-iam`, `gcp-iam` or `azure-entra`: the configuration's name,
    /// and the label of status and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Method::AwsRdsIam { .. } => "aws-rds-iam",
            Method::GcpIam => "gcp-iam",
            Method::AzureEntra => "azure-entra",
        }
    }
}

/// A cloud identity that makes database passwords. Cheap to clone: clones
/// share the provider and its tokens.
#[derive(Clone)]
pub struct DbIdentity {
    inner: Arc<Inner>,
}

struct Inner {
    label: &'static str,
    http: reqwest::Client,
    provider: Provider,
}

enum Provider {
    /// RDS tokens name the endpoint and user: one cache each.
    Aws {
        rds: RdsIam,
        caches: Mutex<HashMap<(String, u16, String), Arc<TokenCache>>>,
    },
    Gcp(GoogleAdc),
    Azure(EntraCredential),
}

/// What `/health` and the metrics show of an identity. No secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityStatus {
    /// `aws-rds-iam`, `gcp-iam` or `azure-entra`.
    pub method: &'static str,
    /// Whether the last fetch succeeded; `None` before the first.
    pub last_fetch_ok: Option<bool>,
    /// The last failure's message, kept after later successes.
    pub last_error: Option<String>,
    /// Until the cached token expires (the soonest, for RDS tokens of
    /// several endpoints); `None` when none was fetched, zero once expired.
    pub expires_in: Option<Duration>,
    /// Fetches attempted (successful or not), and those that failed.
    pub fetches: u64,
    pub failures: u64,
}

impl std::fmt::Debug for DbIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("DbIdentity");
        d.field("method", &self.inner.label);
        match &self.inner.provider {
            Provider::Aws { rds, .. } => d.field("provider", rds),
            Provider::Gcp(adc) => d.field("provider", adc),
            Provider::Azure(cred) => d.field("provider", cred),
        };
        d.field("status", &self.status()).finish()
    }
}

impl DbIdentity {
    /// The identity `method` names, found from the process environment
    /// (see [`DbIdentity::from_env`]).
    pub fn new(method: Method) -> Result<DbIdentity, CloudError> {
        DbIdentity::from_env(method, &process_env)
    }

    /// The identity `method` names, its configuration read through `env`:
    /// a configuration that cannot work (a key file that is not there or
    /// not a key, half the workload identity variables, a bad region) is a
    /// permanent error now; nothing is fetched until the first password.
    /// The AWS chain reads the process environment itself, when the first
    /// token is made.
    pub fn from_env(method: Method, env: Env) -> Result<DbIdentity, CloudError> {
        match method {
            Method::AwsRdsIam { region } => DbIdentity::aws(RdsIam::new(region)?),
            Method::GcpIam => DbIdentity::gcp(GoogleAdc::from_env(DATABASE_LOGIN_SCOPES, env)?),
            Method::AzureEntra => DbIdentity::azure(EntraCredential::from_env(OSSRDBMS, env)?),
        }
    }

    /// RDS IAM tokens from `rds`.
    pub fn aws(rds: RdsIam) -> Result<DbIdentity, CloudError> {
        DbIdentity::with(
            "aws-rds-iam",
            Provider::Aws {
                rds,
                caches: Mutex::default(),
            },
        )
    }

    /// Google tokens from `adc` (made for [`DATABASE_LOGIN_SCOPES`]).
    pub fn gcp(adc: GoogleAdc) -> Result<DbIdentity, CloudError> {
        DbIdentity::with("gcp-iam", Provider::Gcp(adc))
    }

    /// Entra ID tokens from `cred` (made for [`OSSRDBMS`]).
    pub fn azure(cred: EntraCredential) -> Result<DbIdentity, CloudError> {
        DbIdentity::with("azure-entra", Provider::Azure(cred))
    }

    fn with(label: &'static str, provider: Provider) -> Result<DbIdentity, CloudError> {
        Ok(DbIdentity {
            inner: Arc::new(Inner {
                label,
                http: crate::http::client(TOKEN_TIMEOUT, USER_AGENT)?,
                provider,
            }),
        })
    }

    /// `aws-rds-iam`, `gcp-iam` or `azure-entra`.
    pub fn method(&self) -> &'static str {
        self.inner.label
    }

    /// The password for a new connection as `user` to `host:port`: cached
    /// (per host, port and user for RDS; one token for Google and Azure),
    /// fetched again when less than a quarter of its lifetime (at least a
    /// minute) remains; when that refresh fails and the cached token is
    /// still valid, the cached token (the failure shows in
    /// [`DbIdentity::status`]); else the error.
    ///
    /// A refresh of a token that is still valid is waited for at most
    /// [`REFRESH_WAIT`]: past that, the valid token is handed out and the
    /// refresh goes on in the background, so a token endpoint that hangs
    /// (a slow metadata server) does not hold up new connections, or
    /// `/health`, while the token in hand still works.
    pub async fn password(&self, host: &str, port: u16, user: &str) -> Result<String, CloudError> {
        let Some(valid) = self.usable(host, port, user) else {
            return self.fetch(host, port, user).await;
        };
        if !valid.needs_refresh() {
            return Ok(valid.secret().to_string());
        }
        let (this, host, user) = (self.clone(), host.to_string(), user.to_string());
        let refresh = tokio::spawn(async move { this.fetch(&host, port, &user).await });
        match tokio::time::timeout(REFRESH_WAIT, refresh).await {
            Ok(Ok(result)) => result,
            // Still fetching (or the task ended abnormally): the token in hand.
            _ => Ok(valid.secret().to_string()),
        }
    }

    /// The token held for `host:port` as `user` while it may still be
    /// handed out (due for a refresh or not).
    fn usable(&self, host: &str, port: u16, user: &str) -> Option<Token> {
        match &self.inner.provider {
            Provider::Aws { caches, .. } => caches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(host.to_string(), port, user.to_string()))
                .and_then(|c| c.usable()),
            Provider::Gcp(adc) => adc.cache().usable(),
            Provider::Azure(cred) => cred.cache().usable(),
        }
    }

    /// The token from the cache, fetched when it is due (waiting for it).
    async fn fetch(&self, host: &str, port: u16, user: &str) -> Result<String, CloudError> {
        let http = &self.inner.http;
        let token = match &self.inner.provider {
            Provider::Aws { rds, caches } => {
                let cache = {
                    let mut caches = caches.lock().unwrap_or_else(|p| p.into_inner());
                    caches
                        .entry((host.to_string(), port, user.to_string()))
                        .or_default()
                        .clone()
                };
                cache.get(|| rds.token(host, port, user)).await?
            }
            Provider::Gcp(adc) => adc.token(http).await?,
            Provider::Azure(cred) => cred.token(http).await?,
        };
        Ok(token.secret().to_string())
    }

    /// Last outcome, counts and expiry, for `/health` and metrics.
    pub fn status(&self) -> IdentityStatus {
        let stats: Vec<CacheStats> = match &self.inner.provider {
            Provider::Aws { caches, .. } => caches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .map(|c| c.stats())
                .collect(),
            Provider::Gcp(adc) => vec![adc.cache().stats()],
            Provider::Azure(cred) => vec![cred.cache().stats()],
        };
        let now = Instant::now();
        let latest = stats
            .iter()
            .filter(|s| s.last_fetch_at.is_some())
            .max_by_key(|s| s.last_fetch_at);
        let last_error = stats
            .iter()
            .filter(|s| s.last_error_at.is_some())
            .max_by_key(|s| s.last_error_at)
            .and_then(|s| s.last_error.clone());
        IdentityStatus {
            method: self.inner.label,
            last_fetch_ok: latest.and_then(|s| s.last_fetch_ok),
            last_error,
            expires_in: stats
                .iter()
                .filter_map(|s| s.expires_at)
                .min()
                .map(|at| at.saturating_duration_since(now)),
            fetches: stats.iter().map(|s| s.fetches).sum(),
            failures: stats.iter().map(|s| s.failures).sum(),
        }
    }
}

#[cfg(test)]
mod tests;
