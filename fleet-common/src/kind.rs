//! The kinds of file the fleet publishes, and the one check each must pass.
//!
//! `kb-init` and `kb-sync-sidecar` call [`verify`] before publishing; the
//! server loads files through the same parsers, so the two cannot disagree.

use std::path::Path;

use crate::Result;

/// What a published file is, which decides how it is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Kb,
    Tokens,
    Users,
    SessionKey,
    /// `tools.yaml`: curated tools, prompts and built-in switches.
    Tools,
    /// Published as is; only a pinned sha256 is checked.
    Raw,
}

impl FileKind {
    /// The kind a file name implies (`kb.db` → kb, `tokens.yaml` → tokens, ...).
    pub fn from_name(name: &str) -> FileKind {
        let base = Path::new(name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(name);
        match base {
            b if b.ends_with(".db") || b.ends_with(".sqlite") => FileKind::Kb,
            "tokens.yaml" | "tokens.yml" => FileKind::Tokens,
            "users.yaml" | "users.yml" => FileKind::Users,
            "session.key" => FileKind::SessionKey,
            "tools.yaml" | "tools.yml" => FileKind::Tools,
            _ => FileKind::Raw,
        }
    }

    /// Whether the file holds a secret, and so is published readable by
    /// owner and group only.
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            FileKind::SessionKey | FileKind::Tokens | FileKind::Users
        )
    }

    /// The largest file of this kind that is read or published, in bytes.
    /// Auth files of this size hold hundreds of thousands of entries; a
    /// larger one is a mistake (or an attack) that would cost every instance
    /// its memory.
    pub fn max_bytes(self) -> u64 {
        match self {
            FileKind::Tokens | FileKind::Users => 32 << 20,
            FileKind::SessionKey => 64 << 10,
            // Thousands of tools with long statements and prompts.
            FileKind::Tools => 4 << 20,
            FileKind::Kb => 64 << 30,
            FileKind::Raw => u64::MAX,
        }
    }

    /// The content of the regular file at `path`, refused if it is not a
    /// regular file or is over [`FileKind::max_bytes`].
    pub fn read(self, path: &Path) -> Result<Vec<u8>> {
        crate::read::read_capped(path, self.max_bytes())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Kb => "kb",
            FileKind::Tokens => "tokens",
            FileKind::Users => "users",
            FileKind::SessionKey => "session-key",
            FileKind::Tools => "tools",
            FileKind::Raw => "raw",
        }
    }
}

impl std::str::FromStr for FileKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "kb" => FileKind::Kb,
            "tokens" => FileKind::Tokens,
            "users" => FileKind::Users,
            "session-key" => FileKind::SessionKey,
            "tools" => FileKind::Tools,
            "raw" => FileKind::Raw,
            other => {
                return Err(format!(
                    "unknown kind {other:?} (kb, tokens, users, session-key, tools, raw)"
                ));
            }
        })
    }
}

/// Verify the file at `path` as `kind`; returns a one-line summary such as
/// `"3 tokens"` for logs. A pinned sha256 is checked by the caller, which
/// hashes while it downloads. A KB's check gives up once `deadline` passes
/// (the YAML files' are bounded: their nesting is checked before they are
/// parsed, see [`crate::yaml`]).
pub fn verify(kind: FileKind, path: &Path, deadline: &crate::deadline::Deadline) -> Result<String> {
    let read = || kind.read(path);
    Ok(match kind {
        FileKind::Kb => {
            // Not a FIFO or a device, and within the limit, before SQLite
            // opens it.
            drop(crate::read::open_regular(path, kind.max_bytes())?);
            let info = crate::kb_file::verify(path, deadline)?;
            format!("{} chunks", info.chunk_count)
        }
        FileKind::Tokens => format!("{} tokens", crate::tokens::parse(&read()?)?.len()),
        FileKind::Users => format!("{} users", crate::users::parse(&read()?)?.len()),
        FileKind::SessionKey => format!("{} keys", crate::session_key::parse(&read()?)?.len()),
        FileKind::Tools => crate::tools_file::parse(&read()?)?.summary(),
        FileKind::Raw => "raw file".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_name() {
        assert_eq!(FileKind::from_name("kb.db"), FileKind::Kb);
        assert_eq!(FileKind::from_name("sub/tokens.yaml"), FileKind::Tokens);
        assert_eq!(FileKind::from_name("users.yml"), FileKind::Users);
        assert_eq!(FileKind::from_name("session.key"), FileKind::SessionKey);
        assert_eq!(FileKind::from_name("conf/tools.yaml"), FileKind::Tools);
        assert!(!FileKind::Tools.is_secret());
        assert_eq!("tools".parse::<FileKind>(), Ok(FileKind::Tools));
        assert_eq!(FileKind::from_name("notes.txt"), FileKind::Raw);
        assert_eq!("session-key".parse::<FileKind>(), Ok(FileKind::SessionKey));
        assert!("nope".parse::<FileKind>().is_err());
    }
}
