//! `kb-sync-sidecar push`: verify a local file with the server's own checks,
//! then upload it with its sha256 in the object metadata (`sha256` under
//! S3's, GCS's or Azure's user metadata), which the fetching side checks
//! before it publishes. For CI. Destinations: `s3://`, `gs://`, `az://`,
//! `https://ACCOUNT.blob.core.windows.net/...` and `file://`.
//!
//! Exit statuses ([`Exit`]): 0 uploaded, 1 upload failed, 2 usage or a bad
//! destination, 3 verification failed (nothing uploaded).

use std::path::{Path, PathBuf};

use fleet_common::exit::Exit;
use fleet_common::kind::FileKind;
use fleet_sync::source::{Source, SourceError, SourceOptions};

/// One `LOCAL=DEST_URL` pair.
pub struct PushItem {
    pub local: PathBuf,
    pub dest: String,
}

pub fn parse_items(args: &[String]) -> anyhow::Result<Vec<PushItem>> {
    anyhow::ensure!(!args.is_empty(), "give at least one --file LOCAL=DEST_URL");
    args.iter()
        .map(|a| {
            let (local, dest) = a
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--file {a:?}: expected LOCAL=DEST_URL"))?;
            Ok(PushItem {
                local: PathBuf::from(local.trim()),
                dest: dest.trim().to_string(),
            })
        })
        .collect()
}

/// Verify then upload every item.
pub async fn push(items: &[PushItem], opts: &SourceOptions) -> Exit {
    // Verify everything first: a bad file stops the push before any upload.
    let mut verified = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = FileKind::from_name(&name);
        let local = item.local.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let summary = fleet_common::kind::verify(
                kind,
                &local,
                &fleet_common::deadline::Deadline::none(),
            )?;
            let sha = fleet_common::sha256_file(&local)?;
            anyhow::Ok((summary, sha))
        })
        .await;
        match checked {
            Ok(Ok((summary, sha))) => {
                tracing::info!(file = %item.local.display(), kind = kind.as_str(), %summary, "verified");
                verified.push(sha);
            }
            Ok(Err(err)) => {
                tracing::error!(file = %item.local.display(), error = %format!("{err:#}"), "verification failed; nothing uploaded");
                return Exit::Invalid;
            }
            Err(err) => {
                tracing::error!(error = %err, "verification task failed");
                return Exit::Failed;
            }
        }
    }
    for (item, sha) in items.iter().zip(verified) {
        let dest = match Source::parse(&item.dest, opts).await {
            Ok(d) => d,
            Err(e) => {
                // The error names the destination without its credentials.
                tracing::error!(error = %e, "bad destination");
                return Exit::Config;
            }
        };
        let shown = dest.describe();
        let result = match &dest {
            Source::File(f) => copy_to_path(&item.local, f.path()),
            _ => dest.put_file(&item.local, &sha).await,
        };
        match result {
            Ok(()) => {
                tracing::info!(file = %item.local.display(), dest = %shown, sha256 = %sha, "uploaded")
            }
            Err(err @ SourceError::Permanent(_)) if matches!(dest, Source::Http(_)) => {
                tracing::error!(file = %item.local.display(), error = %err, "bad destination");
                return Exit::Config;
            }
            Err(err) => {
                tracing::error!(file = %item.local.display(), dest = %shown, error = %err, "upload failed");
                return Exit::Failed;
            }
        }
    }
    Exit::Ok
}

fn copy_to_path(local: &Path, dest: &Path) -> Result<(), SourceError> {
    let bytes = std::fs::read(local)
        .map_err(|e| SourceError::Permanent(format!("{}: {e}", local.display())))?;
    fleet_common::publish::write_atomic(dest, &bytes, false)
        .map_err(|e| SourceError::Transient(e.to_string()))
}
