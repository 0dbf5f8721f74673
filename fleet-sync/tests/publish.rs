//! Publishing through the public API with `file://` sources: what may and
//! may not reach the destination directory.

use std::path::Path;
use std::time::Duration;

use fleet_sync::manifest::Manifest;
use fleet_sync::progress::Quiet;
use fleet_sync::source::SourceOptions;
use fleet_sync::sync::{Outcome, SyncError, Syncer};

fn opts() -> SourceOptions {
    SourceOptions {
        timeout: Duration::from_secs(5),
        s3_path_style: false,
    }
}

fn manifest(dest: &Path, files: &[(&str, &Path)]) -> Manifest {
    let files: Vec<String> = files
        .iter()
        .map(|(name, src)| format!("{name}=file://{}", src.display()))
        .collect();
    Manifest::from_flags(dest.to_path_buf(), &files).unwrap()
}

const TOKENS: &str =
    "tokens:\n  t:\n    hash: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n";

#[tokio::test]
async fn a_symlinked_subdirectory_cannot_lead_a_file_out_of_the_destination() {
    let root = tempfile::tempdir().unwrap();
    let (dest, outside, src) = (
        root.path().join("dest"),
        root.path().join("outside"),
        root.path().join("src.yaml"),
    );
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(&src, TOKENS).unwrap();
    std::os::unix::fs::symlink("../outside", dest.join("sub")).unwrap();

    // Refused at start-up, naming both paths; nothing written outside.
    let m = manifest(&dest, &[("sub/evil.yaml", &src)]);
    let err = format!("{:#}", Syncer::new(&m, &opts()).await.err().unwrap());
    assert!(err.contains("outside the destination"), "{err}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    // A link swapped in after start-up is refused at publication.
    std::fs::remove_file(dest.join("sub")).unwrap();
    std::fs::create_dir(dest.join("sub")).unwrap();
    let mut syncer = Syncer::new(&m, &opts()).await.unwrap();
    std::fs::remove_dir(dest.join("sub")).unwrap();
    std::os::unix::fs::symlink("../outside", dest.join("sub")).unwrap();
    let attempt = syncer.sync_file(0, &Quiet).await;
    assert!(
        matches!(attempt.result, Err(SyncError::Denied(_))),
        "{:?}",
        attempt.result
    );
    assert!(!attempt.result.unwrap_err().is_retryable());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    // A real subdirectory is fine.
    std::fs::remove_file(dest.join("sub")).unwrap();
    let m = manifest(&dest, &[("sub/tokens.yaml", &src)]);
    let mut syncer = Syncer::new(&m, &opts()).await.unwrap();
    let attempt = syncer.sync_file(0, &Quiet).await;
    assert!(matches!(attempt.result, Ok(Outcome::Published { .. })));
    assert!(dest.join("sub/tokens.yaml").is_file());
}

#[tokio::test]
async fn a_rejected_version_is_not_downloaded_again_until_the_source_changes() {
    let root = tempfile::tempdir().unwrap();
    let (dest, src) = (root.path().join("dest"), root.path().join("tokens.yaml"));
    std::fs::write(&src, "tokens:\n  t:\n    hash: not-a-hash\n").unwrap();
    let m = manifest(&dest, &[("tokens.yaml", &src)]);
    let mut syncer = Syncer::new(&m, &opts()).await.unwrap();

    let first = syncer.sync_file(0, &Quiet).await;
    assert!(matches!(first.result, Err(SyncError::Verify(_))));
    assert!(first.bytes > 0, "the first look downloads it");
    for _ in 0..3 {
        let again = syncer.sync_file(0, &Quiet).await;
        let err = again.result.unwrap_err().to_string();
        assert!(err.contains("still has the rejected version"), "{err}");
        assert!(
            err.contains("64 hex digits"),
            "the first reason is kept: {err}"
        );
        assert_eq!(again.bytes, 0, "no download of what was rejected");
    }
    assert!(!dest.join("tokens.yaml").exists(), "never published");

    // The source changes: downloaded, verified, published.
    std::fs::write(&src, TOKENS).unwrap();
    let fixed = syncer.sync_file(0, &Quiet).await;
    assert!(
        matches!(fixed.result, Ok(Outcome::Published { .. })),
        "{:?}",
        fixed.result
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("tokens.yaml")).unwrap(),
        TOKENS
    );
    // And after a success, an unchanged source is simply unchanged.
    let same = syncer.sync_file(0, &Quiet).await;
    assert!(matches!(same.result, Ok(Outcome::Unchanged)));
}

#[tokio::test]
async fn an_empty_or_truncated_tokens_file_is_never_published() {
    let root = tempfile::tempdir().unwrap();
    let (dest, src) = (root.path().join("dest"), root.path().join("tokens.yaml"));
    std::fs::write(&src, TOKENS).unwrap();
    let m = manifest(&dest, &[("tokens.yaml", &src)]);
    let mut syncer = Syncer::new(&m, &opts()).await.unwrap();
    assert!(syncer.sync_file(0, &Quiet).await.result.is_ok());
    for truncated in ["", "tokens:\n"] {
        std::fs::write(&src, truncated).unwrap();
        let attempt = syncer.sync_file(0, &Quiet).await;
        assert!(matches!(attempt.result, Err(SyncError::Verify(_))));
        assert_eq!(
            std::fs::read_to_string(dest.join("tokens.yaml")).unwrap(),
            TOKENS
        );
    }
}
