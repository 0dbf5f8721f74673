//! Google Cloud credentials, found the way Google's own clients find them
//! (Application Default Credentials):
//!
//! 1. `STORAGE_EMULATOR_HOST`: an emulator at that address, no credentials.
//! 2. `GOOGLE_APPLICATION_CREDENTIALS`: a JSON key file, either a service
//!    account's (`"type": "service_account"`: a JWT signed with its RS256
//!    key is exchanged at its `token_uri`) or a user's from `gcloud auth
//!    application-default login` (`"authorized_user"`: a refresh token).
//! 3. The same user file at `~/.config/gcloud/application_default_credentials.json`.
//! 4. The metadata server (`GCE_METADATA_HOST`, else
//!    `metadata.google.internal`): GCE's service account, and GKE Workload
//!    Identity, where the pod's Kubernetes service account is bound to a
//!    Google one.
//!
//! Tokens are cached until shortly before they expire. No key, token or
//! file content appears in any error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;

use super::SourceError;
use super::cloud;
use super::token::{Token, TokenAnswer, TokenCache};

/// What the tokens may do: read objects, and write them for `push`.
pub const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// Where Google's OAuth tokens come from when a key file does not say.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The metadata server's name inside Google Cloud.
const METADATA_HOST: &str = "metadata.google.internal";

/// How the JSON API is reached and authorised.
#[derive(Clone)]
pub struct GoogleEndpoint {
    /// `https://storage.googleapis.com`, or the emulator's address.
    pub base: String,
    pub auth: Arc<GoogleAuth>,
}

/// One way of getting a bearer token, with its cache.
pub enum GoogleAuth {
    /// An emulator: requests go without credentials.
    Anonymous,
    ServiceAccount {
        email: String,
        key: RsaKeyPair,
        key_id: Option<String>,
        token_uri: String,
        cache: TokenCache,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
        cache: TokenCache,
    },
    MetadataServer {
        /// `http://HOST`.
        base: String,
        cache: TokenCache,
    },
}

/// The endpoint built from this process's environment, shared by every
/// `gs://` source (one token cache for all).
static SHARED: Mutex<Option<GoogleEndpoint>> = Mutex::new(None);

/// The endpoint for this process (see the module doc for the order).
pub fn endpoint() -> Result<GoogleEndpoint, SourceError> {
    let mut shared = SHARED
        .lock()
        .map_err(|_| SourceError::Permanent("Google credentials cache poisoned".into()))?;
    if let Some(e) = shared.as_ref() {
        return Ok(e.clone());
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let e = from_env(&env)?;
    *shared = Some(e.clone());
    Ok(e)
}

fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<GoogleEndpoint, SourceError> {
    if let Some(host) = env("STORAGE_EMULATOR_HOST") {
        let host = host.trim().trim_end_matches('/');
        let base = if host.contains("://") {
            host.to_string()
        } else {
            format!("http://{host}")
        };
        return Ok(GoogleEndpoint {
            base,
            auth: Arc::new(GoogleAuth::Anonymous),
        });
    }
    let base = "https://storage.googleapis.com".to_string();
    let file = env("GOOGLE_APPLICATION_CREDENTIALS")
        .map(PathBuf::from)
        .or_else(|| {
            let p = PathBuf::from(env("HOME")?)
                .join(".config/gcloud/application_default_credentials.json");
            p.is_file().then_some(p)
        });
    let auth = match file {
        Some(path) => GoogleAuth::from_file(&path)?,
        None => GoogleAuth::MetadataServer {
            base: format!(
                "http://{}",
                env("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_string())
            ),
            cache: TokenCache::default(),
        },
    };
    Ok(GoogleEndpoint {
        base,
        auth: Arc::new(auth),
    })
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

impl GoogleAuth {
    /// Read a credentials file. Errors name the file and the missing or
    /// unusable field, never its content.
    pub fn from_file(path: &Path) -> Result<GoogleAuth, SourceError> {
        let bad = |why: &str| {
            SourceError::Permanent(format!("Google credentials {}: {why}", path.display()))
        };
        let bytes = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
        let key: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|_| bad("not a JSON credentials file with a \"type\""))?;
        let token_uri = key
            .token_uri
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        match key.kind.as_str() {
            "service_account" => {
                let email = key.client_email.ok_or_else(|| bad("no client_email"))?;
                let pem = key.private_key.ok_or_else(|| bad("no private_key"))?;
                let der = pem_to_der(&pem).ok_or_else(|| bad("private_key is not a PEM key"))?;
                let rsa = RsaKeyPair::from_pkcs8(&der)
                    .map_err(|_| bad("private_key is not an RSA PKCS#8 key"))?;
                Ok(GoogleAuth::ServiceAccount {
                    email,
                    key: rsa,
                    key_id: key.private_key_id,
                    token_uri,
                    cache: TokenCache::default(),
                })
            }
            "authorized_user" => Ok(GoogleAuth::AuthorizedUser {
                client_id: key.client_id.ok_or_else(|| bad("no client_id"))?,
                client_secret: key.client_secret.ok_or_else(|| bad("no client_secret"))?,
                refresh_token: key.refresh_token.ok_or_else(|| bad("no refresh_token"))?,
                token_uri,
                cache: TokenCache::default(),
            }),
            "external_account" => Err(bad(
                "\"external_account\" (workload identity federation) is not supported; \
                 on GKE use Workload Identity (the metadata server), elsewhere a service account key",
            )),
            other => Err(bad(&format!("unsupported credentials type {other:?}"))),
        }
    }

    /// The bearer token to send, or `None` for an emulator.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Option<Token>, SourceError> {
        let token = match self {
            GoogleAuth::Anonymous => return Ok(None),
            GoogleAuth::ServiceAccount {
                email,
                key,
                key_id,
                token_uri,
                cache,
            } => {
                cache
                    .get(|| async {
                        let assertion = signed_jwt(key, key_id.as_deref(), email, token_uri)?;
                        let form = form(&[
                            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                            ("assertion", &assertion),
                        ]);
                        post_form(http, token_uri, form).await
                    })
                    .await?
            }
            GoogleAuth::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
                cache,
            } => {
                cache
                    .get(|| async {
                        let form = form(&[
                            ("grant_type", "refresh_token"),
                            ("client_id", client_id),
                            ("client_secret", client_secret),
                            ("refresh_token", refresh_token),
                        ]);
                        post_form(http, token_uri, form).await
                    })
                    .await?
            }
            GoogleAuth::MetadataServer { base, cache } => {
                cache
                    .get(|| async {
                        let url = format!(
                            "{base}/computeMetadata/v1/instance/service-accounts/default/token"
                        );
                        let who = format!("the metadata server at {base}");
                        let resp = http
                            .get(&url)
                            .header("Metadata-Flavor", "Google")
                            .send()
                            .await
                            .map_err(|e| {
                                cloud::transport_error(
                                    &format!(
                                        "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set \
                                         and {who} did not answer (outside Google Cloud, set it or \
                                         STORAGE_EMULATOR_HOST)"
                                    ),
                                    e,
                                )
                            })?;
                        token_answer(&who, resp).await
                    })
                    .await?
            }
        };
        Ok(Some(token))
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

async fn post_form(http: &reqwest::Client, uri: &str, body: String) -> Result<Token, SourceError> {
    let who = format!("Google token endpoint {}", redact_query(uri));
    let resp = http
        .post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| cloud::transport_error(&who, e))?;
    token_answer(&who, resp).await
}

/// A token endpoint's answer: the token, or an error class. A refusal (4xx)
/// is permanent, with the OAuth `error` code (never the body).
pub(super) async fn token_answer(who: &str, resp: reqwest::Response) -> Result<Token, SourceError> {
    let status = resp.status();
    let body = cloud::small_body(who, resp).await?;
    if status.is_success() {
        return TokenAnswer::parse(&body, who);
    }
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: Option<String>,
    }
    let code = serde_json::from_slice::<OAuthError>(&body)
        .ok()
        .and_then(|e| e.error)
        .map(|e| cloud::short(&e))
        .unwrap_or_default();
    let mut msg = format!("{who}: HTTP {status}");
    if !code.is_empty() {
        msg.push_str(&format!(" ({code})"));
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SourceError::Transient(msg))
    } else {
        Err(SourceError::Permanent(msg))
    }
}

/// A URL without its query string, for messages.
fn redact_query(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
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
) -> Result<String, SourceError> {
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
        "scope": SCOPE,
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
    .map_err(|_| SourceError::Permanent("signing a service account JWT failed".into()))?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn emulator_and_metadata_server_from_env() {
        let e = from_env(&env_of(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")])).unwrap();
        assert_eq!(e.base, "http://127.0.0.1:4443");
        assert!(matches!(*e.auth, GoogleAuth::Anonymous));
        let e = from_env(&env_of(&[(
            "STORAGE_EMULATOR_HOST",
            "https://gcs.local:9/",
        )]))
        .unwrap();
        assert_eq!(e.base, "https://gcs.local:9");
        let e = from_env(&env_of(&[
            ("HOME", "/nonexistent"),
            ("GCE_METADATA_HOST", "127.0.0.1:9"),
        ]))
        .unwrap();
        assert_eq!(e.base, "https://storage.googleapis.com");
        assert!(
            matches!(&*e.auth, GoogleAuth::MetadataServer { base, .. } if base == "http://127.0.0.1:9")
        );
    }

    fn test_key() -> (Vec<u8>, String) {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der.as_ref())
        );
        (pair.public_key().as_ref().to_vec(), pem)
    }

    #[test]
    fn service_account_jwt_is_signed_with_its_key() {
        let (public, pem) = test_key();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.json");
        std::fs::write(
            &path,
            serde_json::json!({
                "type": "service_account",
                "client_email": "kb@proj.iam.gserviceaccount.com",
                "private_key": pem,
                "private_key_id": "k1",
                "token_uri": "http://127.0.0.1:1/token",
            })
            .to_string(),
        )
        .unwrap();
        let GoogleAuth::ServiceAccount {
            email,
            key,
            key_id,
            token_uri,
            ..
        } = GoogleAuth::from_file(&path).unwrap()
        else {
            panic!("not a service account");
        };
        let jwt = signed_jwt(&key, key_id.as_deref(), &email, &token_uri).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "kb@proj.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "http://127.0.0.1:1/token");
        assert_eq!(claims["scope"], SCOPE);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], "k1");
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("the signature verifies with the account's public key");
    }

    #[tokio::test]
    async fn service_account_token_exchange_and_cache() {
        use crate::source::token::test_endpoint::{form_value, serve};
        let (public, pem) = test_key();
        let (base, log) = serve(move |req| {
            let Some(jwt) = form_value(&req.body, "assertion") else {
                return (400, r#"{"error":"invalid_request"}"#.into());
            };
            let parts: Vec<&str> = jwt.split('.').collect();
            let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
            let ok = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
                .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
                .is_ok();
            if ok
                && form_value(&req.body, "grant_type").as_deref()
                    == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            {
                (
                    200,
                    r#"{"access_token":"ya29.sa-token","expires_in":3599,"token_type":"Bearer"}"#
                        .into(),
                )
            } else {
                (
                    400,
                    r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
                        .into(),
                )
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.json");
        let key_file = |uri: &str| {
            serde_json::json!({
                "type": "service_account",
                "client_email": "kb@proj.iam.gserviceaccount.com",
                "private_key": pem,
                "token_uri": uri,
            })
            .to_string()
        };
        std::fs::write(&path, key_file(&format!("{base}/token"))).unwrap();
        let auth = GoogleAuth::from_file(&path).unwrap();
        let http = cloud::client(std::time::Duration::from_secs(5)).unwrap();
        let t = auth.token(&http).await.unwrap().unwrap();
        assert_eq!(t.secret(), "ya29.sa-token");
        assert_eq!(
            auth.token(&http).await.unwrap().unwrap().secret(),
            "ya29.sa-token"
        );
        assert_eq!(log.lock().unwrap().len(), 1, "the token is cached");
        assert_eq!(log.lock().unwrap()[0].method, "POST");

        // Another key: the endpoint refuses its signature, for good.
        let (_, other_pem) = test_key();
        let mut v: serde_json::Value =
            serde_json::from_str(&key_file(&format!("{base}/token"))).unwrap();
        v["private_key"] = other_pem.into();
        std::fs::write(&path, v.to_string()).unwrap();
        let auth = GoogleAuth::from_file(&path).unwrap();
        match auth.token(&http).await {
            Err(SourceError::Permanent(m)) => {
                assert!(
                    m.contains("invalid_grant") && !m.contains("Invalid JWT"),
                    "{m}"
                );
            }
            other => panic!("expected a permanent refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn metadata_server_token() {
        use crate::source::token::test_endpoint::serve;
        let (base, log) = serve(|req| {
            if req
                .headers
                .get("metadata-flavor")
                .and_then(|v| v.to_str().ok())
                == Some("Google")
            {
                (
                    200,
                    r#"{"access_token":"ya29.wi-token","expires_in":3599,"token_type":"Bearer"}"#
                        .into(),
                )
            } else {
                (403, String::new())
            }
        })
        .await;
        let auth = GoogleAuth::MetadataServer {
            base,
            cache: TokenCache::default(),
        };
        let http = cloud::client(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(
            auth.token(&http).await.unwrap().unwrap().secret(),
            "ya29.wi-token"
        );
        assert_eq!(
            log.lock().unwrap()[0].target,
            "/computeMetadata/v1/instance/service-accounts/default/token"
        );

        // No metadata server: a transient error that says what to set.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let auth = GoogleAuth::MetadataServer {
            base,
            cache: TokenCache::default(),
        };
        match auth.token(&http).await {
            Err(SourceError::Transient(m)) => {
                assert!(m.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{m}")
            }
            other => panic!("expected a transient error, got {other:?}"),
        }
    }

    #[test]
    fn bad_key_files_are_permanent_and_quote_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for (content, why) in [
            ("{not json s3cret", "not a JSON"),
            (
                r#"{"type":"service_account","private_key":"s3cret"}"#,
                "client_email",
            ),
            (
                r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nczNjcmV0\n-----END PRIVATE KEY-----"}"#,
                "RSA",
            ),
            (
                r#"{"type":"external_account","secret":"s3cret"}"#,
                "Workload Identity",
            ),
            (
                r#"{"type":"impersonated","secret":"s3cret"}"#,
                "unsupported",
            ),
        ] {
            let path = dir.path().join("key.json");
            std::fs::write(&path, content).unwrap();
            let err = match GoogleAuth::from_file(&path) {
                Err(e @ SourceError::Permanent(_)) => e.to_string(),
                Err(e) => panic!("wrong class {e:?}"),
                Ok(_) => panic!("{content} accepted"),
            };
            assert!(err.contains(why) && err.contains("key.json"), "{err}");
            assert!(
                !err.contains("s3cret") && !err.contains("czNjcmV0"),
                "{err}"
            );
        }
        let err = GoogleAuth::from_file(&dir.path().join("missing.json"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("missing.json"));
    }
}
