//! Google ADC against stand-in token endpoints and metadata servers: the
//! discovery order, the signed JWT and its scope, refusals and their
//! classes, key files that cannot be used.

use super::*;
use crate::env::from_pairs;
use crate::test_endpoint::{form_value, serve};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use std::time::Duration;

fn http() -> reqwest::Client {
    crate::http::client(Duration::from_secs(5), "fleet-cloud-test").unwrap()
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

fn key_file(pem: &str, token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "client_email": "kb@proj.iam.gserviceaccount.com",
        "private_key": pem,
        "private_key_id": "k1",
        "token_uri": token_uri,
    })
    .to_string()
}

/// The claims of a JWT whose signature `public` verifies, else `None`.
fn verified_claims(public: &[u8], jwt: &str) -> Option<serde_json::Value> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).ok()?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).ok()?).ok()
}

#[test]
fn discovery_order() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().display().to_string();
    let adc = GoogleAdc::from_env(
        DATABASE_LOGIN_SCOPES,
        &from_pairs(&[("HOME", &home), ("GCE_METADATA_HOST", "127.0.0.1:9")]),
    )
    .unwrap();
    assert_eq!(adc.kind(), "metadata server");
    assert!(matches!(&adc.source, Source::MetadataServer { base } if base == "http://127.0.0.1:9"));
    assert_eq!(adc.scope(), DATABASE_LOGIN_SCOPES);

    // gcloud's user credentials under $HOME win over the metadata server.
    let gcloud = dir.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
    )
    .unwrap();
    let adc = GoogleAdc::from_env(
        DATABASE_LOGIN_SCOPES,
        &from_pairs(&[("HOME", &home), ("GCE_METADATA_HOST", "127.0.0.1:9")]),
    )
    .unwrap();
    assert_eq!(adc.kind(), "authorized user");

    // GOOGLE_APPLICATION_CREDENTIALS wins over both; a missing file is a
    // permanent error that names it, found at once.
    let missing = dir.path().join("missing.json").display().to_string();
    let err = GoogleAdc::from_env(
        DATABASE_LOGIN_SCOPES,
        &from_pairs(&[
            ("HOME", &home),
            ("GOOGLE_APPLICATION_CREDENTIALS", &missing),
        ]),
    )
    .unwrap_err();
    assert!(
        !err.is_transient() && err.to_string().contains("missing.json"),
        "{err}"
    );
}

#[test]
fn service_account_jwt_is_signed_with_its_key_for_the_scope() {
    let (public, pem) = test_key();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.json");
    std::fs::write(&path, key_file(&pem, "http://127.0.0.1:1/token")).unwrap();
    let adc = GoogleAdc::from_key_file(&path, DATABASE_LOGIN_SCOPES).unwrap();
    let Source::ServiceAccount {
        email,
        key,
        key_id,
        token_uri,
    } = &adc.source
    else {
        panic!("not a service account");
    };
    let jwt = signed_jwt(key, key_id.as_deref(), email, token_uri, adc.scope()).unwrap();
    let claims = verified_claims(&public, &jwt).expect("verifies with the account's public key");
    assert_eq!(claims["iss"], "kb@proj.iam.gserviceaccount.com");
    assert_eq!(claims["aud"], "http://127.0.0.1:1/token");
    assert_eq!(claims["scope"], DATABASE_LOGIN_SCOPES);
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "k1");
}

#[tokio::test]
async fn service_account_token_exchange_and_cache() {
    let (public, pem) = test_key();
    let (base, log) = serve(move |req| {
        let claims =
            form_value(&req.body, "assertion").and_then(|jwt| verified_claims(&public, &jwt));
        let grant = form_value(&req.body, "grant_type");
        match claims {
            Some(c)
                if grant.as_deref() == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
                    && c["scope"] == DATABASE_LOGIN_SCOPES =>
            {
                (
                    200,
                    r#"{"access_token":"ya29.sa-token","expires_in":3599,"token_type":"Bearer"}"#
                        .into(),
                )
            }
            _ => (
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.into(),
            ),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.json");
    std::fs::write(&path, key_file(&pem, &format!("{base}/token?x=1"))).unwrap();
    let adc = GoogleAdc::from_key_file(&path, DATABASE_LOGIN_SCOPES).unwrap();
    let http = http();
    assert_eq!(adc.token(&http).await.unwrap().secret(), "ya29.sa-token");
    assert_eq!(adc.token(&http).await.unwrap().secret(), "ya29.sa-token");
    assert_eq!(log.lock().unwrap().len(), 1, "the token is cached");
    assert_eq!(log.lock().unwrap()[0].method, "POST");
    assert_eq!(adc.cache().stats().fetches, 1);

    // Another key: the endpoint refuses its signature, for good; the error
    // has the OAuth code, not the description, the query or the JWT.
    let (_, other_pem) = test_key();
    std::fs::write(&path, key_file(&other_pem, &format!("{base}/token?x=1"))).unwrap();
    let adc = GoogleAdc::from_key_file(&path, DATABASE_LOGIN_SCOPES).unwrap();
    match adc.token(&http).await {
        Err(CloudError::Permanent(m)) => {
            assert!(
                m.contains("invalid_grant") && !m.contains("Invalid JWT") && !m.contains("x=1"),
                "{m}"
            );
        }
        other => panic!("expected a permanent refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn authorized_user_refresh() {
    let (base, log) = serve(|req| {
        if form_value(&req.body, "grant_type").as_deref() == Some("refresh_token")
            && form_value(&req.body, "refresh_token").as_deref() == Some("1//refresh")
        {
            (
                200,
                r#"{"access_token":"ya29.user","expires_in":3599}"#.into(),
            )
        } else {
            (503, String::new())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adc.json");
    std::fs::write(
        &path,
        serde_json::json!({"type":"authorized_user","client_id":"c","client_secret":"s",
            "refresh_token":"1//refresh","token_uri":format!("{base}/token")})
        .to_string(),
    )
    .unwrap();
    let adc = GoogleAdc::from_key_file(&path, DATABASE_LOGIN_SCOPES).unwrap();
    assert_eq!(adc.token(&http()).await.unwrap().secret(), "ya29.user");
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn metadata_server_token_for_the_scope() {
    let (base, log) = serve(|req| {
        if req.header("metadata-flavor") == Some("Google") {
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
    let adc = GoogleAdc::metadata_server(&base, DATABASE_LOGIN_SCOPES);
    let http = http();
    assert_eq!(adc.token(&http).await.unwrap().secret(), "ya29.wi-token");
    let req = log.lock().unwrap()[0].clone();
    assert!(
        req.target
            .starts_with("/computeMetadata/v1/instance/service-accounts/default/token?"),
        "{}",
        req.target
    );
    assert_eq!(
        req.query_value("scopes").as_deref(),
        Some(
            "https://www.googleapis.com/auth/sqlservice.login,\
             https://www.googleapis.com/auth/alloydb.login"
        )
    );

    // No metadata server: a transient error that says what to set.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let adc = GoogleAdc::metadata_server(&base, DATABASE_LOGIN_SCOPES);
    match adc.token(&http).await {
        Err(CloudError::Transient(m)) => {
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
        let err = match GoogleAdc::from_key_file(&path, DATABASE_LOGIN_SCOPES) {
            Err(e @ CloudError::Permanent(_)) => e.to_string(),
            Err(e) => panic!("wrong class {e:?}"),
            Ok(_) => panic!("{content} accepted"),
        };
        assert!(err.contains(why) && err.contains("key.json"), "{err}");
        assert!(
            !err.contains("s3cret") && !err.contains("czNjcmV0"),
            "{err}"
        );
    }
}

#[test]
fn debug_shows_no_key() {
    let (_, pem) = test_key();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.json");
    std::fs::write(&path, key_file(&pem, "http://127.0.0.1:1/token")).unwrap();
    let adc = GoogleAdc::from_key_file(&path, DATABASE_LOGIN_SCOPES).unwrap();
    let d = format!("{adc:?}");
    assert!(
        d.contains("service account") && !d.contains("PRIVATE"),
        "{d}"
    );
}
