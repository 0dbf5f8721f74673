//! `fleet-cloud`: cloud identities as short-lived secrets, one implementation
//! of each provider for every crate of the fleet: the sync tools use them to
//! reach object stores, the server to log in to managed Postgres without a
//! stored password.
//!
//! - [`identity`]: what the server uses: [`DbIdentity`], the password for a
//!   new database connection (`aws-rds-iam`, `gcp-iam`, `azure-entra`),
//!   cached, refreshed before it expires, with its [`IdentityStatus`] for
//!   `/health` and metrics.
//! - [`aws`]: RDS IAM auth tokens: SigV4-presigned `connect` URLs, signed
//!   with credentials from the AWS default chain.
//! - [`google`]: Google Application Default Credentials (service account
//!   key, `gcloud` user credentials, metadata server / GKE Workload
//!   Identity), for a given OAuth scope.
//! - [`azure`]: Microsoft Entra ID tokens from AKS workload identity or a
//!   managed identity, for a given audience.
//! - [`token`]: bearer tokens that expire and their single-flight cache.
//! - [`http`]: the HTTP client of the token endpoints and how their answers
//!   and failures become a [`CloudError`].
//! - [`error`]: [`CloudError`], transient or permanent, never carrying a
//!   secret.
//! - [`env`](mod@env): how providers read their environment (the process's, or a
//!   test's).
//! - `test_endpoint` (feature `test-support`): a stand-in token endpoint
//!   for tests.

pub mod aws;
pub mod azure;
pub mod env;
pub mod error;
pub mod google;
pub mod http;
pub mod identity;
pub mod token;

#[cfg(feature = "test-support")]
pub mod test_endpoint;

pub use env::{Env, process_env};
pub use error::CloudError;
pub use identity::{DbIdentity, IdentityStatus, Method};
pub use token::{Token, TokenCache};
