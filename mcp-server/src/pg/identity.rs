//! How a database's password is had: stored (`auth: password`, the
//! default) or made from the platform's cloud identity for each new
//! connection (`aws-rds-iam`, `gcp-iam`, `azure-entra`).
//!
//! The cloud providers themselves (credential chains, token endpoints,
//! caching and refresh ahead of expiry) are `fleet_cloud::identity`, which
//! the sync tools use too; this module only maps a database entry onto
//! them and reports their state for `/health`.

use std::fmt;

use anyhow::bail;
use serde_json::{Value, json};

/// `auth:` of a database entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A stored password (or none: trust, certificate authentication).
    Password,
    /// A SigV4-signed RDS auth token from the AWS credential chain.
    AwsRdsIam { region: Option<String> },
    /// A Google OAuth access token (Application Default Credentials).
    GcpIam,
    /// A Microsoft Entra ID access token for Azure Database for PostgreSQL.
    AzureEntra,
}

impl AuthMethod {
    pub fn parse(auth: Option<&str>, region: Option<&str>) -> anyhow::Result<AuthMethod> {
        let region = region.map(str::trim).filter(|r| !r.is_empty());
        let method = match auth.map(|a| a.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "password") => AuthMethod::Password,
            Some("aws-rds-iam") => AuthMethod::AwsRdsIam {
                region: region.map(String::from),
            },
            Some("gcp-iam") => AuthMethod::GcpIam,
            Some("azure-entra") => AuthMethod::AzureEntra,
            Some(other) => {
                bail!("auth {other:?} is not one of password, aws-rds-iam, gcp-iam, azure-entra")
            }
        };
        if region.is_some() && !matches!(method, AuthMethod::AwsRdsIam { .. }) {
            bail!("`region` applies only to auth: aws-rds-iam");
        }
        Ok(method)
    }

    pub fn label(&self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::AwsRdsIam { .. } => "aws-rds-iam",
            AuthMethod::GcpIam => "gcp-iam",
            AuthMethod::AzureEntra => "azure-entra",
        }
    }
}

/// The password of each new connection made from a cloud identity.
#[derive(Clone)]
pub struct Identity {
    inner: fleet_cloud::identity::DbIdentity,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// `None` for a stored password. Finds the provider now (a key file that
    /// cannot be read is an error naming it); fetches nothing yet.
    pub fn new(method: &AuthMethod) -> anyhow::Result<Option<Identity>> {
        use fleet_cloud::identity::{DbIdentity, Method};
        let method = match method {
            AuthMethod::Password => return Ok(None),
            AuthMethod::AwsRdsIam { region } => Method::AwsRdsIam {
                region: region.clone(),
            },
            AuthMethod::GcpIam => Method::GcpIam,
            AuthMethod::AzureEntra => Method::AzureEntra,
        };
        let inner = DbIdentity::new(method).map_err(|e| anyhow::anyhow!("auth: {e}"))?;
        Ok(Some(Identity { inner }))
    }

    /// The password for a new connection as `user` to `host:port`. The
    /// error names the cause, never a token.
    pub async fn password(&self, host: &str, port: u16, user: &str) -> Result<String, String> {
        self.inner
            .password(host, port, user)
            .await
            .map_err(|e| format!("cloud identity: {e}"))
    }

    /// Whether the token endpoint answered the last fetch (`true` before
    /// the first): a cached token may still be handed out while it fails.
    pub fn ok(&self) -> bool {
        self.inner.status().last_fetch_ok != Some(false)
    }

    /// `{"auth", "ok", "error", "expires_in_s", "fetches", "failures"}`:
    /// `ok` is the last fetch's outcome, `error` the last failure's cause
    /// (kept after later successes, to explain them).
    pub fn health(&self) -> Value {
        let s = self.inner.status();
        json!({
            "auth": s.method,
            "ok": s.last_fetch_ok != Some(false),
            "error": s.last_error,
            "expires_in_s": s.expires_in.map(|d| d.as_secs()),
            "fetches": s.fetches,
            "failures": s.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_and_region_belongs_to_aws() {
        assert_eq!(AuthMethod::parse(None, None).unwrap(), AuthMethod::Password);
        assert_eq!(
            AuthMethod::parse(Some("AWS-RDS-IAM"), Some("eu-west-1")).unwrap(),
            AuthMethod::AwsRdsIam {
                region: Some("eu-west-1".into())
            }
        );
        assert_eq!(
            AuthMethod::parse(Some("gcp-iam"), None).unwrap(),
            AuthMethod::GcpIam
        );
        assert!(AuthMethod::parse(Some("kerberos"), None).is_err());
        assert!(AuthMethod::parse(Some("gcp-iam"), Some("us-east-1")).is_err());
    }
}
