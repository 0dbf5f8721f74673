//! Shared pieces of the benchmark binaries: the deterministic synthetic
//! corpus behind `gen-kb` ([`corpus`]) and the classification of MCP replies
//! that `loadgen` uses to count errors ([`reply`]), the relevance check of
//! search engines on a real corpus ([`relevance`]), and how every bench
//! binary exits ([`exit_with`]).

pub mod corpus;
pub mod relevance;
pub mod reply;

/// Finish a bench binary: print its error as every bench tool does and exit
/// 2, or exit 0.
pub fn exit_with(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
