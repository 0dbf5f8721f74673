//! What one file's sync cycle ends with: an [`Outcome`], or a
//! [`SyncError`] whose kind decides whether to retry and which exit status
//! a one-shot run ends with.

use crate::source::SourceError;

/// What a cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The source has the version already published; nothing transferred.
    Unchanged,
    /// A new version was downloaded but its content equals the published
    /// file's, so nothing was replaced.
    SameContent { bytes: u64 },
    /// A new version is published.
    Published { bytes: u64, sha256: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::SameContent { .. } => "same_content",
            Outcome::Published { .. } => "published",
        }
    }

    pub fn bytes(&self) -> u64 {
        match self {
            Outcome::Unchanged => 0,
            Outcome::SameContent { bytes } | Outcome::Published { bytes, .. } => *bytes,
        }
    }
}

/// Why a cycle failed; decides retries and exit codes.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source could not be read (retried; exit 1 when retries run out).
    #[error("fetch failed: {0}")]
    Fetch(#[from] SourceError),
    /// The file arrived but is not acceptable (never published; exit 3).
    #[error("verification failed: {0}")]
    Verify(String),
    /// The destination could not be written (retried: a full disk may
    /// clear).
    #[error("publish failed: {0}")]
    Local(String),
    /// The destination can never be written as configured: permission
    /// denied, a read-only filesystem, or a path that resolves outside the
    /// destination directory. Not retried; exit 2.
    #[error("cannot publish: {0}")]
    Denied(String),
}

impl SyncError {
    pub fn label(&self) -> &'static str {
        match self {
            SyncError::Fetch(SourceError::NotFound(_)) => "not_found",
            SyncError::Fetch(_) => "fetch_error",
            SyncError::Verify(_) => "verify_error",
            SyncError::Local(_) => "publish_error",
            SyncError::Denied(_) => "publish_denied",
        }
    }

    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SyncError::Fetch(SourceError::NotFound(_) | SourceError::Transient(_))
                | SyncError::Local(_)
        )
    }
}

/// `uid U, gid G` of this process.
pub fn whoami() -> String {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    format!("uid {uid}, gid {gid}")
}

/// A local error from publishing: permanent (with who we are, since the
/// usual cause is a volume owned by another user) or worth a retry.
pub(crate) fn local(err: impl std::fmt::Display, kind: Option<std::io::ErrorKind>) -> SyncError {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    match kind {
        Some(PermissionDenied | ReadOnlyFilesystem) => {
            SyncError::Denied(format!("{err} (running as {})", whoami()))
        }
        _ => SyncError::Local(err.to_string()),
    }
}

/// The I/O error kind behind a fleet-common error, if it is one.
pub(crate) fn io_kind(err: &fleet_common::Error) -> Option<std::io::ErrorKind> {
    match err {
        fleet_common::Error::Io { source, .. } => Some(source.kind()),
        _ => None,
    }
}
