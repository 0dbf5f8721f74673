//! The S3 source against a real S3 API: moto's server on 127.0.0.1.
//!
//! moto is found through `$MOTO_SERVER`, `<workspace>/.venv/bin/moto_server`
//! or `PATH` (install it with `.venv/bin/pip install -r tests/requirements.txt`);
//! without it this test fails rather than skipping. Everything runs in one
//! test function because the SDK is configured through the process
//! environment.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_sync::source::{Download, Fetch, Source, SourceError, SourceOptions, Validators};

/// Kills moto when dropped, even when the test panics.
struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let mut log = String::new();
            if let Ok(mut f) = std::fs::File::open(&self.log) {
                let _ = f.read_to_string(&mut log);
            }
            let tail: String = log
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("--- moto_server log (last lines) ---\n{tail}");
        }
    }
}

fn find_moto() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MOTO_SERVER={} does not exist", p.display());
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("moto_server");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "moto_server not found (set MOTO_SERVER, or install it: \
         .venv/bin/pip install 'moto[server]==5.2.5' in the workspace root)"
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn start_moto() -> Moto {
    let bin = find_moto();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("moto.log");
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("moto.err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let mut moto = Moto {
        child,
        port,
        log: dir.path().join("moto.err"),
        _dir: dir,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return moto;
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto_server exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {addr} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set_env(vars: &[(&str, &str)]) {
    for (k, v) in vars {
        // SAFETY: this binary's only test sets the environment while no
        // other thread of ours reads it (no SDK call is in flight).
        unsafe { std::env::set_var(k, v) };
    }
}

fn remove_env(vars: &[&str]) {
    for k in vars {
        // SAFETY: as in `set_env`.
        unsafe { std::env::remove_var(k) };
    }
}

async fn read_all(dl: &mut Download) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = dl.next_chunk().await.unwrap() {
        out.extend_from_slice(&c);
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

async fn changed(src: &Source, have: &Validators) -> Download {
    match src.fetch(have).await {
        Ok(Fetch::Changed(dl)) => dl,
        Ok(Fetch::NotModified) => panic!("{}: expected Changed, got NotModified", src.describe()),
        Err(e) => panic!("{}: expected Changed, got {e:?}", src.describe()),
    }
}

fn opts(timeout_secs: u64) -> SourceOptions {
    SourceOptions {
        timeout: Duration::from_secs(timeout_secs),
        s3_path_style: true,
    }
}

#[tokio::test]
async fn s3_source_against_moto() {
    let moto = start_moto();
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let home = tempfile::tempdir().unwrap();
    let no_file = home.path().join("none").display().to_string();
    // Everything the SDK needs comes from here: no profile files, no IMDS,
    // no proxy, nothing but 127.0.0.1.
    remove_env(&[
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL_S3",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]);
    set_env(&[
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", &no_file),
        ("AWS_SHARED_CREDENTIALS_FILE", &no_file),
        ("AWS_ENDPOINT_URL", &endpoint),
        ("NO_PROXY", "127.0.0.1,localhost"),
    ]);

    // The bucket, made with a plain SDK client configured the same way.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    assert_eq!(sdk.endpoint_url(), Some(endpoint.as_str()));
    let admin = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    admin
        .create_bucket()
        .bucket("fleet-bucket")
        .send()
        .await
        .expect("create bucket in moto");

    let src = Source::parse("s3://fleet-bucket/prod/dir/kb.db", &opts(10))
        .await
        .unwrap();
    assert_eq!(src.describe(), "s3://fleet-bucket/prod/dir/kb.db");
    let Source::S3(s3) = &src else {
        panic!("not an S3 source");
    };

    // Publish v1 (larger than one chunk) with put_file.
    let dir = tempfile::tempdir().unwrap();
    let v1: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let v1_path = dir.path().join("v1");
    std::fs::write(&v1_path, &v1).unwrap();
    s3.put_file(&v1_path, &sha256_hex(&v1)).await.unwrap();

    // Empty validators: a new version, the right bytes and metadata.
    let mut dl = changed(&src, &Validators::default()).await;
    assert_eq!(dl.sha256_meta.as_deref(), Some(sha256_hex(&v1).as_str()));
    assert_eq!(dl.size, Some(v1.len() as u64));
    assert!(dl.validators.etag.is_some(), "{:?}", dl.validators);
    assert!(dl.validators.last_modified.is_some(), "{:?}", dl.validators);
    assert!(read_all(&mut dl).await == v1, "v1 bytes differ");
    let have_v1 = dl.validators.clone();

    // Same validators: not modified (HEAD only).
    assert!(matches!(
        src.fetch(&have_v1).await.unwrap(),
        Fetch::NotModified
    ));

    // Overwrite: changed again, with the new metadata.
    let v2 = b"version two".to_vec();
    let v2_path = dir.path().join("v2");
    std::fs::write(&v2_path, &v2).unwrap();
    s3.put_file(&v2_path, &sha256_hex(&v2)).await.unwrap();
    let mut dl = changed(&src, &have_v1).await;
    assert_ne!(dl.validators.etag, have_v1.etag);
    assert_eq!(dl.sha256_meta.as_deref(), Some(sha256_hex(&v2).as_str()));
    assert_eq!(read_all(&mut dl).await, v2);
    let have_v2 = dl.validators.clone();
    assert!(matches!(
        src.fetch(&have_v2).await.unwrap(),
        Fetch::NotModified
    ));

    // An object with no sha256 metadata (not published by push).
    admin
        .put_object()
        .bucket("fleet-bucket")
        .key("plain.txt")
        .body(b"plain".to_vec().into())
        .send()
        .await
        .unwrap();
    let plain = Source::parse("s3://fleet-bucket/plain.txt", &opts(10))
        .await
        .unwrap();
    let mut dl = changed(&plain, &Validators::default()).await;
    assert_eq!(dl.sha256_meta, None);
    assert_eq!(read_all(&mut dl).await, b"plain");

    // Missing key, missing bucket: not found.
    let missing = Source::parse("s3://fleet-bucket/nope/kb.db", &opts(10))
        .await
        .unwrap();
    match missing.fetch(&Validators::default()).await {
        Err(SourceError::NotFound(msg)) => {
            assert!(msg.contains("s3://fleet-bucket/nope/kb.db"), "{msg}");
            assert!(!msg.contains("test"), "credentials in {msg}");
        }
        other => panic!("expected NotFound, got {:?}", other.err()),
    }
    let no_bucket = Source::parse("s3://no-such-bucket/kb.db", &opts(10))
        .await
        .unwrap();
    assert!(matches!(
        no_bucket.fetch(&Validators::default()).await,
        Err(SourceError::NotFound(_))
    ));

    // AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL: with the global one
    // pointing nowhere, a new client (new options, so not the cached one)
    // still reaches moto.
    let dead = format!("http://127.0.0.1:{}", free_port());
    set_env(&[
        ("AWS_ENDPOINT_URL", &dead),
        ("AWS_ENDPOINT_URL_S3", &endpoint),
    ]);
    let via_s3_var = Source::parse("s3://fleet-bucket/prod/dir/kb.db", &opts(11))
        .await
        .unwrap();
    let mut dl = changed(&via_s3_var, &Validators::default()).await;
    assert_eq!(read_all(&mut dl).await, v2);

    // Only the dead endpoint: a transient (connection) error.
    remove_env(&["AWS_ENDPOINT_URL_S3"]);
    let unreachable = Source::parse("s3://fleet-bucket/prod/dir/kb.db", &opts(12))
        .await
        .unwrap();
    match unreachable.fetch(&Validators::default()).await {
        Err(SourceError::Transient(msg)) => {
            assert!(msg.contains("s3://fleet-bucket/prod/dir/kb.db"), "{msg}");
        }
        other => panic!("expected Transient, got {:?}", other.err()),
    }

    // The cached client still talks to moto.
    assert!(matches!(
        src.fetch(&have_v2).await.unwrap(),
        Fetch::NotModified
    ));
    drop(moto);
}
