//! Noticing that a file the gateway serves from has changed: the policy, the shadow
//! policy, the TLS certificate and key, the client CA bundle. One watch loop for all of
//! them, so they agree on when a change is seen.
//!
//! File-system events wake the loop at once, and a poll catches what events miss
//! (network file systems, and the symlink swap Kubernetes uses to update a mounted
//! ConfigMap or Secret). The directory is watched, not the file: an atomic replace gives
//! the path a new inode, which a watch on the old one would never report.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// How long after an event the files are read: lets an editor or `kubectl` finish
/// writing first.
const SETTLE: Duration = Duration::from_millis(50);

/// Calls `check` after any change in the directories of `files`, and every `poll`, until
/// the returned task is aborted. `check` decides whether anything really changed (it
/// compares contents): events also come for other files in the same directories.
pub(crate) fn watch_files(
    files: &[&Path],
    poll: Duration,
    mut check: impl FnMut() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut dirs: Vec<PathBuf> = files.iter().map(|f| directory_of(f)).collect();
    dirs.sort();
    dirs.dedup();
    // Without a watcher (the platform's limit on watches reached, say) the poll still
    // notices every change, only later.
    let watcher = {
        use notify::Watcher;
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Not on our own reads of the files (see `changes_content`).
            if event.is_ok_and(|e| discreet_consent::source::changes_content(&e)) {
                let _ = tx.try_send(());
            }
        })
        .ok()
        .map(|mut w| {
            for dir in &dirs {
                if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
                    tracing::debug!(dir = %dir.display(), error = %e, "no file events; polling");
                }
            }
            w
        })
    };
    tokio::spawn(async move {
        let _watcher = watcher; // kept alive as long as the task
        loop {
            tokio::select! {
                _ = rx.recv() => tokio::time::sleep(SETTLE).await,
                () = tokio::time::sleep(poll) => {}
            }
            check();
        }
    })
}

fn directory_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
