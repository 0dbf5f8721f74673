//! `DbIdentity` against stand-in metadata servers and authorities: the
//! database scopes, refresh near expiry, a failed refresh that keeps the
//! valid token (and shows in the status), single flight, no secret in
//! `Debug` or errors. The AWS chain reads the process environment: its
//! tests are in `tests/env_discovery.rs`.

use super::*;
use crate::env::from_pairs;
use crate::test_endpoint::{Log, serve};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A metadata server answering `answers[i]` (status, token, lifetime) to
/// its i-th request (the last one after that).
async fn metadata_server(answers: Vec<(u16, &'static str, u64)>) -> (String, Log) {
    let n = AtomicUsize::new(0);
    serve(move |req| {
        let i = n.fetch_add(1, Ordering::SeqCst).min(answers.len() - 1);
        let (status, token, lifetime) = answers[i];
        if req.header("metadata-flavor") != Some("Google")
            || req.query_value("scopes") != Some(DATABASE_LOGIN_SCOPES.replace(' ', ","))
        {
            return (403, String::new());
        }
        if status != 200 {
            // An error body that holds something secret-looking.
            return (
                status,
                format!(r#"{{"error":"backend_error","detail":"{token}"}}"#),
            );
        }
        (
            200,
            format!(
                r#"{{"access_token":"{token}","expires_in":{lifetime},"token_type":"Bearer"}}"#
            ),
        )
    })
    .await
}

fn gcp(base: &str) -> DbIdentity {
    DbIdentity::from_env(
        Method::GcpIam,
        &from_pairs(&[("HOME", "/nonexistent"), ("GCE_METADATA_HOST", base)]),
    )
    .unwrap()
}

#[tokio::test]
async fn gcp_password_is_a_login_scoped_token_cached_for_every_connection() {
    let (base, log) = metadata_server(vec![(200, "ya29.db-1", 3599)]).await;
    let id = gcp(&base);
    assert_eq!(id.method(), "gcp-iam");
    assert_eq!(id.status().last_fetch_ok, None);
    assert_eq!(
        id.password("10.0.0.3", 5432, "kb@proj.iam").await.unwrap(),
        "ya29.db-1"
    );
    // Another connection, another user: the same token, not fetched again.
    assert_eq!(
        id.clone()
            .password("10.0.0.4", 5432, "other")
            .await
            .unwrap(),
        "ya29.db-1"
    );
    assert_eq!(log.lock().unwrap().len(), 1);
    let s = id.status();
    assert_eq!(
        (s.method, s.last_fetch_ok, s.fetches, s.failures),
        ("gcp-iam", Some(true), 1, 0)
    );
    let left = s.expires_in.unwrap();
    assert!(
        left > Duration::from_secs(3500) && left <= Duration::from_secs(3599),
        "{left:?}"
    );
}

#[tokio::test]
async fn a_token_near_expiry_is_fetched_again() {
    // 30 s left: within a minute of expiry, due at once.
    let (base, log) =
        metadata_server(vec![(200, "ya29.short", 30), (200, "ya29.next", 3599)]).await;
    let id = gcp(&base);
    assert_eq!(id.password("db", 5432, "u").await.unwrap(), "ya29.short");
    assert_eq!(id.password("db", 5432, "u").await.unwrap(), "ya29.next");
    assert_eq!(id.password("db", 5432, "u").await.unwrap(), "ya29.next");
    assert_eq!(log.lock().unwrap().len(), 2);
    assert_eq!(id.status().fetches, 2);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_valid_token_and_shows_in_the_status() {
    let (base, log) = metadata_server(vec![(200, "ya29.valid", 30), (503, "ya29.leaked", 0)]).await;
    let id = gcp(&base);
    assert_eq!(id.password("db", 5432, "u").await.unwrap(), "ya29.valid");
    // Due for refresh, the endpoint fails: the cached one is still valid.
    assert_eq!(id.password("db", 5432, "u").await.unwrap(), "ya29.valid");
    let s = id.status();
    assert_eq!(s.last_fetch_ok, Some(false));
    assert_eq!((s.fetches, s.failures), (2, 1));
    let err = s.last_error.clone().unwrap();
    assert!(err.contains("503") && !err.contains("ya29"), "{err}");
    assert!(s.expires_in.unwrap() <= Duration::from_secs(30));
    // Within the retry pause, new connections do not wait on the endpoint.
    assert_eq!(id.password("db", 5432, "u").await.unwrap(), "ya29.valid");
    assert_eq!(log.lock().unwrap().len(), 2);
    let d = format!("{id:?}");
    assert!(d.contains("gcp-iam") && !d.contains("ya29"), "{d}");
}

#[tokio::test]
async fn without_a_valid_token_the_error_is_returned() {
    let (base, _log) = metadata_server(vec![(403, "ya29.leaked", 0)]).await;
    let id = gcp(&base);
    let e = id.password("db", 5432, "u").await.unwrap_err();
    assert!(!e.is_transient(), "a refusal is permanent: {e}");
    assert!(
        !e.to_string().contains("ya29") && !format!("{e:?}").contains("ya29"),
        "{e:?}"
    );
    assert_eq!(id.status().last_fetch_ok, Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_connections_share_one_fetch() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let (base, log) = serve(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        // A slow endpoint: every caller arrives while the fetch runs.
        std::thread::sleep(Duration::from_millis(300));
        (
            200,
            r#"{"access_token":"ya29.once","expires_in":3599}"#.into(),
        )
    })
    .await;
    let id = gcp(&base);
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let id = id.clone();
            tokio::spawn(async move { id.password("db", 5432, &format!("u{i}")).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), "ya29.once");
    }
    assert_eq!(log.lock().unwrap().len(), 1);
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(id.status().fetches, 1);
}

#[tokio::test]
async fn azure_password_is_an_ossrdbms_token() {
    let (base, log) = serve(|req| {
        let scope = crate::test_endpoint::form_value(&req.body, "scope");
        if scope.as_deref() == Some("https://ossrdbms-aad.database.windows.net/.default") {
            (200, r#"{"access_token":"eyJ.pg","expires_in":3599}"#.into())
        } else {
            (400, r#"{"error":"invalid_scope"}"#.into())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "pod-token").unwrap();
    let file = file.display().to_string();
    let id = DbIdentity::from_env(
        Method::AzureEntra,
        &from_pairs(&[
            ("AZURE_FEDERATED_TOKEN_FILE", &file),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_AUTHORITY_HOST", &base),
        ]),
    )
    .unwrap();
    assert_eq!(id.method(), "azure-entra");
    assert_eq!(
        id.password("pg.postgres.database.azure.com", 5432, "kb")
            .await
            .unwrap(),
        "eyJ.pg"
    );
    assert!(
        log.lock().unwrap()[0]
            .target
            .ends_with("/t/oauth2/v2.0/token")
    );
}

#[test]
fn configuration_errors_are_found_at_once() {
    let e = DbIdentity::from_env(
        Method::GcpIam,
        &from_pairs(&[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json")]),
    )
    .unwrap_err();
    assert!(
        !e.is_transient() && e.to_string().contains("/nonexistent/sa.json"),
        "{e}"
    );
    let e = DbIdentity::from_env(
        Method::AzureEntra,
        &from_pairs(&[("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token")]),
    )
    .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    let e = DbIdentity::new(Method::AwsRdsIam {
        region: Some("Mars 1".into()),
    })
    .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert_eq!(Method::AwsRdsIam { region: None }.label(), "aws-rds-iam");
    assert_eq!(Method::GcpIam.label(), "gcp-iam");
    assert_eq!(Method::AzureEntra.label(), "azure-entra");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_refresh_does_not_hold_up_a_valid_token() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let (base, log) = serve(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            // 50 s left: due for a refresh at once, valid for a while.
            return (
                200,
                r#"{"access_token":"ya29.first","expires_in":50}"#.into(),
            );
        }
        // The metadata server hangs, then answers.
        std::thread::sleep(Duration::from_millis(1500));
        (
            200,
            r#"{"access_token":"ya29.late","expires_in":3599}"#.into(),
        )
    })
    .await;
    let id = gcp(&base);
    assert_eq!(id.password("db", 5432, "u").await.unwrap(), "ya29.first");
    let started = Instant::now();
    assert_eq!(id.password("db", 5432, "u").await.unwrap(), "ya29.first");
    let waited = started.elapsed();
    assert!(
        waited >= REFRESH_WAIT && waited < Duration::from_millis(1200),
        "{waited:?}"
    );
    // The refresh went on in the background and its token is used next.
    let deadline = Instant::now() + Duration::from_secs(5);
    while id.password("db", 5432, "u").await.unwrap() != "ya29.late" {
        assert!(
            Instant::now() < deadline,
            "the background refresh never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log.lock().unwrap().len(), 2, "one refresh, shared");
}
