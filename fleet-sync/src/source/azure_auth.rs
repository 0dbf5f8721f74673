//! Azure Storage credentials, the platform's own ways, in this order:
//!
//! 1. A SAS token in an `https://ACCOUNT.blob.core.windows.net/...?sv=...&sig=...` URL.
//! 2. `AZURE_STORAGE_CONNECTION_STRING` (what the portal and Azurite give:
//!    `AccountName`, `AccountKey` or `SharedAccessSignature`, `BlobEndpoint`
//!    or `EndpointSuffix`, or `UseDevelopmentStorage=true`).
//! 3. `AZURE_STORAGE_ACCOUNT` with `AZURE_STORAGE_KEY` (shared key) or
//!    `AZURE_STORAGE_SAS_TOKEN`.
//! 4. The pod's or machine's identity, for the storage audience:
//!    workload identity, else managed identity (`fleet_cloud::azure`, which
//!    the server's Entra ID database logins use too).
//!
//! A shared key signs each request (HMAC-SHA256 of the canonical request);
//! identity tokens are cached until shortly before they expire. No key,
//! SAS or token appears in any error or log line.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fleet_cloud::Token;
use fleet_cloud::azure::{self, EntraCredential};
use hmac::{KeyInit, Mac};

use super::SourceError;

pub use fleet_cloud::env::{Env, process_env};

/// The REST API version every request names.
pub const API_VERSION: &str = "2021-12-02";

/// Azurite's well-known development account and key (public, documented).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEV_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// How requests to one account are authorised.
pub enum AzureAuth {
    SharedKey {
        account: String,
        key: Vec<u8>,
    },
    /// The SAS query string, without the leading `?`.
    Sas(String),
    /// A bearer token of the pod's or machine's identity.
    Identity(Arc<EntraCredential>),
}

impl std::fmt::Debug for AzureAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AzureAuth::SharedKey { .. } => "SharedKey",
            AzureAuth::Sas(_) => "Sas",
            AzureAuth::Identity(c) => c.kind(),
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

/// Workload identity when its variables are set, else managed identity:
/// one per process.
fn identity(env: Env) -> Result<Arc<AzureAuth>, SourceError> {
    let mut shared = IDENTITY
        .lock()
        .map_err(|_| SourceError::Permanent("Azure credentials cache poisoned".into()))?;
    if let Some(a) = shared.as_ref() {
        return Ok(a.clone());
    }
    let auth = Arc::new(new_identity(env)?);
    *shared = Some(auth.clone());
    Ok(auth)
}

fn new_identity(env: Env) -> Result<AzureAuth, SourceError> {
    Ok(AzureAuth::Identity(Arc::new(EntraCredential::from_env(
        azure::STORAGE,
        env,
    )?)))
}

impl AzureAuth {
    /// The bearer token for identity credentials; `None` for shared key and
    /// SAS, which authorise each request themselves.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Option<Token>, SourceError> {
        match self {
            AzureAuth::SharedKey { .. } | AzureAuth::Sas(_) => Ok(None),
            AzureAuth::Identity(c) => Ok(Some(c.token(http).await?)),
        }
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
mod tests;
