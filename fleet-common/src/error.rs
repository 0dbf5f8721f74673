//! The error type of every parser and validator in this crate.

use std::path::PathBuf;

/// Why a file could not be parsed, validated or published.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not valid YAML, or its YAML does not have the expected shape.
    #[error("{file}: {message}")]
    Parse { file: &'static str, message: String },
    /// The file parsed but a value in it is not acceptable.
    #[error("{file}: {message}")]
    Invalid { file: &'static str, message: String },
    /// SQLite refused the knowledge base.
    #[error("kb.db: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The path names something other than a regular file (a FIFO, a
    /// device, a directory), once symlinks are followed.
    #[error("{}: is {what}, not a regular file", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    /// The file is over the size limit of its kind.
    #[error("{}: over the size limit of {max_bytes} bytes", path.display())]
    TooLarge { path: PathBuf, max_bytes: u64 },
    /// Work on the file was stopped before it finished: its deadline
    /// passed, a newer file replaced it, or the process is terminating
    /// ([`crate::deadline`]).
    #[error("gave up: {0}")]
    Interrupted(String),
    /// An I/O error on a named path.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(file: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            file,
            message: message.into(),
        }
    }

    pub(crate) fn parse(file: &'static str, err: impl std::fmt::Display) -> Self {
        Error::Parse {
            file,
            message: err.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
