//! Where Cloud Storage is and how requests to it are authorised:
//!
//! 1. `STORAGE_EMULATOR_HOST`: an emulator at that address, no credentials.
//! 2. Otherwise `https://storage.googleapis.com` with a token from Google's
//!    Application Default Credentials (`fleet_cloud::google`: key file,
//!    `gcloud` user credentials, metadata server / GKE Workload Identity)
//!    for the storage [`SCOPE`].
//!
//! One endpoint (one token cache) per process, for every `gs://` source.

use std::sync::{Arc, Mutex};

use fleet_cloud::google::GoogleAdc;
use fleet_cloud::{Env, Token, process_env};

use super::SourceError;

/// What the tokens may do: read objects, and write them for `push`.
pub const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// How the JSON API is reached and authorised.
#[derive(Clone)]
pub struct GoogleEndpoint {
    /// `https://storage.googleapis.com`, or the emulator's address.
    pub base: String,
    /// `None` for an emulator: requests go without credentials.
    pub auth: Option<Arc<GoogleAdc>>,
}

impl GoogleEndpoint {
    /// The bearer token to send, or `None` for an emulator.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Option<Token>, SourceError> {
        match &self.auth {
            Some(adc) => Ok(Some(adc.token(http).await?)),
            None => Ok(None),
        }
    }
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
    let e = from_env(&process_env)?;
    *shared = Some(e.clone());
    Ok(e)
}

fn from_env(env: Env) -> Result<GoogleEndpoint, SourceError> {
    if let Some(host) = env("STORAGE_EMULATOR_HOST") {
        let host = host.trim().trim_end_matches('/');
        let base = if host.contains("://") {
            host.to_string()
        } else {
            format!("http://{host}")
        };
        return Ok(GoogleEndpoint { base, auth: None });
    }
    Ok(GoogleEndpoint {
        base: "https://storage.googleapis.com".to_string(),
        auth: Some(Arc::new(GoogleAdc::from_env(SCOPE, env)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_cloud::env::from_pairs;
    use fleet_cloud::test_endpoint::serve;

    #[test]
    fn emulator_and_metadata_server_from_env() {
        let e = from_env(&from_pairs(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")])).unwrap();
        assert_eq!(e.base, "http://127.0.0.1:4443");
        assert!(e.auth.is_none());
        let e = from_env(&from_pairs(&[(
            "STORAGE_EMULATOR_HOST",
            "https://gcs.local:9/",
        )]))
        .unwrap();
        assert_eq!(e.base, "https://gcs.local:9");
        let e = from_env(&from_pairs(&[
            ("HOME", "/nonexistent"),
            ("GCE_METADATA_HOST", "127.0.0.1:9"),
        ]))
        .unwrap();
        assert_eq!(e.base, "https://storage.googleapis.com");
        let adc = e.auth.unwrap();
        assert_eq!((adc.kind(), adc.scope()), ("metadata server", SCOPE));
    }

    #[tokio::test]
    async fn storage_tokens_are_asked_for_the_storage_scope() {
        let (base, log) = serve(|req| {
            if req.query_value("scopes").as_deref() == Some(SCOPE) {
                (
                    200,
                    r#"{"access_token":"ya29.gcs","expires_in":3599}"#.into(),
                )
            } else {
                (403, String::new())
            }
        })
        .await;
        let e = from_env(&from_pairs(&[
            ("HOME", "/nonexistent"),
            ("GCE_METADATA_HOST", &base),
        ]))
        .unwrap();
        let http = super::super::cloud::client(std::time::Duration::from_secs(5)).unwrap();
        let t = e.token(&http).await.unwrap().unwrap();
        assert_eq!(t.secret(), "ya29.gcs");
        assert_eq!(e.token(&http).await.unwrap().unwrap().secret(), "ya29.gcs");
        assert_eq!(log.lock().unwrap().len(), 1, "cached");

        // An unusable key file is a permanent source error naming it.
        let err = from_env(&from_pairs(&[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/key.json",
        )]))
        .err()
        .unwrap();
        assert!(
            matches!(&err, SourceError::Permanent(m) if m.contains("/nonexistent/key.json")),
            "{err:?}"
        );
    }
}
