//! Entra ID tokens against a stand-in authority and IMDS: what each asks
//! for (scope or resource, client, assertion), discovery from the
//! environment, refusals and their classes.

use super::*;
use crate::env::from_pairs;
use crate::test_endpoint::{Recorded, Reply, form_value, serve};
use std::time::Duration;

fn http() -> reqwest::Client {
    crate::http::client(Duration::from_secs(5), "fleet-cloud-test").unwrap()
}

/// Entra ID for tenant-1/client-1 with the pod token `k8s-sa-token`, and
/// IMDS, each answering only a request for `audience`.
fn authority(audience: Audience) -> impl Fn(&Recorded) -> Reply {
    move |req| {
        let assertion = form_value(&req.body, "client_assertion");
        if req.target.ends_with("/tenant-1/oauth2/v2.0/token")
            && assertion.as_deref() == Some("k8s-sa-token")
            && form_value(&req.body, "grant_type").as_deref() == Some("client_credentials")
            && form_value(&req.body, "scope").as_deref() == Some(audience.scope)
            && form_value(&req.body, "client_id").as_deref() == Some("client-1")
        {
            (
                200,
                r#"{"access_token":"eyJ.entra","expires_in":3599,"token_type":"Bearer"}"#.into(),
            )
        } else if req.target.starts_with("/metadata/identity/oauth2/token?")
            && req.header("metadata") == Some("true")
            && req.query_value("resource").as_deref() == Some(audience.resource)
            && req.query_value("api-version").as_deref() == Some("2018-02-01")
        {
            (
                200,
                r#"{"access_token":"eyJ.imds","expires_in":"3599","token_type":"Bearer"}"#.into(),
            )
        } else {
            (
                400,
                r#"{"error":"invalid_client","error_description":"AADSTS700016"}"#.into(),
            )
        }
    }
}

#[tokio::test]
async fn workload_identity_for_the_database_scope() {
    let (base, log) = serve(authority(OSSRDBMS)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "k8s-sa-token\n").unwrap();
    let http = http();
    let wi = EntraCredential::workload_identity(
        OSSRDBMS,
        "tenant-1",
        "client-1",
        token_file.clone(),
        &base,
    );
    assert_eq!(wi.kind(), "workload identity");
    assert_eq!(wi.token(&http).await.unwrap().secret(), "eyJ.entra");
    assert_eq!(wi.token(&http).await.unwrap().secret(), "eyJ.entra");
    assert_eq!(log.lock().unwrap().len(), 1, "the token is cached");

    // The wrong client: refused for good, with the OAuth error code only.
    let wrong =
        EntraCredential::workload_identity(OSSRDBMS, "tenant-1", "client-2", token_file, &base);
    match wrong.token(&http).await {
        Err(CloudError::Permanent(m)) => {
            assert!(
                m.contains("invalid_client")
                    && !m.contains("k8s-sa-token")
                    && !m.contains("AADSTS"),
                "{m}"
            )
        }
        other => panic!("expected a permanent refusal, got {other:?}"),
    }

    // A storage credential asks for the storage scope, which this
    // authority (for the database audience) refuses.
    let storage = EntraCredential::workload_identity(
        STORAGE,
        "tenant-1",
        "client-1",
        dir.path().join("token"),
        &base,
    );
    assert!(storage.token(&http).await.is_err());
}

#[tokio::test]
async fn managed_identity_for_the_database_resource() {
    let (base, log) = serve(authority(OSSRDBMS)).await;
    let http = http();
    let mi = EntraCredential::managed_identity(
        OSSRDBMS,
        &format!("{base}/metadata/identity/oauth2/token"),
        Some("user-assigned-1".into()),
    );
    assert_eq!(mi.kind(), "managed identity");
    assert_eq!(mi.token(&http).await.unwrap().secret(), "eyJ.imds");
    let req = log.lock().unwrap()[0].clone();
    assert_eq!(
        req.query_value("client_id").as_deref(),
        Some("user-assigned-1")
    );

    // IMDS down: transient, naming what was tried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{IMDS_TOKEN_PATH}", closed.local_addr().unwrap());
    drop(closed);
    let mi = EntraCredential::managed_identity(OSSRDBMS, &url, None);
    match mi.token(&http).await {
        Err(CloudError::Transient(m)) => assert!(m.contains("AZURE_FEDERATED_TOKEN_FILE"), "{m}"),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_from_the_environment() {
    let (base, _log) = serve(authority(OSSRDBMS)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "k8s-sa-token").unwrap();
    let file = token_file.display().to_string();
    let http = http();

    let wi = EntraCredential::from_env(
        OSSRDBMS,
        &from_pairs(&[
            ("AZURE_FEDERATED_TOKEN_FILE", &file),
            ("AZURE_CLIENT_ID", "client-1"),
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_AUTHORITY_HOST", &base),
        ]),
    )
    .unwrap();
    assert_eq!(wi.token(&http).await.unwrap().secret(), "eyJ.entra");

    let mi = EntraCredential::from_env(
        OSSRDBMS,
        &from_pairs(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &format!("{base}/"))]),
    )
    .unwrap();
    assert_eq!(mi.kind(), "managed identity");
    assert_eq!(mi.token(&http).await.unwrap().secret(), "eyJ.imds");

    // Half the workload identity variables, or a token file that is not
    // there: permanent, found before any request.
    let err = EntraCredential::from_env(
        OSSRDBMS,
        &from_pairs(&[("AZURE_FEDERATED_TOKEN_FILE", &file)]),
    )
    .unwrap_err();
    assert!(
        !err.is_transient() && err.to_string().contains("AZURE_TENANT_ID"),
        "{err}"
    );
    let missing = dir.path().join("gone").display().to_string();
    let err = EntraCredential::from_env(
        OSSRDBMS,
        &from_pairs(&[
            ("AZURE_FEDERATED_TOKEN_FILE", &missing),
            ("AZURE_CLIENT_ID", "client-1"),
            ("AZURE_TENANT_ID", "tenant-1"),
        ]),
    )
    .unwrap_err();
    assert!(
        !err.is_transient() && err.to_string().contains("gone"),
        "{err}"
    );
}
