//! Shared pieces of the benchmark binaries: the deterministic synthetic
//! corpus behind `gen-kb` ([`corpus`]) and the classification of MCP replies
//! that `loadgen` uses to count errors ([`reply`]).

pub mod corpus;
pub mod reply;
