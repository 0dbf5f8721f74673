//! How the fleet's programs end: one exit status per kind of outcome, with
//! the same number in `kb-init`, `kb-sync-sidecar --once` and `push`, and
//! `mcp-server`'s commands. The contract (docs/sync.md, the README) is
//! written against these four.

use std::process::ExitCode;

/// The exit status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything was done.
    Ok = 0,
    /// Something outside could not be reached in time: a source after its
    /// retries, a store on upload, a signal before the end; or a check that
    /// found a problem (`mcp-server check`).
    Failed = 1,
    /// Usage or configuration error, or a local condition that no retry
    /// fixes: a destination that cannot be written, a path that leads out
    /// of it.
    Config = 2,
    /// A file failed verification; it was not published or uploaded.
    Invalid = 3,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The worse of two outcomes, for a run over several files: a file that
    /// failed verification outranks one that could not be fetched.
    pub fn worst(self, other: Exit) -> Exit {
        fn rank(e: Exit) -> u8 {
            match e {
                Exit::Ok => 0,
                Exit::Failed => 1,
                Exit::Invalid => 2,
                Exit::Config => 3,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_order() {
        assert_eq!(
            [Exit::Ok, Exit::Failed, Exit::Config, Exit::Invalid].map(Exit::code),
            [0, 1, 2, 3]
        );
        assert_eq!(Exit::Failed.worst(Exit::Invalid), Exit::Invalid);
        assert_eq!(Exit::Invalid.worst(Exit::Failed), Exit::Invalid);
        assert_eq!(Exit::Ok.worst(Exit::Failed), Exit::Failed);
        assert_eq!(Exit::Invalid.worst(Exit::Config), Exit::Config);
    }
}
