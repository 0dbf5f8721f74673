//! Google OAuth access tokens from Application Default Credentials, found
//! the way Google's own clients find them, for one scope:
//!
//! 1. `GOOGLE_APPLICATION_CREDENTIALS`: a JSON key file, either a service
//!    account's (`"type": "service_account"`: a JWT signed with its RS256
//!    key, asserting the scope, is exchanged at its `token_uri`) or a
//!    user's from `gcloud auth application-default login`
//!    (`"authorized_user"`: a refresh token).
//! 2. The same user file at `$HOME/.config/gcloud/application_default_credentials.json`.
//! 3. The metadata server (`GCE_METADATA_HOST`, else
//!    `metadata.google.internal`): GCE's service account, and GKE Workload
//!    Identity, where the pod's Kubernetes service account is bound to a
//!    Google one. The scope is asked for with `?scopes=`, as Google's
//!    libraries do.
//!
//! Tokens are cached ([`TokenCache`]). No key, token or file content
//! appears in any error.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::env::Env;
use crate::error::CloudError;
use crate::http::{form, token_answer, transport_error, without_query};
use crate::token::{Token, TokenCache};

/// The scopes of Cloud SQL and AlloyDB IAM database logins (space-separated,
/// as a JWT's `scope` claim lists them; the metadata server is asked for
/// them comma-separated).
///
/// An IAM database user logs in with an OAuth access token as its
/// password. Cloud SQL accepts tokens that carry `sqlservice.login` (or the
/// broad `cloud-platform`, which grants every API), AlloyDB those that carry
/// `alloydb.login` (or `cloud-platform`); Google's Cloud SQL and AlloyDB
/// connectors ask for exactly these. Both are asked for, so one setting
/// (`auth: gcp-iam`) serves both products with a token that can log in to a
/// database and call no other API if it leaks (it is handed to every new
/// connection). `gcloud auth application-default login` includes
/// `sqlservice.login` in a user's credentials by default.
pub const DATABASE_LOGIN_SCOPES: &str = "https://www.googleapis.com/auth/sqlservice.login https://www.googleapis.com/auth/alloydb.login";

/// Where Google's OAuth tokens come from when a key file does not say.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The metadata server's name inside Google Cloud.
const METADATA_HOST: &str = "metadata.google.internal";

/// One Google identity and the scope its tokens are for, with their cache.
pub struct GoogleAdc {
    source: Source,
    scope: String,
    cache: TokenCache,
}

enum Source {
    ServiceAccount {
        email: String,
        key: RsaKeyPair,
        key_id: Option<String>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
    },
    MetadataServer {
        /// `http://HOST[:PORT]`.
        base: String,
    },
}

impl std::fmt::Debug for GoogleAdc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleAdc")
            .field("kind", &self.kind())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The fields of a key file we use; others are ignored.
#[derive(serde::Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

impl GoogleAdc {
    /// The credentials `env` points at, in the order of the module doc,
    /// for tokens of `scope`. A named key file that cannot be used is a
    /// permanent error naming the file; the metadata server is only asked
    /// when a token is wanted.
    pub fn from_env(scope: &str, env: Env) -> Result<GoogleAdc, CloudError> {
        let file = env("GOOGLE_APPLICATION_CREDENTIALS")
            .map(PathBuf::from)
            .or_else(|| {
                let p = PathBuf::from(env("HOME")?)
                    .join(".config/gcloud/application_default_credentials.json");
                p.is_file().then_some(p)
            });
        match file {
            Some(path) => GoogleAdc::from_key_file(&path, scope),
            None => {
                let host = env("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_string());
                let host = host.trim().trim_end_matches('/');
                let base = if host.contains("://") {
                    host.to_string()
                } else {
                    format!("http://{host}")
                };
                Ok(GoogleAdc::metadata_server(&base, scope))
            }
        }
    }

    /// A credentials file (service account key or `gcloud` user
    /// credentials). Errors name the file and the missing or unusable
    /// field, never its content.
    pub fn from_key_file(path: &Path, scope: &str) -> Result<GoogleAdc, CloudError> {
        let bad = |why: &str| {
            CloudError::permanent(format!("Google credentials {}: {why}", path.display()))
        };
        let bytes = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
        let key: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|_| bad("not a JSON credentials file with a \"type\""))?;
        let token_uri = key
            .token_uri
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        let source = match key.kind.as_str() {
            "service_account" => {
                let email = key.client_email.ok_or_else(|| bad("no client_email"))?;
                let pem = key.private_key.ok_or_else(|| bad("no private_key"))?;
                let der = pem_to_der(&pem).ok_or_else(|| bad("private_key is not a PEM key"))?;
                let rsa = RsaKeyPair::from_pkcs8(&der)
                    .map_err(|_| bad("private_key is not an RSA PKCS#8 key"))?;
                Source::ServiceAccount {
                    email,
                    key: rsa,
                    key_id: key.private_key_id,
                    token_uri,
                }
            }
            "authorized_user" => Source::AuthorizedUser {
                client_id: key.client_id.ok_or_else(|| bad("no client_id"))?,
                client_secret: key.client_secret.ok_or_else(|| bad("no client_secret"))?,
                refresh_token: key.refresh_token.ok_or_else(|| bad("no refresh_token"))?,
                token_uri,
            },
            "external_account" => {
                return Err(bad(
                    "\"external_account\" (workload identity federation) is not supported; \
                     on GKE use Workload Identity (the metadata server), elsewhere a service account key",
                ));
            }
            other => return Err(bad(&format!("unsupported credentials type {other:?}"))),
        };
        Ok(GoogleAdc::with_source(source, scope))
    }

    /// The metadata server at `base` (`http://HOST[:PORT]`).
    pub fn metadata_server(base: &str, scope: &str) -> GoogleAdc {
        let base = base.trim_end_matches('/').to_string();
        GoogleAdc::with_source(Source::MetadataServer { base }, scope)
    }

    fn with_source(source: Source, scope: &str) -> GoogleAdc {
        GoogleAdc {
            source,
            scope: scope.to_string(),
            cache: TokenCache::default(),
        }
    }

    /// Which kind of credentials: `service account`, `authorized user` or
    /// `metadata server`.
    pub fn kind(&self) -> &'static str {
        match self.source {
            Source::ServiceAccount { .. } => "service account",
            Source::AuthorizedUser { .. } => "authorized user",
            Source::MetadataServer { .. } => "metadata server",
        }
    }

    /// The scope its tokens are asked for.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The token cache (for its statistics).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// A token for the scope, from the cache while it is fresh.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Token, CloudError> {
        self.cache.get(|| self.fetch(http)).await
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<Token, CloudError> {
        match &self.source {
            Source::ServiceAccount {
                email,
                key,
                key_id,
                token_uri,
            } => {
                let assertion = signed_jwt(key, key_id.as_deref(), email, token_uri, &self.scope)?;
                let body = form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ]);
                post_form(http, token_uri, body).await
            }
            Source::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => {
                // A refresh token carries the scopes the user consented
                // to; none can be added here.
                let body = form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("refresh_token", refresh_token),
                ]);
                post_form(http, token_uri, body).await
            }
            Source::MetadataServer { base } => {
                let who = format!("the metadata server at {}", without_query(base));
                let mut url = reqwest::Url::parse(&format!(
                    "{base}/computeMetadata/v1/instance/service-accounts/default/token"
                ))
                .map_err(|e| CloudError::permanent(format!("{who}: {e}")))?;
                // The metadata server takes a comma-separated list.
                url.query_pairs_mut().append_pair(
                    "scopes",
                    &self.scope.split_whitespace().collect::<Vec<_>>().join(","),
                );
                let resp = http
                    .get(url)
                    .header("Metadata-Flavor", "Google")
                    .send()
                    .await
                    .map_err(|e| {
                        transport_error(
                            &format!(
                                "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set \
                                 and {who} did not answer (outside Google Cloud, set it)"
                            ),
                            e,
                        )
                    })?;
                token_answer(&who, resp).await
            }
        }
    }
}

async fn post_form(http: &reqwest::Client, uri: &str, body: String) -> Result<Token, CloudError> {
    let who = format!("Google token endpoint {}", without_query(uri));
    let resp = http
        .post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| transport_error(&who, e))?;
    token_answer(&who, resp).await
}

/// The body of a PEM block, decoded.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    STANDARD.decode(b64).ok()
}

/// The JWT a service account exchanges for a token (RFC 7523): it asserts
/// the account's identity and the scope for an hour.
fn signed_jwt(
    key: &RsaKeyPair,
    key_id: Option<&str>,
    email: &str,
    token_uri: &str,
    scope: &str,
) -> Result<String, CloudError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = key_id {
        header["kid"] = kid.into();
    }
    let claims = serde_json::json!({
        "iss": email,
        "scope": scope,
        "aud": token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| CloudError::permanent("signing a service account JWT failed"))?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

#[cfg(test)]
mod tests;
