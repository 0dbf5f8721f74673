//! RDS auth tokens compared byte for byte with botocore's
//! `generate_db_auth_token` (run from the project's `.venv`, its clock
//! frozen at the same instant), and the checks on the inputs.

use super::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::UNIX_EPOCH;

/// botocore's own token for each case, one line each. The time is frozen
/// where botocore reads it (`botocore.auth.get_current_datetime`, what
/// `SigV4QueryAuth` stamps `X-Amz-Date` with); nothing else is replaced.
const BOTOCORE: &str = r#"
import datetime, json, sys
from unittest import mock
import botocore.auth, botocore.session

session = botocore.session.get_session()
for case in json.loads(sys.stdin.read()):
    at = datetime.datetime.fromtimestamp(case["time"], datetime.timezone.utc).replace(tzinfo=None)
    client = session.create_client(
        "rds",
        region_name=case["region"],
        aws_access_key_id=case["key"],
        aws_secret_access_key=case["secret"],
        aws_session_token=case["token"],
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: at):
        print(client.generate_db_auth_token(case["host"], case["port"], case["user"], Region=case["region"]))
"#;

struct Case {
    key: &'static str,
    secret: &'static str,
    token: Option<&'static str>,
    region: &'static str,
    host: &'static str,
    port: u16,
    user: &'static str,
    time: u64,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            key: "AKIDEXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token: None,
            region: "us-east-1",
            host: "mydb.123456789012.us-east-1.rds.amazonaws.com",
            port: 5432,
            user: "iam_user",
            time: 1_767_225_600,
        },
        Case {
            key: "ASIAXAMPLE0000000001",
            secret: "s3cret/with+slash=and+plus",
            token: Some("FwoGZXIvYXdzE/x+y==IQoJb3JpZ2luX2VjEHAaCXVzLWVhc3QtMSJH"),
            region: "eu-west-1",
            host: "MyDB.cluster-abc.eu-west-1.rds.amazonaws.com",
            port: 3306,
            user: "app user+1@example.com",
            time: 1_767_237_945,
        },
        Case {
            key: "AKIDEXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token: Some("session"),
            region: "ap-southeast-2",
            host: "db.example.internal",
            port: 443,
            user: "üser/ß",
            time: 1_800_000_000,
        },
        Case {
            key: "AKIDEXAMPLE",
            secret: "x",
            token: None,
            region: "us-gov-west-1",
            host: "10.0.0.5",
            port: 5432,
            user: "postgres",
            time: 1_700_000_001,
        },
    ]
}

fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

#[test]
fn tokens_match_botocore_byte_for_byte() {
    let python = venv_python();
    if !python.exists() {
        eprintln!(
            "SKIPPED tokens_match_botocore_byte_for_byte: no {} (scripts/test.sh creates it \
             and installs botocore from tests/requirements.txt)",
            python.display()
        );
        return;
    }
    let cases = cases();
    let input = serde_json::Value::Array(
        cases
            .iter()
            .map(|c| {
                serde_json::json!({
                    "key": c.key, "secret": c.secret, "token": c.token, "region": c.region,
                    "host": c.host, "port": c.port, "user": c.user, "time": c.time,
                })
            })
            .collect(),
    );
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(BOTOCORE)
        // No AWS_* variable, no ~/.aws of this machine: only the inputs.
        .env_clear()
        .env("HOME", env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore failed (is it installed? `.venv/bin/python -m pip install -r tests/requirements.txt`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(theirs.len(), cases.len());
    for (c, want) in cases.iter().zip(&theirs) {
        let creds = AwsCredentials::new(c.key, c.secret, c.token.map(str::to_string));
        let ours = rds_auth_token(
            &creds,
            c.region,
            c.host,
            c.port,
            c.user,
            UNIX_EPOCH + Duration::from_secs(c.time),
        )
        .unwrap();
        assert_eq!(
            &ours, want,
            "host {} port {} user {:?}",
            c.host, c.port, c.user
        );
    }
}

#[test]
fn token_shape() {
    let creds = AwsCredentials::new("AKIDEXAMPLE", "secret", Some("tok/en".into()));
    let t = rds_auth_token(
        &creds,
        "us-east-1",
        "db.example.com",
        5432,
        "alice",
        UNIX_EPOCH + Duration::from_secs(1_767_225_600),
    )
    .unwrap();
    assert!(t.starts_with("db.example.com:5432/?Action=connect&DBUser=alice&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok%2Fen&X-Amz-Signature="), "{t}");
    assert!(!t.contains("https://") && !t.contains("secret"));
}

#[test]
fn bad_inputs_are_permanent() {
    let creds = AwsCredentials::new("AKIDEXAMPLE", "s3cret", None);
    let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    for (host, region, user) in [
        ("db.example.com/x?y", "us-east-1", "u"),
        ("", "us-east-1", "u"),
        ("::1", "us-east-1", "u"),
        ("db", "US East", "u"),
        ("db", "us-east-1", ""),
    ] {
        let e = rds_auth_token(&creds, region, host, 5432, user, at).unwrap_err();
        assert!(
            !e.is_transient() && !e.to_string().contains("s3cret"),
            "{e}"
        );
    }
    assert!(rds_auth_token(&creds, "us-east-1", "[::1]", 5432, "u", at).is_ok());
    assert!(RdsIam::new(Some("not a region".into())).is_err());
    assert!(
        RdsIam::new(Some(" ".into())).is_ok(),
        "blank means the chain's"
    );
}

#[test]
fn debug_shows_no_secret() {
    let creds = AwsCredentials::new("AKIDEXAMPLE", "s3cret", Some("sessi0n".into()));
    let d = format!("{creds:?}");
    assert!(
        d.contains("AKIDEXAMPLE") && !d.contains("s3cret") && !d.contains("sessi0n"),
        "{d}"
    );
}
