//! `Source::parse` dispatch and a whole fetch through the public API (file://
//! and http:// only: S3 is covered by `s3_moto.rs`, which owns the process
//! environment the SDK reads).

use std::time::Duration;

use fleet_sync::source::{Fetch, Source, SourceError, SourceOptions, Validators};

fn opts() -> SourceOptions {
    SourceOptions {
        timeout: Duration::from_secs(5),
        s3_path_style: false,
    }
}

#[tokio::test]
async fn dispatch_by_scheme() {
    let s = Source::parse("HTTPS://example.invalid/a/b?sig=secret", &opts())
        .await
        .unwrap();
    assert!(matches!(s, Source::Http(_)));
    assert_eq!(s.describe(), "https://example.invalid/a/b");

    let s = Source::parse("file:///data/kb.db", &opts()).await.unwrap();
    assert!(matches!(s, Source::File(_)));
    assert_eq!(s.describe(), "file:///data/kb.db");

    for bad in [
        "ftp://x/y",
        "kb.db",
        "file://relative/kb.db",
        "s3://bucket-only",
    ] {
        assert!(
            matches!(
                Source::parse(bad, &opts()).await,
                Err(SourceError::Permanent(_))
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.yaml");
    std::fs::write(&path, b"tokens: {}\n").unwrap();
    let url = format!("file://{}", path.display());
    let src = Source::parse(&url, &opts()).await.unwrap();

    let Fetch::Changed(mut dl) = src.fetch(&Validators::default()).await.unwrap() else {
        panic!("expected Changed");
    };
    let mut got = Vec::new();
    while let Some(c) = dl.next_chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, b"tokens: {}\n");
    assert_eq!(dl.size, Some(got.len() as u64));

    // The validators survive a round trip through the state file's format.
    let saved = serde_json::to_string(&dl.validators).unwrap();
    let have: Validators = serde_json::from_str(&saved).unwrap();
    assert!(matches!(
        src.fetch(&have).await.unwrap(),
        Fetch::NotModified
    ));

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        src.fetch(&have).await,
        Err(SourceError::NotFound(_))
    ));
}
