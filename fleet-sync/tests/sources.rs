//! `Source::parse` dispatch and a whole fetch through the public API (file://
//! and http:// only: S3 is covered by `s3_moto.rs`, which owns the process
//! environment the SDK reads, and GCS and Azure Blob by the scenario table
//! in tests/e2e/test_sync_stores.py, against fake-gcs-server and Azurite).

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

    let s = Source::parse("gs://my-bucket/prod/kb.db", &opts())
        .await
        .unwrap();
    assert!(matches!(s, Source::Gcs(_)));
    assert_eq!(s.describe(), "gs://my-bucket/prod/kb.db");

    // An Azure blob URL is an Azure source (not plain HTTPS); its SAS token
    // authorises the requests and is never shown.
    let s = Source::parse(
        "https://acct.blob.core.windows.net/kbs/prod/kb.db?sv=2021-12-02&sp=r&sig=s3cret%3D",
        &opts(),
    )
    .await
    .unwrap();
    assert!(matches!(s, Source::Azure(_)));
    assert_eq!(
        s.describe(),
        "https://acct.blob.core.windows.net/kbs/prod/kb.db"
    );

    for bad in [
        "az://kbs/kb.db?sig=s3cret",
        "https://acct.blob.core.windows.net/kbs?sig=s3cret",
        "gs://bucket-only",
        "ftp://x/y",
        "kb.db",
        "file://relative/kb.db",
        "s3://bucket-only",
    ] {
        match Source::parse(bad, &opts()).await {
            Err(SourceError::Permanent(m)) => assert!(!m.contains("s3cret"), "{m}"),
            Err(e) => panic!("{bad}: wrong class {e:?}"),
            Ok(_) => panic!("{bad} accepted"),
        }
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
