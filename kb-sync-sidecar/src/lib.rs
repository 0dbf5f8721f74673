//! `kb-sync-sidecar`: keep the fleet's files current, forever.
//!
//! The loop ([`engine`]) re-fetches each file conditionally every interval
//! (with jitter), verifies and publishes new versions, and backs off on
//! errors without ever exiting because a source is down. [`http`] serves
//! `/healthz`, `/readyz` and `/metrics` ([`metrics`]); [`push`] is the CI
//! side that uploads a verified file.

pub mod engine;
pub mod http;
pub mod metrics;
pub mod push;
