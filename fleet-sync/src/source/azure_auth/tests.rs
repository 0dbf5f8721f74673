//! The storage credential order, connection strings, the shared key
//! signature, and identity tokens asked for the storage audience.

use super::*;

use super::super::cloud;
use fleet_cloud::env::from_pairs;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    from_pairs(pairs)
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
async fn identity_tokens_are_for_storage() {
    use fleet_cloud::test_endpoint::{form_value, serve};
    let (base, log) = serve(|req| {
        if form_value(&req.body, "scope").as_deref() == Some(azure::STORAGE.scope)
            && form_value(&req.body, "client_assertion").as_deref() == Some("k8s-sa-token")
        {
            (
                200,
                r#"{"access_token":"eyJ.entra","expires_in":3599}"#.into(),
            )
        } else if req.query_value("resource").as_deref() == Some("https://storage.azure.com/")
            && req.header("metadata") == Some("true")
        {
            (
                200,
                r#"{"access_token":"eyJ.imds","expires_in":"3599"}"#.into(),
            )
        } else {
            (400, r#"{"error":"invalid_scope"}"#.into())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "k8s-sa-token\n").unwrap();
    let token_file = token_file.display().to_string();
    let http = cloud::client(std::time::Duration::from_secs(5)).unwrap();

    let wi = new_identity(&from_pairs(&[
        ("AZURE_FEDERATED_TOKEN_FILE", &token_file),
        ("AZURE_CLIENT_ID", "client-1"),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_AUTHORITY_HOST", &base),
    ]))
    .unwrap();
    assert_eq!(format!("{wi:?}"), "workload identity");
    assert_eq!(
        wi.token(&http).await.unwrap().unwrap().secret(),
        "eyJ.entra"
    );
    assert_eq!(
        wi.token(&http).await.unwrap().unwrap().secret(),
        "eyJ.entra"
    );
    assert_eq!(log.lock().unwrap().len(), 1, "the token is cached");

    let mi = new_identity(&from_pairs(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &base)])).unwrap();
    assert_eq!(mi.token(&http).await.unwrap().unwrap().secret(), "eyJ.imds");

    // Half the workload identity variables: refused for good.
    assert!(matches!(
        new_identity(&from_pairs(&[("AZURE_FEDERATED_TOKEN_FILE", &token_file)])),
        Err(SourceError::Permanent(_))
    ));
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
