//! One file's sync cycle: conditional fetch, verify, publish.
//!
//! The body is streamed into a temporary file in the destination directory
//! while it is hashed and bounded by the size limit. The complete file is
//! then checked: its length against what the source announced (a truncated
//! download is a fetch failure, retried), its sha256 against the manifest's
//! pin and the publisher's metadata, and its content with the parser the
//! server itself loads it with; a KB's search index is prepared beside it
//! (`fleet_common::kb_index::cache`). Only then is it renamed over the target. A
//! cycle abandoned halfway (an error, or SIGTERM dropping the future) drops
//! the temporary file, so nothing half-written is ever visible.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use fleet_common::deadline::Deadline;
use fleet_common::kb_index;
use fleet_common::kind::FileKind;
use sha2::{Digest, Sha256};

use crate::manifest::{FileSpec, Manifest};
use crate::progress::Progress;
use crate::source::{Fetch, Source, SourceError, SourceOptions, Validators};
use fleet_common::identity::Identity;
use fleet_common::published::published_key;

use crate::dest::{check_inside, prepare_dir};
pub use crate::outcome::{Outcome, SyncError};
use crate::outcome::{io_kind, local, whoami};
use crate::state::{Record, State};

/// The last version a source offered that failed verification: it is not
/// downloaded again until the source has another.
#[derive(Debug, Clone)]
struct Rejected {
    validators: Validators,
    sha256: Option<String>,
    error: String,
}

/// A cycle's result and how many body bytes it transferred.
#[derive(Debug)]
pub struct Attempt {
    pub result: Result<Outcome, SyncError>,
    pub bytes: u64,
}

/// The files of one manifest, their sources and the publish state.
pub struct Syncer {
    pub dest_dir: PathBuf,
    /// `dest_dir` with every symlink resolved: what published paths must
    /// stay inside.
    dest_real: PathBuf,
    max_bytes: u64,
    files: Vec<(FileSpec, Source)>,
    rejected: Vec<Option<Rejected>>,
    state: State,
    /// How long verifying one fetched file (and preparing a KB's search
    /// index) may take (`--verify-timeout`); past it, the file is refused.
    pub verify_timeout: Duration,
    /// When the whole run must end (`kb-init --timeout`): no verification
    /// runs past it either.
    pub until: Deadline,
}

/// `--verify-timeout`'s default.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl Syncer {
    /// Prepare the destination (created if missing, checked writable and
    /// free of symlinks that lead out of it, leftovers of a killed run
    /// removed) and parse every source.
    pub async fn new(manifest: &Manifest, opts: &SourceOptions) -> anyhow::Result<Syncer> {
        std::fs::create_dir_all(&manifest.dest_dir).map_err(|e| {
            anyhow::anyhow!(
                "creating {}: {e} (running as {})",
                manifest.dest_dir.display(),
                whoami()
            )
        })?;
        let dest_real = std::fs::canonicalize(&manifest.dest_dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", manifest.dest_dir.display()))?;
        let mut dirs: Vec<PathBuf> = manifest
            .files
            .iter()
            .filter_map(|f| f.target(&manifest.dest_dir).parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            prepare_dir(&dest_real, &dir)?;
            let removed = fleet_common::publish::clean_stale_temps(&dir)?
                + kb_index::cache::clean_temps(&dir.join(kb_index::cache::PUBLISHED_DIR))?;
            if removed > 0 {
                tracing::info!(dir = %dir.display(), removed, "removed temporary files left by an interrupted run");
            }
        }
        let mut files = Vec::with_capacity(manifest.files.len());
        for spec in &manifest.files {
            let source = Source::parse(&spec.source, opts)
                .await
                .map_err(|e| anyhow::anyhow!("file {:?}: {e}", spec.name))?;
            files.push((spec.clone(), source));
        }
        Ok(Syncer {
            dest_dir: manifest.dest_dir.clone(),
            dest_real,
            max_bytes: manifest.max_bytes,
            rejected: vec![None; files.len()],
            files,
            state: State::load(&manifest.dest_dir),
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
            until: Deadline::none(),
        })
    }

    pub fn specs(&self) -> impl Iterator<Item = &FileSpec> {
        self.files.iter().map(|(s, _)| s)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether file `i` has a published version that this state vouches for
    /// or that at least exists.
    pub fn is_published(&self, i: usize) -> bool {
        self.files
            .get(i)
            .is_some_and(|(spec, _)| spec.target(&self.dest_dir).exists())
    }

    /// Run one cycle for file `i`.
    pub async fn sync_file(&mut self, i: usize, progress: &dyn Progress) -> Attempt {
        let Some((spec, source)) = self.files.get(i) else {
            return Attempt {
                result: Err(SyncError::Local(format!("no file #{i}"))),
                bytes: 0,
            };
        };
        let target = spec.target(&self.dest_dir);
        // Checked every cycle: a symlink made in the shared directory since
        // start-up must not lead a publication out of it either.
        if let Some(dir) = target.parent()
            && let Err(err) = check_inside(&self.dest_real, dir)
        {
            return Attempt {
                result: Err(err),
                bytes: 0,
            };
        }
        // Records name the source as `describe` shows it: no signature or
        // key ever lands in the state file, and a rotated SAS token does not
        // make the published version unknown.
        let source_id = source.describe();
        let published = self.state.current(&spec.name, &source_id, &target).cloned();
        let mut bytes = 0u64;
        let rejected = &mut self.rejected[i];
        let limits = Limits {
            verify: self.verify_timeout,
            until: &self.until,
        };
        let result = fetch_verify_publish(
            spec,
            source,
            &target,
            published.as_ref(),
            rejected,
            self.max_bytes,
            progress,
            &mut bytes,
            &limits,
        )
        .await;
        if result.is_ok() {
            *rejected = None;
        }
        let result = result.map(|(outcome, version)| {
            if let Some(v) = version
                && let Some(id) = v.identity
            {
                let record = Record {
                    source: source_id,
                    validators: v.validators,
                    sha256: v.sha256,
                    size: id.size,
                    identity: published_key(&id),
                };
                self.state.set(&spec.name, record);
                self.state.save();
                if spec.kind == FileKind::Kb {
                    // Packs of KBs no longer published go; a server still
                    // reading one keeps its mapping.
                    let dir = kb_index::cache::published_dir(&target);
                    if let Err(e) = kb_index::cache::remove_others(&dir, &self.state.sha256s()) {
                        tracing::warn!(dir = %dir.display(), error = %e, "could not remove old search index packs");
                    }
                }
            }
            outcome
        });
        Attempt { result, bytes }
    }
}

/// Make the search index pack of the KB published at `target` (content
/// `sha256`) if it is missing, e.g. after an upgrade from a release that
/// made none. Best effort: a server without a pack makes its own.
async fn ensure_index(target: &Path, sha256: &str, deadline: &Deadline) {
    let dir = kb_index::cache::published_dir(target);
    if dir.join(kb_index::cache::file_name(sha256)).exists() {
        return;
    }
    let (target, sha, deadline) = (target.to_path_buf(), sha256.to_string(), deadline.clone());
    let made = tokio::task::spawn_blocking(move || {
        kb_index::cache::prepare_for_publish(&target, &sha, &target, &deadline)
    })
    .await;
    match made {
        Ok(Ok(p)) => {
            tracing::info!(pack = %p.path.display(), "made the search index of the published KB")
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not make the search index of the published KB")
        }
        Err(e) => tracing::warn!(error = %e, "could not make the search index of the published KB"),
    }
}

/// How long a cycle's verification may take: `verify` from its start (after
/// the download, which the request timeout bounds), never past `until`.
struct Limits<'a> {
    verify: Duration,
    until: &'a Deadline,
}

impl Limits<'_> {
    /// The deadline of a verification starting now.
    fn start(&self) -> Deadline {
        Deadline::after(self.verify, "--verify-timeout").min(self.until)
    }
}

/// The version a cycle ended with, to remember for the next one.
struct Version {
    validators: Validators,
    sha256: String,
    /// The published file's identity when it was known to hold `sha256`
    /// (taken before the rename, which keeps it), or `None` if that is not
    /// certain; only then is no record written.
    identity: Option<Identity>,
}

#[allow(clippy::too_many_arguments)]
async fn fetch_verify_publish(
    spec: &FileSpec,
    source: &Source,
    target: &Path,
    published: Option<&Record>,
    rejected: &mut Option<Rejected>,
    max_bytes: u64,
    progress: &dyn Progress,
    bytes: &mut u64,
    limits: &Limits<'_>,
) -> Result<(Outcome, Option<Version>), SyncError> {
    // After a rejection, ask for anything but the rejected version: an
    // unchanged source then costs no body, as when nothing is wrong.
    let have = match rejected.as_ref() {
        Some(r) if !r.validators.is_empty() => r.validators.clone(),
        _ => published.map(|r| r.validators.clone()).unwrap_or_default(),
    };
    let dl = match source.fetch(&have).await? {
        Fetch::NotModified => {
            return match rejected.as_ref() {
                Some(r) => Err(SyncError::Verify(format!(
                    "{} (the source still has the rejected version; not downloaded again)",
                    r.error
                ))),
                None => {
                    if let (FileKind::Kb, Some(record)) = (spec.kind, published) {
                        ensure_index(target, &record.sha256, &limits.start()).await;
                    }
                    Ok((Outcome::Unchanged, None))
                }
            };
        }
        Fetch::Changed(dl) => dl,
    };
    let validators = dl.validators.clone();
    let mut sha_seen = None;
    let result = verify_and_publish(
        spec,
        dl,
        target,
        published,
        rejected.as_ref(),
        max_bytes,
        progress,
        bytes,
        &mut sha_seen,
        limits,
    )
    .await;
    let offered_again = sha_seen.is_some()
        && rejected.as_ref().and_then(|r| r.sha256.as_ref()) == sha_seen.as_ref();
    if let Err(SyncError::Verify(error)) = &result
        && !offered_again
    {
        *rejected = Some(Rejected {
            validators,
            sha256: sha_seen,
            error: error.clone(),
        });
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn verify_and_publish(
    spec: &FileSpec,
    mut dl: crate::source::Download,
    target: &Path,
    published: Option<&Record>,
    rejected: Option<&Rejected>,
    max_bytes: u64,
    progress: &dyn Progress,
    bytes: &mut u64,
    sha_seen: &mut Option<String>,
    limits: &Limits<'_>,
) -> Result<(Outcome, Option<Version>), SyncError> {
    if let Some(size) = dl.size
        && size > max_bytes
    {
        return Err(SyncError::Verify(format!(
            "{size} bytes is over the size limit of {max_bytes}"
        )));
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut tmp = fleet_common::publish::temp_file_in(dir).map_err(|e| {
        let kind = io_kind(&e);
        local(e, kind)
    })?;
    let mut hasher = Sha256::new();
    progress.begin(&spec.name, dl.size);
    let streamed: Result<(), SyncError> = async {
        while let Some(chunk) = dl.next_chunk().await? {
            *bytes += chunk.len() as u64;
            if *bytes > max_bytes {
                return Err(SyncError::Verify(format!(
                    "over the size limit of {max_bytes} bytes"
                )));
            }
            hasher.update(&chunk);
            tmp.write_all(&chunk).map_err(|e| {
                let kind = e.kind();
                local(format!("{}: {e}", dir.display()), Some(kind))
            })?;
            progress.advance(chunk.len() as u64);
        }
        Ok(())
    }
    .await;
    progress.end();
    streamed?;
    if let Some(size) = dl.size
        && *bytes != size
    {
        return Err(SyncError::Fetch(SourceError::Transient(format!(
            "download cut short: {bytes} of {size} bytes"
        ))));
    }
    let sha = hex::encode(hasher.finalize());
    *sha_seen = Some(sha.clone());
    if let Some(r) = rejected
        && r.sha256.as_deref() == Some(sha.as_str())
    {
        // A source without validators offered the rejected bytes again.
        return Err(SyncError::Verify(format!(
            "{} (the source still has the rejected version)",
            r.error
        )));
    }
    if let Some(pin) = &spec.sha256
        && *pin != sha
    {
        return Err(SyncError::Verify(format!(
            "sha256 {sha} does not match the pinned {pin}"
        )));
    }
    if let Some(meta) = &dl.sha256_meta
        && !meta.eq_ignore_ascii_case(&sha)
    {
        return Err(SyncError::Verify(format!(
            "sha256 {sha} does not match the {meta} the publisher recorded"
        )));
    }
    let kind = spec.kind;
    let target_owned = target.to_path_buf();
    // The record that vouches for the published file knows its sha256; only
    // without one is the published file read again to compare. Returns the
    // identity the file had while known to be the same, if it is.
    let same_as_published = {
        let sha = sha.clone();
        let t = target_owned.clone();
        let known = published.map(|r| r.sha256.clone());
        move || {
            let before = Identity::of(&t)?;
            let same = match known {
                Some(k) => k == sha,
                None => {
                    fleet_common::read::sha256_capped(&t, kind.max_bytes()).is_ok_and(|s| s == sha)
                }
            };
            (same && Identity::of(&t) == Some(before)).then_some(before)
        }
    };
    let total = *bytes;
    let validators = dl.validators.clone();
    let published_sha = sha.clone();
    let deadline = limits.start();
    let (outcome, identity) = tokio::task::spawn_blocking(move || -> Result<_, SyncError> {
        tmp.as_file().sync_all().map_err(|e| SyncError::Local(e.to_string()))?;
        let summary = fleet_common::kind::verify(kind, tmp.path(), &deadline).map_err(|e| SyncError::Verify(e.to_string()))?;
        if kind == FileKind::Kb {
            // The search index pack goes in first, so no server ever sees
            // this KB without it; an index that does not open is refused.
            let pack = kb_index::cache::prepare_for_publish(tmp.path(), &published_sha, &target_owned, &deadline)
                .map_err(|e| match e {
                    fleet_common::Error::Io { .. } => SyncError::Local(e.to_string()),
                    e => SyncError::Verify(e.to_string()),
                })?;
            if let Some(origin) = pack.made {
                tracing::info!(pack = %pack.path.display(), index = origin.as_str(), "search index ready");
            }
        }
        if let Some(id) = same_as_published() {
            return Ok((Outcome::SameContent { bytes: total }, Some(id)));
        }
        // What was verified, as it will be after the rename.
        let id = Identity::of(tmp.path());
        fleet_common::publish::publish(tmp, &target_owned, kind.is_secret()).map_err(|e| {
            let kind = io_kind(&e);
            local(e, kind)
        })?;
        tracing::info!(file = %target_owned.display(), %summary, sha256 = %&published_sha[..12], bytes = total, "published");
        Ok((Outcome::Published { bytes: total, sha256: published_sha }, id))
    })
    .await
    .map_err(|e| SyncError::Local(e.to_string()))??;
    Ok((
        outcome,
        Some(Version {
            validators,
            sha256: sha,
            identity,
        }),
    ))
}
