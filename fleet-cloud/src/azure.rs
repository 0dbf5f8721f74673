//! Microsoft Entra ID access tokens for one audience, from the identity of
//! the pod or machine, in this order:
//!
//! 1. Workload identity (what AKS's webhook injects:
//!    `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//!    `AZURE_AUTHORITY_HOST`): the pod's Kubernetes service account token
//!    is exchanged with Entra ID (client credentials with a client
//!    assertion) for a token of the audience's `.default` scope.
//! 2. Managed identity from the instance metadata service (IMDS; its host
//!    from `AZURE_POD_IDENTITY_AUTHORITY_HOST` as the Azure SDKs read it,
//!    else `169.254.169.254`), with `AZURE_CLIENT_ID` for a user-assigned
//!    identity.
//!
//! Storage credentials of other kinds (shared key, SAS, connection
//! strings) are the storage client's own (`fleet-sync`). Tokens are cached
//! ([`TokenCache`]); no token or assertion appears in any error.

use std::path::PathBuf;

use crate::env::Env;
use crate::error::CloudError;
use crate::http::{form, token_answer, transport_error, without_query};
use crate::token::{Token, TokenCache};

/// What a token is for: the `.default` scope of a resource (for Entra ID)
/// and the resource itself (for IMDS, which takes a resource, not a scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience {
    pub scope: &'static str,
    pub resource: &'static str,
}

/// Azure Storage (Blob).
pub const STORAGE: Audience = Audience {
    scope: "https://storage.azure.com/.default",
    resource: "https://storage.azure.com/",
};

/// Azure Database for PostgreSQL (Flexible Server) Entra ID logins: the
/// token is the password of an Entra ID database role.
pub const OSSRDBMS: Audience = Audience {
    scope: "https://ossrdbms-aad.database.windows.net/.default",
    resource: "https://ossrdbms-aad.database.windows.net",
};

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
const IMDS_HOST: &str = "http://169.254.169.254";
const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// One Entra ID identity and the audience of its tokens, with their cache.
pub struct EntraCredential {
    source: Source,
    audience: Audience,
    cache: TokenCache,
}

enum Source {
    WorkloadIdentity {
        tenant: String,
        client_id: String,
        token_file: PathBuf,
        /// Ends with `/`.
        authority: String,
    },
    ManagedIdentity {
        /// The IMDS token URL.
        url: String,
        client_id: Option<String>,
    },
}

impl std::fmt::Debug for EntraCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraCredential")
            .field("kind", &self.kind())
            .field("scope", &self.audience.scope)
            .finish_non_exhaustive()
    }
}

impl EntraCredential {
    /// Workload identity when `AZURE_FEDERATED_TOKEN_FILE` is set (it then
    /// needs `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`, and the file must be
    /// readable), else managed identity.
    pub fn from_env(audience: Audience, env: Env) -> Result<EntraCredential, CloudError> {
        match (
            env("AZURE_FEDERATED_TOKEN_FILE"),
            env("AZURE_CLIENT_ID"),
            env("AZURE_TENANT_ID"),
        ) {
            (Some(token_file), Some(client_id), Some(tenant)) => {
                let token_file = PathBuf::from(token_file);
                std::fs::metadata(&token_file).map_err(|e| {
                    CloudError::permanent(format!(
                        "AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                        token_file.display()
                    ))
                })?;
                let authority =
                    env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.to_string());
                Ok(EntraCredential::workload_identity(
                    audience, &tenant, &client_id, token_file, &authority,
                ))
            }
            (Some(_), _, _) => Err(CloudError::permanent(
                "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_CLIENT_ID or AZURE_TENANT_ID is not \
                 (workload identity needs all three)",
            )),
            _ => {
                let host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                    .unwrap_or_else(|| IMDS_HOST.to_string());
                let url = format!("{}{IMDS_TOKEN_PATH}", host.trim().trim_end_matches('/'));
                Ok(EntraCredential::managed_identity(
                    audience,
                    &url,
                    env("AZURE_CLIENT_ID"),
                ))
            }
        }
    }

    /// Workload identity: `token_file` (re-read for every fetch: the
    /// kubelet rotates it) exchanged at `authority` (`https://HOST/`).
    pub fn workload_identity(
        audience: Audience,
        tenant: &str,
        client_id: &str,
        token_file: PathBuf,
        authority: &str,
    ) -> EntraCredential {
        let mut authority = authority.trim().to_string();
        if !authority.ends_with('/') {
            authority.push('/');
        }
        EntraCredential {
            source: Source::WorkloadIdentity {
                tenant: tenant.to_string(),
                client_id: client_id.to_string(),
                token_file,
                authority,
            },
            audience,
            cache: TokenCache::default(),
        }
    }

    /// Managed identity from the IMDS token endpoint `url`
    /// (`http://169.254.169.254/metadata/identity/oauth2/token`).
    pub fn managed_identity(
        audience: Audience,
        url: &str,
        client_id: Option<String>,
    ) -> EntraCredential {
        EntraCredential {
            source: Source::ManagedIdentity {
                url: url.to_string(),
                client_id,
            },
            audience,
            cache: TokenCache::default(),
        }
    }

    /// `workload identity` or `managed identity`.
    pub fn kind(&self) -> &'static str {
        match self.source {
            Source::WorkloadIdentity { .. } => "workload identity",
            Source::ManagedIdentity { .. } => "managed identity",
        }
    }

    pub fn audience(&self) -> Audience {
        self.audience
    }

    /// The token cache (for its statistics).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// A token for the audience, from the cache while it is fresh.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Token, CloudError> {
        self.cache.get(|| self.fetch(http)).await
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<Token, CloudError> {
        match &self.source {
            Source::WorkloadIdentity {
                tenant,
                client_id,
                token_file,
                authority,
            } => {
                let assertion = tokio::fs::read_to_string(token_file).await.map_err(|e| {
                    CloudError::permanent(format!(
                        "AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                        token_file.display()
                    ))
                })?;
                let url = format!("{authority}{tenant}/oauth2/v2.0/token");
                let who = format!("Microsoft Entra ID token endpoint {}", without_query(&url));
                let body = form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("scope", self.audience.scope),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.trim()),
                ]);
                let resp = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| transport_error(&who, e))?;
                token_answer(&who, resp).await
            }
            Source::ManagedIdentity { url, client_id } => {
                let mut u = reqwest::Url::parse(url).map_err(|e| {
                    CloudError::permanent(format!(
                        "managed identity endpoint {}: {e}",
                        without_query(url)
                    ))
                })?;
                u.query_pairs_mut()
                    .append_pair("api-version", "2018-02-01")
                    .append_pair("resource", self.audience.resource);
                if let Some(id) = client_id {
                    u.query_pairs_mut().append_pair("client_id", id);
                }
                let who = format!(
                    "the Azure instance metadata service at {} (managed identity)",
                    without_query(url)
                );
                let resp = http
                    .get(u)
                    .header("Metadata", "true")
                    .send()
                    .await
                    .map_err(|e| {
                        transport_error(
                            &format!(
                                "no Azure credentials: no workload identity variables \
                                 (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID) \
                                 and {who} did not answer"
                            ),
                            e,
                        )
                    })?;
                token_answer(&who, resp).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
