//! Azure Storage credentials, the platform's own ways, in this order:
//!
//! 1. A SAS token in an `https://ACCOUNT.blob.core.windows.net/...?sv=...&sig=...` URL.
//! 2. `AZURE_STORAGE_CONNECTION_STRING` (what the portal and Azurite give:
//!    `AccountName`, `AccountKey` or `SharedAccessSignature`, `BlobEndpoint`
//!    or `EndpointSuffix`, or `UseDevelopmentStorage=true`).
//! 3. `AZURE_STORAGE_ACCOUNT` with `AZURE_STORAGE_KEY` (shared key) or
//!    `AZURE_STORAGE_SAS_TOKEN`.
//! 4. Workload identity (what AKS's webhook injects:
//!    `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//!    `AZURE_AUTHORITY_HOST`): the pod's service account token is exchanged
//!    with Microsoft Entra ID for a storage token.
//! 5. Managed identity from the instance metadata service (with
//!    `AZURE_CLIENT_ID` for a user-assigned one).
//!
//! A shared key signs each request (HMAC-SHA256 of the canonical request);
//! tokens are cached until shortly before they expire. No key, SAS or token
//! appears in any error or log line.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};

use super::SourceError;
use super::cloud;
use super::google_auth::token_answer;
use super::token::{Token, TokenCache};

/// The REST API version every request names.
pub const API_VERSION: &str = "2021-12-02";

/// Azurite's well-known development account and key (public, documented).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEV_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// What storage tokens are for.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const STORAGE_RESOURCE: &str = "https://storage.azure.com/";
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
const IMDS_TOKEN_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// How requests to one account are authorised.
pub enum AzureAuth {
    SharedKey {
        account: String,
        key: Vec<u8>,
    },
    /// The SAS query string, without the leading `?`.
    Sas(String),
    WorkloadIdentity {
        tenant: String,
        client_id: String,
        token_file: String,
        authority: String,
        cache: TokenCache,
    },
    ManagedIdentity {
        /// The IMDS token URL.
        url: String,
        client_id: Option<String>,
        cache: TokenCache,
    },
}

impl std::fmt::Debug for AzureAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AzureAuth::SharedKey { .. } => "SharedKey",
            AzureAuth::Sas(_) => "Sas",
            AzureAuth::WorkloadIdentity { .. } => "WorkloadIdentity",
            AzureAuth::ManagedIdentity { .. } => "ManagedIdentity",
        })
    }
}

/// An account, where its Blob service is, and how to authorise.
#[derive(Debug, Clone)]
pub struct AzureAccount {
    pub name: String,
    /// `https://ACCOUNT.blob.core.windows.net`, or a path-style endpoint
    /// such as Azurite's `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: String,
    pub auth: Arc<AzureAuth>,
}

/// Reads one environment variable (the process's, or a test's).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, blank values treated as unset.
pub fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// The identity-based credential (workload or managed identity) is one per
/// process, so its token is fetched once for every account.
static IDENTITY: Mutex<Option<Arc<AzureAuth>>> = Mutex::new(None);

/// The fields of a connection string we use.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConnectionString {
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    blob_endpoint: Option<String>,
}

/// Parse `Key=Value;Key=Value` (keys case-insensitive; values may contain
/// `=`, as base64 keys do). Errors name the field, never a value.
fn parse_connection_string(text: &str) -> Result<ConnectionString, SourceError> {
    let bad = |why: &str| SourceError::Permanent(format!("AZURE_STORAGE_CONNECTION_STRING: {why}"));
    let mut protocol = "https".to_string();
    let mut suffix = "core.windows.net".to_string();
    let mut cs = ConnectionString::default();
    let mut dev = false;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad("expected Key=Value pairs separated by ';'"))?;
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "defaultendpointsprotocol" => protocol = v,
            "accountname" => cs.account = Some(v),
            "accountkey" => cs.key = Some(v),
            "sharedaccesssignature" => cs.sas = Some(v.trim_start_matches('?').to_string()),
            "blobendpoint" => cs.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
            "endpointsuffix" => suffix = v,
            "usedevelopmentstorage" => dev = v.eq_ignore_ascii_case("true"),
            // QueueEndpoint, TableEndpoint, FileEndpoint, ...: not ours.
            _ => {}
        }
    }
    if dev {
        cs.account.get_or_insert_with(|| DEV_ACCOUNT.to_string());
        cs.key.get_or_insert_with(|| DEV_KEY.to_string());
        cs.blob_endpoint
            .get_or_insert_with(|| DEV_ENDPOINT.to_string());
    }
    if cs.blob_endpoint.is_none() {
        let account = cs
            .account
            .as_deref()
            .ok_or_else(|| bad("no AccountName and no BlobEndpoint"))?;
        cs.blob_endpoint = Some(format!("{protocol}://{account}.blob.{suffix}"));
    }
    if cs.account.is_none() {
        // A SAS connection string may name only the endpoint.
        cs.account = cs
            .blob_endpoint
            .as_deref()
            .and_then(account_of_endpoint)
            .map(str::to_string);
    }
    Ok(cs)
}

/// `ACCOUNT` of `https://ACCOUNT.blob.core.windows.net`, or of a
/// path-style endpoint such as Azurite's `http://127.0.0.1:10000/ACCOUNT`.
fn account_of_endpoint(endpoint: &str) -> Option<&str> {
    let rest = endpoint.split_once("://")?.1;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.split(':').next()?;
    if let Some((account, domain)) = host.split_once('.')
        && domain.starts_with("blob.")
    {
        return Some(account);
    }
    path.split('/').find(|s| !s.is_empty())
}

impl AzureAccount {
    /// The account for `az://container/key` URLs: named by the connection
    /// string or `AZURE_STORAGE_ACCOUNT`.
    pub fn from_env(env: Env) -> Result<AzureAccount, SourceError> {
        if let Some(text) = env("AZURE_STORAGE_CONNECTION_STRING") {
            let cs = parse_connection_string(&text)?;
            let name = cs.account.clone().ok_or_else(|| {
                SourceError::Permanent(
                    "AZURE_STORAGE_CONNECTION_STRING: no AccountName".to_string(),
                )
            })?;
            let endpoint = cs.blob_endpoint.clone().unwrap_or_default();
            let auth = match (cs.key, cs.sas) {
                (Some(key), _) => Arc::new(shared_key(&name, &key, "AccountKey")?),
                (None, Some(sas)) => Arc::new(AzureAuth::Sas(sas)),
                (None, None) => identity(env)?,
            };
            return Ok(AzureAccount {
                name,
                endpoint,
                auth,
            });
        }
        let name = env("AZURE_STORAGE_ACCOUNT")
            .or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME"))
            .ok_or_else(|| {
                SourceError::Permanent(
                    "az:// sources need an account: set AZURE_STORAGE_CONNECTION_STRING or \
                     AZURE_STORAGE_ACCOUNT, or use https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY"
                        .to_string(),
                )
            })?;
        let endpoint = format!("https://{name}.blob.core.windows.net");
        AzureAccount::named(name, endpoint, None, env)
    }

    /// The account of an `https://ACCOUNT.blob.core.windows.net` URL, with
    /// the URL's own SAS token if it has one.
    pub fn named(
        name: String,
        endpoint: String,
        url_sas: Option<String>,
        env: Env,
    ) -> Result<AzureAccount, SourceError> {
        let auth = if let Some(sas) = url_sas {
            Arc::new(AzureAuth::Sas(sas))
        } else if let Some(cs) = env("AZURE_STORAGE_CONNECTION_STRING")
            .map(|t| parse_connection_string(&t))
            .transpose()?
            .filter(|cs| cs.account.as_deref() == Some(name.as_str()))
            .filter(|cs| cs.key.is_some() || cs.sas.is_some())
        {
            match (cs.key, cs.sas) {
                (Some(key), _) => Arc::new(shared_key(&name, &key, "AccountKey")?),
                (None, sas) => Arc::new(AzureAuth::Sas(sas.unwrap_or_default())),
            }
        } else if env("AZURE_STORAGE_ACCOUNT")
            .or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME"))
            .is_none_or(|a| a == name)
            && let Some(key) = env("AZURE_STORAGE_KEY")
        {
            Arc::new(shared_key(&name, &key, "AZURE_STORAGE_KEY")?)
        } else if let Some(sas) = env("AZURE_STORAGE_SAS_TOKEN") {
            Arc::new(AzureAuth::Sas(sas.trim_start_matches('?').to_string()))
        } else {
            identity(env)?
        };
        Ok(AzureAccount {
            name,
            endpoint,
            auth,
        })
    }
}

fn shared_key(account: &str, key: &str, what: &str) -> Result<AzureAuth, SourceError> {
    let key = STANDARD
        .decode(key.trim())
        .map_err(|_| SourceError::Permanent(format!("{what}: the account key is not base64")))?;
    Ok(AzureAuth::SharedKey {
        account: account.to_string(),
        key,
    })
}

/// Workload identity when its variables are set, else managed identity.
fn identity(env: Env) -> Result<Arc<AzureAuth>, SourceError> {
    let mut shared = IDENTITY
        .lock()
        .map_err(|_| SourceError::Permanent("Azure credentials cache poisoned".into()))?;
    if let Some(a) = shared.as_ref() {
        return Ok(a.clone());
    }
    let auth = match (
        env("AZURE_FEDERATED_TOKEN_FILE"),
        env("AZURE_CLIENT_ID"),
        env("AZURE_TENANT_ID"),
    ) {
        (Some(token_file), Some(client_id), Some(tenant)) => {
            let mut authority =
                env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.to_string());
            if !authority.ends_with('/') {
                authority.push('/');
            }
            AzureAuth::WorkloadIdentity {
                tenant,
                client_id,
                token_file,
                authority,
                cache: TokenCache::default(),
            }
        }
        (Some(_), _, _) => {
            return Err(SourceError::Permanent(
                "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_CLIENT_ID or AZURE_TENANT_ID is not \
                 (workload identity needs all three)"
                    .to_string(),
            ));
        }
        _ => AzureAuth::ManagedIdentity {
            url: IMDS_TOKEN_URL.to_string(),
            client_id: env("AZURE_CLIENT_ID"),
            cache: TokenCache::default(),
        },
    };
    let auth = Arc::new(auth);
    *shared = Some(auth.clone());
    Ok(auth)
}

impl AzureAuth {
    /// The bearer token for identity credentials; `None` for shared key and
    /// SAS, which authorise each request themselves.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Option<Token>, SourceError> {
        let token = match self {
            AzureAuth::SharedKey { .. } | AzureAuth::Sas(_) => return Ok(None),
            AzureAuth::WorkloadIdentity {
                tenant,
                client_id,
                token_file,
                authority,
                cache,
            } => {
                cache
                    .get(|| async {
                        // Read every time: the kubelet rotates it.
                        let assertion =
                            tokio::fs::read_to_string(token_file).await.map_err(|e| {
                                SourceError::Permanent(format!(
                                    "AZURE_FEDERATED_TOKEN_FILE {token_file}: {e}"
                                ))
                            })?;
                        let url = format!("{authority}{tenant}/oauth2/v2.0/token");
                        let who = format!("Microsoft Entra ID token endpoint {url}");
                        let mut form = form_urlencoded::Serializer::new(String::new());
                        form.append_pair("grant_type", "client_credentials")
                            .append_pair("client_id", client_id)
                            .append_pair("scope", STORAGE_SCOPE)
                            .append_pair(
                                "client_assertion_type",
                                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                            )
                            .append_pair("client_assertion", assertion.trim());
                        let resp = http
                            .post(&url)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(form.finish())
                            .send()
                            .await
                            .map_err(|e| cloud::transport_error(&who, e))?;
                        token_answer(&who, resp).await
                    })
                    .await?
            }
            AzureAuth::ManagedIdentity {
                url,
                client_id,
                cache,
            } => {
                cache
                    .get(|| async {
                        let mut u = reqwest::Url::parse(url).map_err(|e| {
                            SourceError::Permanent(format!("managed identity endpoint: {e}"))
                        })?;
                        u.query_pairs_mut()
                            .append_pair("api-version", "2018-02-01")
                            .append_pair("resource", STORAGE_RESOURCE);
                        if let Some(id) = client_id {
                            u.query_pairs_mut().append_pair("client_id", id);
                        }
                        let who = "the Azure instance metadata service (managed identity)";
                        let resp = http
                        .get(u)
                        .header("Metadata", "true")
                        .send()
                        .await
                        .map_err(|e| {
                            cloud::transport_error(
                                &format!(
                                    "no Azure credentials: no SAS, key or connection string, no \
                                         workload identity variables, and {who} did not answer"
                                ),
                                e,
                            )
                        })?;
                        token_answer(who, resp).await
                    })
                    .await?
            }
        };
        Ok(Some(token))
    }
}

/// The parts of a request that a shared key signature covers.
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// The URL path as sent (percent-encoded).
    pub path: &'a str,
    pub content_length: Option<u64>,
    pub content_type: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    /// Every `x-ms-*` header, names in lower case.
    pub ms_headers: &'a [(&'a str, &'a str)],
}

/// `Authorization: SharedKey ACCOUNT:SIGNATURE` for a request without query
/// parameters (Shared Key authorization, API version 2015-02-21 and later).
pub fn shared_key_authorization(account: &str, key: &[u8], p: &SignedParts) -> String {
    let length = match p.content_length {
        Some(0) | None => String::new(),
        Some(n) => n.to_string(),
    };
    let mut headers: Vec<(&str, &str)> = p.ms_headers.to_vec();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let mut to_sign = format!(
        "{}\n\n\n{length}\n\n{}\n\n\n\n{}\n\n\n",
        p.method,
        p.content_type.unwrap_or(""),
        p.if_none_match.unwrap_or("")
    );
    for (name, value) in headers {
        to_sign.push_str(name);
        to_sign.push(':');
        to_sign.push_str(value.trim());
        to_sign.push('\n');
    }
    to_sign.push('/');
    to_sign.push_str(account);
    to_sign.push_str(p.path);
    // HMAC takes a key of any length; the error case cannot happen.
    let signature = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(to_sign.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("SharedKey {account}:{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn connection_strings() {
        let cs = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(cs.account.as_deref(), Some("acct"));
        assert_eq!(cs.key.as_deref(), Some("a2V5=="));
        assert_eq!(
            cs.blob_endpoint.as_deref(),
            Some("https://acct.blob.core.windows.net")
        );

        let cs = parse_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(cs.account.as_deref(), Some(DEV_ACCOUNT));
        assert_eq!(cs.blob_endpoint.as_deref(), Some(DEV_ENDPOINT));

        let cs = parse_connection_string(
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=?sv=1&sig=s3cret",
        )
        .unwrap();
        assert_eq!(cs.account.as_deref(), Some("acct"));
        assert_eq!(cs.sas.as_deref(), Some("sv=1&sig=s3cret"));
        assert_eq!(
            cs.blob_endpoint.as_deref(),
            Some("https://acct.blob.core.windows.net")
        );

        let cs = parse_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        )
        .unwrap();
        assert_eq!(cs.blob_endpoint.as_deref(), Some(DEV_ENDPOINT));

        let cs = parse_connection_string(
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=1&sig=x",
        )
        .unwrap();
        assert_eq!(cs.account.as_deref(), Some(DEV_ACCOUNT));

        for bad in ["AccountKey=s3cret", "garbage s3cret"] {
            let e = parse_connection_string(bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn credential_order() {
        let a = AzureAccount::from_env(&env_of(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "AccountName=acct;AccountKey=a2V5",
        )]))
        .unwrap();
        assert_eq!(a.name, "acct");
        assert!(matches!(*a.auth, AzureAuth::SharedKey { .. }));

        let a = AzureAccount::from_env(&env_of(&[
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=x"),
        ]))
        .unwrap();
        assert_eq!(a.endpoint, "https://acct.blob.core.windows.net");
        assert!(matches!(&*a.auth, AzureAuth::Sas(s) if s == "sv=1&sig=x"));

        // The URL's own SAS wins over everything.
        let a = AzureAccount::named(
            "acct".into(),
            "https://acct.blob.core.windows.net".into(),
            Some("sig=url".into()),
            &env_of(&[
                ("AZURE_STORAGE_ACCOUNT", "acct"),
                ("AZURE_STORAGE_KEY", "a2V5"),
            ]),
        )
        .unwrap();
        assert!(matches!(&*a.auth, AzureAuth::Sas(s) if s == "sig=url"));

        // A key for another account is not used.
        let a = AzureAccount::named(
            "acct".into(),
            "https://acct.blob.core.windows.net".into(),
            None,
            &env_of(&[
                ("AZURE_STORAGE_ACCOUNT", "other"),
                ("AZURE_STORAGE_KEY", "a2V5"),
                ("AZURE_STORAGE_SAS_TOKEN", "sig=x"),
            ]),
        )
        .unwrap();
        assert!(matches!(&*a.auth, AzureAuth::Sas(_)));

        assert!(matches!(
            AzureAccount::from_env(&env_of(&[])),
            Err(SourceError::Permanent(_))
        ));
        let e = AzureAccount::from_env(&env_of(&[
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_KEY", "not base64 s3cret!"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[tokio::test]
    async fn workload_identity_and_managed_identity_tokens() {
        use crate::source::token::test_endpoint::{form_value, serve};
        let (base, log) = serve(|req| {
            let assertion = form_value(&req.body, "client_assertion");
            if req.target.ends_with("/tenant-1/oauth2/v2.0/token")
                && assertion.as_deref() == Some("k8s-sa-token")
                && form_value(&req.body, "scope").as_deref() == Some(STORAGE_SCOPE)
                && form_value(&req.body, "client_id").as_deref() == Some("client-1")
            {
                (
                    200,
                    r#"{"access_token":"eyJ.entra","expires_in":3599,"token_type":"Bearer"}"#
                        .into(),
                )
            } else if req.target.starts_with("/metadata/identity/oauth2/token?")
                && req.headers.get("metadata").is_some()
                && req
                    .target
                    .contains("resource=https%3A%2F%2Fstorage.azure.com%2F")
            {
                (
                    200,
                    r#"{"access_token":"eyJ.imds","expires_in":"3599","token_type":"Bearer"}"#
                        .into(),
                )
            } else {
                (
                    400,
                    r#"{"error":"invalid_client","error_description":"AADSTS700016"}"#.into(),
                )
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "k8s-sa-token\n").unwrap();
        let http = cloud::client(std::time::Duration::from_secs(5)).unwrap();
        let wi = AzureAuth::WorkloadIdentity {
            tenant: "tenant-1".into(),
            client_id: "client-1".into(),
            token_file: token_file.display().to_string(),
            authority: format!("{base}/"),
            cache: TokenCache::default(),
        };
        assert_eq!(
            wi.token(&http).await.unwrap().unwrap().secret(),
            "eyJ.entra"
        );
        assert_eq!(
            wi.token(&http).await.unwrap().unwrap().secret(),
            "eyJ.entra"
        );
        assert_eq!(log.lock().unwrap().len(), 1, "the token is cached");

        let mi = AzureAuth::ManagedIdentity {
            url: format!("{base}/metadata/identity/oauth2/token"),
            client_id: None,
            cache: TokenCache::default(),
        };
        assert_eq!(mi.token(&http).await.unwrap().unwrap().secret(), "eyJ.imds");

        // The wrong client: refused for good, with the OAuth error code only.
        let wrong = AzureAuth::WorkloadIdentity {
            tenant: "tenant-1".into(),
            client_id: "client-2".into(),
            token_file: token_file.display().to_string(),
            authority: format!("{base}/"),
            cache: TokenCache::default(),
        };
        match wrong.token(&http).await {
            Err(SourceError::Permanent(m)) => {
                assert!(
                    m.contains("invalid_client") && !m.contains("k8s-sa-token"),
                    "{m}"
                )
            }
            other => panic!("expected a permanent refusal, got {other:?}"),
        }
        assert!(matches!(
            AzureAuth::Sas("sig=x".into()).token(&http).await,
            Ok(None)
        ));
    }

    #[test]
    fn shared_key_signature_matches_the_documented_algorithm() {
        // Computed independently (Python hmac/hashlib, the string-to-sign of
        // the Storage Services docs) for these inputs.
        let key = STANDARD.decode(DEV_KEY).unwrap();
        let auth = shared_key_authorization(
            DEV_ACCOUNT,
            &key,
            &SignedParts {
                method: "GET",
                path: "/devstoreaccount1/kbs/dir/kb.db",
                content_length: None,
                content_type: None,
                if_none_match: Some("\"0x1\""),
                ms_headers: &[
                    ("x-ms-version", API_VERSION),
                    ("x-ms-date", "Wed, 25 Nov 2026 14:29:01 GMT"),
                ],
            },
        );
        assert_eq!(
            auth,
            "SharedKey devstoreaccount1:lmtO2npb08+em3JjJDNIULPZPk2RA0j4lZL0sOUBwdU="
        );
    }
}
