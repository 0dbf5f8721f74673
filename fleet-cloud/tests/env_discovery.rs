//! `DbIdentity::new` finding each provider from the process environment,
//! as the server will: the AWS default chain from environment variables,
//! from a container credentials endpoint (EKS Pod Identity / ECS) and from
//! instance metadata (IMDSv2), Google's metadata server from
//! `GCE_METADATA_HOST`, Entra ID workload identity from AKS's variables.
//! The endpoints are stand-ins on 127.0.0.1.
//!
//! The environment is the process's, shared by every thread: this file is
//! its own test binary with one test, and the variables change only
//! between phases, when no runtime (no client thread) is alive; the
//! stand-in server's thread reads none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleet_cloud::aws::{AwsCredentials, rds_auth_token};
use fleet_cloud::test_endpoint::{Answer, Log, Recorded, serve_std};
use fleet_cloud::{DbIdentity, Method};

const HOST: &str = "kb.cluster-abc.eu-central-1.rds.amazonaws.com";

/// Every variable the providers read, cleared first so the machine's own
/// configuration cannot leak in.
const VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_EC2_METADATA_DISABLED",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCE_METADATA_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
];

fn set(vars: &[(&str, Option<&str>)]) {
    for (k, v) in vars {
        // SAFETY: called only between phases, when this test's thread and
        // the stand-in server's (which reads no variable) are the only
        // threads of the process.
        unsafe {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

/// Each phase in a runtime of its own, gone (with its threads) before the
/// variables change again.
fn phase<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The instant a token was signed at, from its `X-Amz-Date`.
fn signed_at(token: &str) -> SystemTime {
    let date = token
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Date="))
        .expect("an X-Amz-Date");
    let parsed = time_of(date);
    UNIX_EPOCH + Duration::from_secs(parsed)
}

/// `YYYYMMDDTHHMMSSZ` as seconds since the epoch (days from civil).
fn time_of(s: &str) -> u64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    let (hh, mm, ss) = (n(9, 11), n(11, 13), n(13, 15));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss) as u64
}

const CONTAINER_CREDS: &str = r#"{"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"container-secret","Token":"container-session","Expiration":"2099-01-01T00:00:00Z"}"#;
const IMDS_CREDS: &str = r#"{"Code":"Success","LastUpdated":"2026-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS","SecretAccessKey":"imds-secret","Token":"imds-session","Expiration":"2099-01-01T00:00:00Z"}"#;

/// One stand-in for every cloud's endpoints, told apart by path.
fn cloud(req: &Recorded) -> Answer {
    let ok = |body: &str| Answer::from((200, body.to_string()));
    let path = req.target.split('?').next().unwrap_or("");
    match (req.method.as_str(), path) {
        // EKS Pod Identity / ECS: the pod's token in Authorization.
        ("GET", "/v1/credentials") if req.header("authorization") == Some("pod-identity-token") => {
            ok(CONTAINER_CREDS)
        }
        // IMDSv2: a session token first, then the role and its credentials.
        ("PUT", "/latest/api/token") => Answer {
            status: 200,
            body: "imds-session-token".into(),
            headers: vec![("x-aws-ec2-metadata-token-ttl-seconds", "21600".into())],
        },
        ("GET", p)
            if p.starts_with("/latest/meta-data/iam/security-credentials/")
                && req.header("x-aws-ec2-metadata-token") == Some("imds-session-token") =>
        {
            match p.trim_start_matches("/latest/meta-data/iam/security-credentials/") {
                "" => ok("kb-role"),
                "kb-role" => ok(IMDS_CREDS),
                _ => (404, String::new()).into(),
            }
        }
        ("GET", "/computeMetadata/v1/instance/service-accounts/default/token")
            if req.header("metadata-flavor") == Some("Google")
                && req.query_value("scopes").as_deref()
                    == Some(
                        "https://www.googleapis.com/auth/sqlservice.login,\
                         https://www.googleapis.com/auth/alloydb.login",
                    ) =>
        {
            ok(r#"{"access_token":"ya29.gke","expires_in":3599}"#)
        }
        ("POST", "/tenant-1/oauth2/v2.0/token")
            if fleet_cloud::test_endpoint::form_value(&req.body, "scope").as_deref()
                == Some("https://ossrdbms-aad.database.windows.net/.default")
                && fleet_cloud::test_endpoint::form_value(&req.body, "client_assertion")
                    .as_deref()
                    == Some("aks-sa-token") =>
        {
            ok(r#"{"access_token":"eyJ.aks","expires_in":3599}"#)
        }
        _ => (404, String::new()).into(),
    }
}

#[test]
fn providers_found_from_the_process_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("pod-identity"), "pod-identity-token").unwrap();
    std::fs::write(path("aks-token"), "aks-sa-token").unwrap();

    // The stand-in, on a thread of its own for the whole test.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<Log>();
    std::thread::spawn(move || {
        phase(async move {
            tx.send(serve_std(listener, cloud)).unwrap();
            std::future::pending::<()>().await
        })
    });
    let log = rx.recv().unwrap();

    for k in VARS {
        set(&[(k, None)]);
    }
    let (home, no_file) = (path("home"), path("no-such-file"));
    set(&[
        ("HOME", Some(&home)),
        ("AWS_CONFIG_FILE", Some(&no_file)),
        ("AWS_SHARED_CREDENTIALS_FILE", Some(&no_file)),
    ]);

    // 1. Environment credentials, the region from AWS_REGION.
    set(&[
        ("AWS_ACCESS_KEY_ID", Some("AKIAENV")),
        ("AWS_SECRET_ACCESS_KEY", Some("env-secret")),
        ("AWS_SESSION_TOKEN", Some("env-session")),
        ("AWS_REGION", Some("eu-central-1")),
        ("AWS_EC2_METADATA_DISABLED", Some("true")),
    ]);
    phase(async {
        let id = DbIdentity::new(Method::AwsRdsIam { region: None }).unwrap();
        assert_eq!(id.method(), "aws-rds-iam");
        let token = id.password(HOST, 5432, "kb_reader").await.unwrap();
        let creds = AwsCredentials::new("AKIAENV", "env-secret", Some("env-session".into()));
        let want = rds_auth_token(
            &creds,
            "eu-central-1",
            HOST,
            5432,
            "kb_reader",
            signed_at(&token),
        )
        .unwrap();
        assert_eq!(token, want);
        // Cached per endpoint and user: the same token again, another for
        // another user.
        assert_eq!(id.password(HOST, 5432, "kb_reader").await.unwrap(), token);
        let other = id.password(HOST, 5432, "kb_writer").await.unwrap();
        assert!(other.contains("DBUser=kb_writer") && other != token);
        let s = id.status();
        assert_eq!((s.fetches, s.failures, s.last_fetch_ok), (2, 0, Some(true)));
        let left = s.expires_in.unwrap();
        assert!(
            left > Duration::from_secs(890) && left <= Duration::from_secs(900),
            "{left:?}"
        );
        assert!(!format!("{id:?}").contains("env-secret") && !format!("{id:?}").contains("X-Amz"));

        // The entry's region wins over the environment's.
        let id = DbIdentity::new(Method::AwsRdsIam {
            region: Some("us-west-2".into()),
        })
        .unwrap();
        let token = id.password(HOST, 5432, "kb_reader").await.unwrap();
        assert!(
            token.contains("%2Fus-west-2%2Frds-db%2Faws4_request"),
            "{token}"
        );
    });

    // 2. Container credentials (EKS Pod Identity), the region from
    //    AWS_DEFAULT_REGION.
    let full_uri = format!("{base}/v1/credentials");
    let token_file = path("pod-identity");
    set(&[
        ("AWS_ACCESS_KEY_ID", None),
        ("AWS_SECRET_ACCESS_KEY", None),
        ("AWS_SESSION_TOKEN", None),
        ("AWS_REGION", None),
        ("AWS_DEFAULT_REGION", Some("ap-northeast-1")),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", Some(&full_uri)),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", Some(&token_file)),
    ]);
    phase(async {
        let id = DbIdentity::new(Method::AwsRdsIam { region: None }).unwrap();
        let token = id.password(HOST, 5432, "kb_reader").await.unwrap();
        let creds = AwsCredentials::new(
            "ASIACONTAINER",
            "container-secret",
            Some("container-session".into()),
        );
        let want = rds_auth_token(
            &creds,
            "ap-northeast-1",
            HOST,
            5432,
            "kb_reader",
            signed_at(&token),
        )
        .unwrap();
        assert_eq!(token, want);
    });
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|r| r.target == "/v1/credentials")
    );

    // 3. Instance metadata (IMDSv2).
    let imds = base.clone();
    set(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", None),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", None),
        ("AWS_EC2_METADATA_DISABLED", None),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", Some(&imds)),
    ]);
    phase(async {
        let id = DbIdentity::new(Method::AwsRdsIam { region: None }).unwrap();
        let token = id.password(HOST, 5432, "kb_reader").await.unwrap();
        let creds = AwsCredentials::new("ASIAIMDS", "imds-secret", Some("imds-session".into()));
        let want = rds_auth_token(
            &creds,
            "ap-northeast-1",
            HOST,
            5432,
            "kb_reader",
            signed_at(&token),
        )
        .unwrap();
        assert_eq!(token, want);
    });
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|r| r.method == "PUT" && r.target == "/latest/api/token")
    );
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|r| r.target == "/latest/meta-data/iam/security-credentials/kb-role")
    );

    // 4. Google's metadata server (GKE Workload Identity sets
    //    GCE_METADATA_HOST as HOST:PORT) and Entra ID workload identity.
    let metadata_host = base.trim_start_matches("http://").to_string();
    let aks_token = path("aks-token");
    set(&[
        ("GCE_METADATA_HOST", Some(&metadata_host)),
        ("AZURE_FEDERATED_TOKEN_FILE", Some(&aks_token)),
        ("AZURE_CLIENT_ID", Some("client-1")),
        ("AZURE_TENANT_ID", Some("tenant-1")),
        ("AZURE_AUTHORITY_HOST", Some(&base)),
    ]);
    phase(async {
        let id = DbIdentity::new(Method::GcpIam).unwrap();
        assert_eq!(
            id.password("10.0.0.3", 5432, "kb@proj.iam").await.unwrap(),
            "ya29.gke"
        );
        let id = DbIdentity::new(Method::AzureEntra).unwrap();
        assert_eq!(
            id.password("kb.postgres.database.azure.com", 5432, "kb-identity")
                .await
                .unwrap(),
            "eyJ.aks"
        );
    });
}
