//! The reloader: notices that a data file changed and reloads it.
//!
//! Two paths feed it. `notify` watches the parent directory of every file
//! (non-recursive) and an event about a data file there is a hint; after a
//! short quiet period
//! every file's [`Fingerprint`] is compared with the one last loaded. A
//! polling pass does the same every `poll_interval`, so changes that produce
//! no event (NFS or EFS written by another host, exhausted inotify watches)
//! are still picked up; a file whose fingerprint has not moved is not read
//! (its content could not be newer either: NFS revalidates cached pages by
//! the same attributes). Each file loads on a thread of its own
//! ([`load::spawn_load`]), so one that is slow or stuck never holds up the
//! others. Watches are re-armed when a watched directory is replaced or
//! appears; if watching fails altogether the reloader polls alone and
//! `/health` says so.
//!
//! Loading is [`load::load`]: validate completely, then swap atomically, or
//! keep the last good version and record the error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::ReloadOptions;
use crate::data::fingerprint::Fingerprint;
use crate::data::{DataFile, load};
use crate::state::AppState;

/// How long events must be quiet before files are compared.
pub const DEBOUNCE: Duration = Duration::from_millis(2);

/// Start the reloader; it runs until the runtime stops.
pub fn spawn(state: Arc<AppState>, opts: ReloadOptions) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(state, opts))
}

async fn run(state: Arc<AppState>, opts: ReloadOptions) {
    let (tx, mut hints) = mpsc::unbounded_channel::<()>();
    let dirs = watched_dirs(&state);
    let mut watches = Watches::new(opts.watch, tx, relevance(&state, &dirs));
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
                check(&state);
            }
            _ = tick.tick() => {
                watches.sync(&dirs, &state);
                check(&state);
            }
        }
    }
}

/// Start a load of every file whose fingerprint moved since its last load
/// began. Each loads on its own thread; a file still loading is left to
/// finish (it loads again by itself if it changed meanwhile).
fn check(state: &Arc<AppState>) {
    for f in DataFile::ALL {
        let current = Fingerprint::of(f.path(&state.config.files));
        let last = state.files.get(f).and_then(|s| s.fingerprint);
        if current != last {
            load::spawn_load(state, f, None);
        }
    }
}

/// Which paths' events are worth a look: the data files themselves, the
/// watched directories (replaced or removed), and Kubernetes' `..data`
/// layout (an update renames `..data` and creates `..<timestamp>`
/// directories without touching the file links). Anything else in a
/// watched directory (a log file, an editor's swap file) is ignored before
/// anything is done or logged about it, so writing it cannot feed a loop.
fn relevance(state: &AppState, dirs: &[PathBuf]) -> impl Fn(&Path) -> bool + Send + 'static {
    let names: Vec<std::ffi::OsString> = DataFile::ALL
        .iter()
        .filter_map(|f| {
            f.path(&state.config.files)
                .file_name()
                .map(|n| n.to_os_string())
        })
        .collect();
    let dirs = dirs.to_vec();
    move |path: &Path| {
        dirs.iter().any(|d| d == path)
            || path.file_name().is_some_and(|n| {
                names.iter().any(|name| name == n) || n.as_encoded_bytes().starts_with(b"..")
            })
    }
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
    fn new(
        enabled: bool,
        tx: mpsc::UnboundedSender<()>,
        relevant: impl Fn(&Path) -> bool + Send + 'static,
    ) -> Watches {
        let watcher = if enabled {
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // A relevant event, and every error or overflow, is only a
                // hint to look.
                let look = match &event {
                    Ok(e) => {
                        e.need_rescan() || e.paths.is_empty() || e.paths.iter().any(|p| relevant(p))
                    }
                    Err(_) => true,
                };
                if look {
                    let _ = tx.send(());
                }
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
