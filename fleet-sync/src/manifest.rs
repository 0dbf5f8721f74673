//! The sync manifest: which files to publish into which directory, from where.
//!
//! ```yaml
//! dest_dir: /data
//! max_bytes: 4GiB            # optional size limit per file (default 4 GiB)
//! files:
//!   - name: kb.db                       # path under dest_dir
//!     source: s3://bucket/prod/kb.db    # s3://, gs://, az://, https://, http://, file://
//!     kind: kb                          # kb | tokens | users | session-key | tools | raw (default from name)
//!     sha256: "..."                     # optional pin
//! ```
//! The same can be said with flags: `--dest DIR --file NAME=SOURCE ...`.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail, ensure};
use fleet_common::kind::FileKind;
use serde::Deserialize;

/// Default size limit of one file.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

#[derive(Debug, Clone)]
pub struct Manifest {
    pub dest_dir: PathBuf,
    pub files: Vec<FileSpec>,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Path under `dest_dir`.
    pub name: String,
    pub source: String,
    pub kind: FileKind,
    /// Pinned lower-case hex sha256, if any.
    pub sha256: Option<String>,
}

impl FileSpec {
    pub fn target(&self, dest_dir: &Path) -> PathBuf {
        dest_dir.join(&self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    dest_dir: PathBuf,
    #[serde(default)]
    max_bytes: Option<String>,
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    source: String,
    #[serde(default)]
    kind: Option<FileKind>,
    #[serde(default)]
    sha256: Option<String>,
}

impl Manifest {
    pub fn from_yaml(text: &str) -> anyhow::Result<Manifest> {
        let raw: RawManifest = fleet_common::yaml::from_str(text)
            .map_err(|e| anyhow::anyhow!("sync manifest: {e}"))?;
        let max_bytes = match raw.max_bytes {
            Some(s) => parse_size(&s)?,
            None => DEFAULT_MAX_BYTES,
        };
        let files = raw
            .files
            .into_iter()
            .map(|f| FileSpec {
                kind: f.kind.unwrap_or_else(|| FileKind::from_name(&f.name)),
                sha256: f.sha256.map(|s| s.trim().to_ascii_lowercase()),
                name: f.name,
                source: f.source,
            })
            .collect();
        let m = Manifest {
            dest_dir: raw.dest_dir,
            files,
            max_bytes,
        };
        m.validate()?;
        Ok(m)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading sync manifest {}", path.display()))?;
        Manifest::from_yaml(&text).with_context(|| format!("in {}", path.display()))
    }

    /// `--dest DIR --file NAME=SOURCE ...`
    pub fn from_flags(dest_dir: PathBuf, files: &[String]) -> anyhow::Result<Manifest> {
        let files = files
            .iter()
            .map(|f| {
                let (name, source) = f
                    .split_once('=')
                    .with_context(|| format!("--file {f:?}: expected NAME=SOURCE"))?;
                Ok(FileSpec {
                    name: name.trim().to_string(),
                    source: source.trim().to_string(),
                    kind: FileKind::from_name(name.trim()),
                    sha256: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let m = Manifest {
            dest_dir,
            files,
            max_bytes: DEFAULT_MAX_BYTES,
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.files.is_empty(), "no files to sync");
        let mut names = HashSet::new();
        for f in &self.files {
            let p = Path::new(&f.name);
            ensure!(
                !f.name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))),
                "file name {:?} must be a relative path inside dest_dir",
                f.name
            );
            let base = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            ensure!(
                !base.starts_with(fleet_common::publish::TEMP_PREFIX)
                    && base != crate::state::STATE_FILE,
                "file name {:?} is reserved",
                f.name
            );
            ensure!(names.insert(&f.name), "file {:?} is listed twice", f.name);
            if let Some(sha) = &f.sha256 {
                ensure!(
                    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                    "file {:?}: sha256 must be 64 hex digits",
                    f.name
                );
            }
            if !f.source.contains("://") {
                // Not quoted: a source URL may carry a signature.
                bail!(
                    "file {:?}: the source has no scheme (s3://, gs://, az://, https://, http://, file://)",
                    f.name
                );
            }
        }
        Ok(())
    }
}

/// `4GiB`, `100MB`, `1048576`.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .context("max_bytes: expected a number of bytes such as 4GiB, 100MB or 1048576")?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => bail!("max_bytes: unknown unit (B, KB, KiB, MB, MiB, GB, GiB)"),
    };
    n.checked_mul(mult).context("max_bytes is too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_manifest_with_defaults() {
        let m = Manifest::from_yaml(
            "dest_dir: /data\nmax_bytes: 100MiB\nfiles:\n  - name: kb.db\n    source: s3://b/k/kb.db\n  - name: tokens.yaml\n    source: https://h/t.yaml\n    sha256: ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789\n  - name: notes.bin\n    source: file:///x\n    kind: raw\n",
        )
        .unwrap();
        assert_eq!(m.max_bytes, 100 << 20);
        assert_eq!(m.files[0].kind, FileKind::Kb);
        assert_eq!(m.files[1].kind, FileKind::Tokens);
        assert_eq!(m.files[1].sha256.as_deref().map(str::len), Some(64));
        assert!(
            m.files[1]
                .sha256
                .as_ref()
                .unwrap()
                .chars()
                .all(|c| !c.is_ascii_uppercase())
        );
        assert_eq!(m.files[2].kind, FileKind::Raw);
    }

    #[test]
    fn flags_manifest() {
        let m = Manifest::from_flags(
            "/d".into(),
            &[
                "kb.db=s3://b/kb.db".into(),
                "session.key = file:///k".into(),
                "tools.yaml=s3://b/tools.yaml".into(),
            ],
        )
        .unwrap();
        assert_eq!(m.files[1].name, "session.key");
        assert_eq!(m.files[1].kind, FileKind::SessionKey);
        assert_eq!(m.files[2].kind, FileKind::Tools);
        assert!(Manifest::from_flags("/d".into(), &["kb.db".into()]).is_err());
    }

    #[test]
    fn bad_manifests_are_refused() {
        for (bad, why) in [
            ("dest_dir: /d\nfiles: []\n", "no files"),
            (
                "dest_dir: /d\nfiles:\n  - {name: ../x, source: file:///x}\n",
                "relative path",
            ),
            (
                "dest_dir: /d\nfiles:\n  - {name: /etc/x, source: file:///x}\n",
                "relative path",
            ),
            (
                "dest_dir: /d\nfiles:\n  - {name: a, source: file:///x}\n  - {name: a, source: file:///y}\n",
                "twice",
            ),
            (
                "dest_dir: /d\nfiles:\n  - {name: a, source: /x}\n",
                "no scheme",
            ),
            (
                "dest_dir: /d\nfiles:\n  - {name: a, source: file:///x, sha256: abc}\n",
                "64 hex",
            ),
            (
                "dest_dir: /d\nfiles:\n  - {name: a, source: file:///x, colour: red}\n",
                "unknown field",
            ),
            (
                "dest_dir: /d\nfiles:\n  - {name: .fleet-sync-state.json, source: file:///x}\n",
                "reserved",
            ),
        ] {
            let err = format!("{:#}", Manifest::from_yaml(bad).unwrap_err());
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert!(parse_size("12 parsecs").is_err());
    }
}
