//! The reloader: notices that a data file changed and reloads it.
//!
//! Two paths feed it. `notify` watches the parent directory of every file
//! (non-recursive) and any event there is a hint; after a short quiet period
//! every file's [`Fingerprint`] is compared with the one last loaded. A
//! polling pass does the same every `poll_interval`, and also re-reads the
//! small auth files whatever their fingerprint says, so changes that produce
//! no event (NFS or EFS written by another host, exhausted inotify watches,
//! attribute caching) are still picked up. Watches are re-armed when a
//! watched directory is replaced or appears; if watching fails altogether the
//! reloader polls alone and `/health` says so.
//!
//! Loading is [`files::load`]: validate completely, then swap atomically, or
//! keep the last good version and record the error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::files::{self, DataFile};
use crate::fingerprint::Fingerprint;
use crate::state::AppState;

/// How long events must be quiet before files are compared.
pub const DEBOUNCE: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy)]
pub struct ReloadOptions {
    /// Whether to watch directories with inotify (polling always runs).
    pub watch: bool,
    pub poll_interval: Duration,
}

/// Start the reloader; it runs until the runtime stops.
pub fn spawn(state: Arc<AppState>, opts: ReloadOptions) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(state, opts))
}

async fn run(state: Arc<AppState>, opts: ReloadOptions) {
    let (tx, mut hints) = mpsc::unbounded_channel::<()>();
    let mut watches = Watches::new(opts.watch, tx);
    let dirs = watched_dirs(&state);
    watches.sync(&dirs, &state);
    let mut tick = tokio::time::interval(opts.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(()) = hints.recv() => {
                // Let a burst of events (an editor's truncate + writes) settle.
                while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, hints.recv()).await {}
                // A watched directory that was replaced or removed shows up
                // as an event too: re-arm at once, not at the next poll.
                watches.sync(&dirs, &state);
                check(&state, false).await;
            }
            _ = tick.tick() => {
                watches.sync(&dirs, &state);
                check(&state, true).await;
            }
        }
    }
}

/// Reload every file whose fingerprint moved; when `polling`, re-read the
/// small files too (their content hash makes an unchanged read a no-op).
async fn check(state: &Arc<AppState>, polling: bool) {
    let due: Vec<DataFile> = DataFile::ALL
        .into_iter()
        .filter(|&f| {
            let current = Fingerprint::of(f.path(&state.config.files));
            let last = state.files.get(f).and_then(|s| s.fingerprint);
            current != last || (polling && f != DataFile::Kb && current.is_some())
        })
        .collect();
    if due.is_empty() {
        return;
    }
    let state = state.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for f in due {
            let _ = files::load(&state, f);
        }
    })
    .await;
}

fn watched_dirs(state: &AppState) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = DataFile::ALL
        .iter()
        .map(|f| parent(f.path(&state.config.files)))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The inotify watches, one per directory, and which inode each is on.
struct Watches {
    watcher: Option<notify::RecommendedWatcher>,
    armed: BTreeMap<PathBuf, (u64, u64)>,
}

impl Watches {
    fn new(enabled: bool, tx: mpsc::UnboundedSender<()>) -> Watches {
        let watcher = if enabled {
            notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
                // Every event, and every error, is only a hint to look.
                let _ = tx.send(());
            })
            .map_err(|e| tracing::warn!(error = %e, "cannot watch files; polling only"))
            .ok()
        } else {
            None
        };
        Watches {
            watcher,
            armed: BTreeMap::new(),
        }
    }

    /// Arm a watch on each directory that exists and is not watched on its
    /// current inode; forget watches on directories that went away.
    fn sync(&mut self, dirs: &[PathBuf], state: &AppState) {
        let Some(watcher) = self.watcher.as_mut() else {
            state.set_watching(false);
            return;
        };
        let mut all_armed = true;
        for dir in dirs {
            let current = Fingerprint::of(dir).map(|f| f.inode());
            let armed = self.armed.get(dir).copied();
            if current.is_some() && current == armed {
                continue;
            }
            if armed.is_some() {
                let _ = watcher.unwatch(dir);
                self.armed.remove(dir);
            }
            let Some(inode) = current else {
                all_armed = false;
                continue;
            };
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(dir = %dir.display(), "watching");
                    self.armed.insert(dir.clone(), inode);
                }
                Err(err) => {
                    // ENOSPC (watch limit) and friends: polling covers it.
                    tracing::warn!(dir = %dir.display(), error = %err, "cannot watch directory; polling it");
                    all_armed = false;
                }
            }
        }
        state.set_watching(all_armed);
    }
}
