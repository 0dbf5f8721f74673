//! RDS IAM auth tokens: the password of an IAM database user of RDS or
//! Aurora (PostgreSQL), a SigV4-presigned URL for
//! `https://HOST:PORT/?Action=connect&DBUser=USER`, service `rds-db`,
//! valid 15 minutes, without its `https://`, exactly as botocore's
//! `generate_db_auth_token` makes it ([`rds_auth_token`], a pure function of
//! its inputs and the time).
//!
//! [`RdsIam`] signs with credentials from the AWS default chain of
//! `aws-config` (environment, shared config/credentials files and their
//! profiles, web identity / IRSA, ECS and EKS Pod Identity container
//! credentials, EC2 instance metadata), built once and reused; credentials
//! that expire are reused until 5 minutes before they do. The region is the
//! one given, else the chain's (`AWS_REGION`, `AWS_DEFAULT_REGION`, the
//! profile, instance metadata).

use std::time::{Duration, SystemTime};

use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::default_provider::region::DefaultRegionChain;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use crate::error::{CloudError, chain, scrub_urls};
use crate::http::short;
use crate::token::Token;

/// How long an RDS auth token is valid (botocore's `ExpiresIn`).
pub const RDS_TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The signing name of RDS database logins.
const SERVICE: &str = "rds-db";

/// Credentials that expire are fetched again this long before they do.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// An access key, its secret and, for temporary credentials, the session
/// token. Its `Debug` shows the key id only.
#[derive(Clone)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl AwsCredentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> AwsCredentials {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

impl From<&Credentials> for AwsCredentials {
    fn from(c: &Credentials) -> AwsCredentials {
        AwsCredentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            c.session_token().map(str::to_string),
        )
    }
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}

/// The RDS auth token for `user` at `host:port` in `region`, signed at
/// `time`: `HOST:PORT/?Action=connect&DBUser=USER&X-Amz-Algorithm=...&X-Amz-Signature=...`,
/// byte for byte what botocore's `generate_db_auth_token` returns for the
/// same inputs at the same instant.
pub fn rds_auth_token(
    creds: &AwsCredentials,
    region: &str,
    host: &str,
    port: u16,
    user: &str,
    time: SystemTime,
) -> Result<String, CloudError> {
    check_host(host)?;
    if user.is_empty() {
        return Err(CloudError::permanent("RDS IAM: the database user is empty"));
    }
    check_region(region)?;
    let db_user = encode(user);
    let url = format!("https://{host}:{port}/?Action=connect&DBUser={db_user}");
    // The Host header botocore signs: the host in lower case, without the
    // port when it is https's own.
    let mut host_header = host.to_ascii_lowercase();
    if port != 443 {
        host_header.push_str(&format!(":{port}"));
    }
    let failed = |what: &str, e: &dyn std::error::Error| {
        CloudError::permanent(format!("RDS IAM: {what}: {}", short(&chain(e))))
    };
    let identity = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "fleet-cloud",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(RDS_TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| failed("signing parameters", &e))?
        .into();
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once(("host", host_header.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| failed("the request to sign", &e))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| failed("signing", &e))?
        .into_parts();
    let param = |name: &str| {
        instructions
            .params()
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_ref())
    };
    // botocore's order: the operation's parameters, the signing
    // parameters, the session token, the signature.
    let mut token = format!("{host}:{port}/?Action=connect&DBUser={db_user}");
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ] {
        match param(name) {
            Some(value) => {
                token.push('&');
                token.push_str(name);
                token.push('=');
                token.push_str(&encode(value));
            }
            None if name == "X-Amz-Security-Token" => {}
            None => {
                return Err(CloudError::permanent(format!(
                    "RDS IAM: the signer gave no {name}"
                )));
            }
        }
    }
    Ok(token)
}

/// Percent-encode everything but RFC 3986's unreserved characters (what
/// botocore's `percent_encode` and SigV4's canonical query do).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A DNS name or IPv4 address, or an IPv6 address in brackets.
fn check_host(host: &str) -> Result<(), CloudError> {
    let ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if ok {
        Ok(())
    } else {
        Err(CloudError::permanent(format!(
            "RDS IAM: {host:?} is not a host name (an IPv6 address goes in brackets)"
        )))
    }
}

fn check_region(region: &str) -> Result<(), CloudError> {
    if !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err(CloudError::permanent(format!(
            "RDS IAM: {region:?} is not an AWS region name"
        )))
    }
}

/// RDS auth tokens signed with the default chain's credentials.
pub struct RdsIam {
    region: Option<String>,
    chain: tokio::sync::OnceCell<Chain>,
    credentials: tokio::sync::Mutex<Option<Credentials>>,
}

struct Chain {
    provider: DefaultCredentialsChain,
    region: String,
}

impl std::fmt::Debug for RdsIam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsIam")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl RdsIam {
    /// Tokens for `region`, else the chain's region. Nothing is read or
    /// asked until the first token.
    pub fn new(region: Option<String>) -> Result<RdsIam, CloudError> {
        let region = region
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if let Some(r) = &region {
            check_region(r)?;
        }
        Ok(RdsIam {
            region,
            chain: tokio::sync::OnceCell::new(),
            credentials: tokio::sync::Mutex::new(None),
        })
    }

    async fn chain(&self) -> Result<&Chain, CloudError> {
        self.chain
            .get_or_try_init(|| async {
                let region = match &self.region {
                    Some(r) => r.clone(),
                    None => DefaultRegionChain::builder()
                        .build()
                        .region()
                        .await
                        .map(|r| r.to_string())
                        .ok_or_else(|| {
                            CloudError::permanent(
                                "RDS IAM: no AWS region: set the entry's region, or AWS_REGION",
                            )
                        })?,
                };
                check_region(&region)?;
                let provider = DefaultCredentialsChain::builder()
                    .region(Region::new(region.clone()))
                    .build()
                    .await;
                Ok(Chain { provider, region })
            })
            .await
    }

    /// The region tokens are signed for.
    pub async fn region(&self) -> Result<String, CloudError> {
        Ok(self.chain().await?.region.clone())
    }

    /// The chain's credentials; those that expire are kept until shortly
    /// before they do.
    async fn credentials(&self, chain: &Chain) -> Result<Credentials, CloudError> {
        let mut cached = self.credentials.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cached.as_ref()
            && c.expiry().is_some_and(|e| e > now + CREDENTIALS_MARGIN)
        {
            return Ok(c.clone());
        }
        let creds = chain
            .provider
            .provide_credentials()
            .await
            .map_err(credentials_error)?;
        *cached = Some(creds.clone());
        Ok(creds)
    }

    /// A new token for `user` at `host:port`, valid 15 minutes (or until
    /// the credentials expire, if sooner).
    pub async fn token(&self, host: &str, port: u16, user: &str) -> Result<Token, CloudError> {
        let chain = self.chain().await?;
        let creds = self.credentials(chain).await?;
        let now = SystemTime::now();
        let secret = rds_auth_token(&(&creds).into(), &chain.region, host, port, user, now)?;
        let lifetime = creds
            .expiry()
            .map(|e| e.duration_since(now).unwrap_or(Duration::ZERO))
            .map_or(RDS_TOKEN_LIFETIME, |d| d.min(RDS_TOKEN_LIFETIME));
        Ok(Token::new(secret, Some(lifetime)))
    }
}

/// The chain's failure as a [`CloudError`]: a configuration it cannot use
/// is permanent; everything else (nothing found yet, a provider that did
/// not answer) is worth a retry.
fn credentials_error(e: CredentialsError) -> CloudError {
    let what = "AWS credentials (default chain: environment, profile, web identity, \
                container, instance metadata)";
    let msg = match &e {
        CredentialsError::CredentialsNotLoaded(_) => format!("{what}: none found"),
        _ => format!("{what}: {}", scrub_urls(&short(&chain(&e)))),
    };
    match e {
        CredentialsError::InvalidConfiguration(_) => CloudError::Permanent(msg),
        _ => CloudError::Transient(msg),
    }
}

#[cfg(test)]
mod tests;
