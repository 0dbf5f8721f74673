//! OAuth 2.1 resource server (the MCP authorization spec): access tokens
//! that a trusted identity provider issued are accepted on every instance,
//! with nothing stored and nothing shared between instances.
//!
//! - [`settings`]: the `oauth_*` settings, checked at start.
//! - [`keys`]: each issuer's signing keys, discovered, cached and fetched
//!   again on a timer and on an unknown `kid`; kept while the issuer is down.
//! - [`jwt`]: one token checked against one issuer's keys.
//! - [`grants`]: what a token's scopes and claims allow (tools, databases).
//! - [`cache`]: tokens already verified, so a client's token is checked
//!   once per key set rather than on every request.
//!
//! [`ResourceServer`] ties them together and also owns what clients
//! discover: the RFC 9728 metadata document and the `WWW-Authenticate`
//! challenges that point to it. Its URLs come from `oauth_resource`, never
//! from a request's `Host`.

pub mod cache;
pub mod grants;
pub mod jwt;
pub mod keys;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use fleet_common::permissions::Permissions;
use sha2::{Digest, Sha256};

use super::Principal;
use jwt::JwtFailure;
use keys::{IssuerHealth, IssuerKeys};
use settings::OAuthSettings;

/// Why an access token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthFailure {
    /// 401: the token does not hold.
    Invalid(JwtFailure),
    /// 403: a good token without a scope this server requires.
    InsufficientScope,
}

/// The resource server: issuers, keys, grants and what is advertised.
pub struct ResourceServer {
    settings: OAuthSettings,
    issuers: Vec<IssuerKeys>,
    /// The RFC 9728 document, serialised once.
    metadata: axum::body::Bytes,
    /// Where that document is: `ORIGIN/.well-known/oauth-protected-resource/PATH`.
    metadata_url: String,
    /// The paths it is served at.
    metadata_paths: Vec<String>,
    /// Every scope some issuer requires, for `scope=` in challenges.
    scopes: String,
    verified: cache::Verified,
    metrics: crate::metrics::OAuthMetrics,
}

pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

impl ResourceServer {
    pub fn new(
        settings: OAuthSettings,
        metrics: crate::metrics::OAuthMetrics,
    ) -> anyhow::Result<ResourceServer> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let issuers = settings
            .issuers
            .iter()
            .map(|i| IssuerKeys::new(i.clone(), http.clone(), metrics.clone()))
            .collect();
        let resource = &settings.resource;
        let path = resource.path().trim_end_matches('/');
        let origin = resource.origin().ascii_serialization();
        let metadata_url = format!("{origin}{WELL_KNOWN}{path}");
        let mut metadata_paths = vec![WELL_KNOWN.to_string(), format!("{WELL_KNOWN}{path}")];
        let mcp = format!("{WELL_KNOWN}/mcp");
        if !metadata_paths.contains(&mcp) {
            metadata_paths.push(mcp);
        }
        let mut scopes: Vec<&str> = settings
            .issuers
            .iter()
            .flat_map(|i| i.scopes.iter().map(String::as_str))
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let mut supported: Vec<&str> = scopes.clone();
        for g in &settings.grants {
            if let settings::Match::Scope(s) = &g.matches {
                supported.push(s);
            }
        }
        supported.sort_unstable();
        supported.dedup();
        let metadata = serde_json::to_vec(&serde_json::json!({
            "resource": resource.as_str(),
            "authorization_servers": settings.issuers.iter().map(|i| &i.issuer).collect::<Vec<_>>(),
            "scopes_supported": supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "PostgreSQL MCP server",
        }))?;
        Ok(ResourceServer {
            scopes: scopes.join(" "),
            settings,
            issuers,
            metadata: metadata.into(),
            metadata_url,
            metadata_paths,
            verified: cache::Verified::default(),
            metrics,
        })
    }

    /// Start fetching each issuer's keys, then again every
    /// `oauth_jwks_refresh` (sooner, with back-off, after a failure).
    pub fn start(self: &Arc<Self>) {
        for i in 0..self.issuers.len() {
            let me = self.clone();
            tokio::spawn(async move {
                let mut retry = keys::RETRY_FIRST;
                loop {
                    let issuer = &me.issuers[i];
                    let wait = issuer
                        .refresh_on_timer(me.settings.jwks_refresh, &mut retry)
                        .await;
                    tokio::time::sleep(wait).await;
                }
            });
        }
    }

    /// Check an access token: the issuer its `iss` names, the key its
    /// `kid` names (fetched again once if unknown), then signature, claims
    /// and scopes.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, OAuthFailure> {
        let digest = cache::digest(token);
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(p) = self.verified.get(&digest, now, |i| {
            self.issuers.get(i).map_or(u64::MAX, IssuerKeys::generation)
        }) {
            return Ok(p);
        }
        let peek = jwt::peek(token).map_err(OAuthFailure::Invalid)?;
        let (index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.settings.issuer == peek.iss)
            .ok_or(OAuthFailure::Invalid(JwtFailure::Issuer))?;
        let unknown = OAuthFailure::Invalid(JwtFailure::UnknownKey);
        // The generation is read before the keys: a swap in between makes
        // the cache entry stale, never a stale entry look current.
        let mut generation = issuer.generation();
        if issuer.keys().find(peek.kid.as_deref(), peek.alg).is_none() {
            if !issuer.refresh_for_unknown_key().await {
                return Err(unknown);
            }
            generation = issuer.generation();
        }
        let keys = issuer.keys();
        let key = keys.find(peek.kid.as_deref(), peek.alg).ok_or(unknown)?;
        let verified = jwt::verify(
            token,
            &peek,
            key,
            &issuer.settings,
            self.settings.clock_skew,
        )
        .map_err(OAuthFailure::Invalid)?;
        let scopes = verified.scopes();
        if issuer
            .settings
            .scopes
            .iter()
            .any(|s| !scopes.contains(s.as_str()))
        {
            return Err(OAuthFailure::InsufficientScope);
        }
        let subject = subject_of(&issuer.settings.issuer, verified.subject());
        // Once per token and instance: an accepted token is cached below.
        let granted = grants::permissions(&self.settings.grants, &verified, |n, why| {
            self.metrics
                .role_claim_refusals
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: why.label(),
                })
                .inc();
            tracing::warn!(
                subject = %subject,
                grant = n,
                reason = why.label(),
                "oauth_permissions entry {n} left out: its role claim {}",
                match why {
                    grants::RoleClaimRefusal::Missing => "is missing from the token",
                    grants::RoleClaimRefusal::NotString => "is not a string",
                    grants::RoleClaimRefusal::NotAllowed =>
                        "names a role oauth_role_claim_allowed does not list",
                }
            );
        });
        let (permissions, roles) = match granted {
            None => (Permissions::unrestricted(), crate::auth::Roles::Login),
            Some(g) => (g.permissions.shared(), g.roles),
        };
        let principal = Principal {
            subject,
            database: None,
            permissions,
            roles,
        };
        if let Some(exp) = verified.expires() {
            let until = exp.saturating_add(self.settings.clock_skew.as_secs());
            self.verified
                .insert(digest, principal.clone(), until, index, generation);
        }
        Ok(principal)
    }

    /// Whether `oauth_permissions` grants are configured: tokens may then be
    /// allowed different things.
    pub fn has_grants(&self) -> bool {
        !self.settings.grants.is_empty()
    }

    /// The RFC 9728 document, if `path` is one it is served at.
    pub fn metadata_at(&self, path: &str) -> Option<axum::body::Bytes> {
        self.metadata_paths
            .iter()
            .any(|p| p == path)
            .then(|| self.metadata.clone())
    }

    /// `WWW-Authenticate` for a 401 (`error` for a refused token) or a 403
    /// (`insufficient_scope`): where the metadata is, and the scopes.
    pub fn challenge(&self, error: Option<&str>) -> HeaderValue {
        let mut v = format!("Bearer resource_metadata=\"{}\"", self.metadata_url);
        if !self.scopes.is_empty() {
            v.push_str(&format!(", scope=\"{}\"", self.scopes));
        }
        if let Some(e) = error {
            v.push_str(&format!(", error=\"{e}\""));
        }
        // Built from checked URLs and scopes: always a valid header value.
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    pub fn health(&self) -> Vec<IssuerHealth> {
        self.issuers.iter().map(IssuerKeys::health).collect()
    }

    pub fn resource(&self) -> &str {
        self.settings.resource.as_str()
    }
}

/// `oauth:` and a digest of issuer and subject: stable per caller, and no
/// claim value in logs.
fn subject_of(issuer: &str, sub: &str) -> String {
    let mut h = Sha256::new();
    h.update(issuer.as_bytes());
    h.update([0]);
    h.update(sub.as_bytes());
    format!("oauth:{}", hex::encode(&h.finalize()[..8]))
}
