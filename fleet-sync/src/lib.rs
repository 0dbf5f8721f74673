//! `fleet-sync`: fetching the fleet's files from where they are kept and
//! publishing them into a shared directory, for `kb-init` and
//! `kb-sync-sidecar`.
//!
//! - [`manifest`]: which files, from where, of which kind (YAML or flags).
//! - [`source`]: `s3://`, `gs://`, `az://` (and
//!   `https://ACCOUNT.blob.core.windows.net/...`), `https://`/`http://` and
//!   `file://`, each answering "is there a newer version, and what are its
//!   bytes" without transferring a body when nothing changed; the cloud
//!   stores' credentials (`source::google_auth`, `source::azure_auth`, on
//!   the identity providers of `fleet_cloud`), the client code GCS and
//!   Azure share (`source::cloud`), and uploads with the sha256 metadata
//!   for `kb-sync-sidecar push`.
//! - [`sync`]: one file's cycle: conditional fetch into a temporary file in
//!   the destination, verification with the server's own parsers, pinned and
//!   published sha256 checks, atomic publish; a rejected version is not
//!   downloaded again. What a cycle ends with is in [`outcome`]; the
//!   destination's checks (containment, writability) in [`dest`].
//! - [`start`]: manifest, signal handlers and syncer, set up once for every
//!   tool; [`once`]: the one-shot run of `kb-init` and `kb-sync-sidecar --once`.
//! - [`state`]: what was last published from where, kept beside the files so
//!   a restarted sync does not download what it already has.
//! - [`backoff`]: capped exponential backoff with jitter.

pub mod backoff;
pub mod cli;
pub mod dest;
pub mod manifest;
pub mod once;
pub mod outcome;
pub mod progress;
pub mod source;
pub mod start;
pub mod state;
pub mod sync;
