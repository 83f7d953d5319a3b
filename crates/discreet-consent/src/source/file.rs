//! A document in a file, re-read when the file system reports a change and on a poll.
//!
//! Kubernetes ConfigMap and Secret mounts replace files by swapping a `..data` symlink in
//! the directory, so the watch is on the parent directory, and a poll catches anything the
//! watcher misses (network file systems, overlay quirks).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::{MAX_DOCUMENT_BYTES, SourceError};

/// A file source.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSource { path: path.into() }
    }

    /// The path read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn fetch(&self) -> Result<Vec<u8>, SourceError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| SourceError::File(format!("{}: {}", self.path.display(), e.kind())))?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(SourceError::TooLarge);
        }
        Ok(bytes)
    }

    /// Starts a watcher on the file's directory that wakes `changed` on any event. Returns
    /// `None` if the platform watcher cannot start; polling still works then.
    pub(crate) fn watch(&self, changed: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| changes_content(&e)) {
                    changed.notify_one();
                }
            })
            .ok()?;
        watcher.watch(&dir, RecursiveMode::NonRecursive).ok()?;
        Some(watcher)
    }
}

/// Whether a file-system event can mean new contents: anything but opening, reading or
/// closing a file unwritten. Those must not wake a reload: the reload reads the file,
/// which would wake the next reload, a loop that kept a core busy on an idle gateway.
/// A writer's close does count: it is the moment its last bytes are in.
pub fn changes_content(event: &notify::Event) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match event.kind {
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        notify::EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
    use notify::{Event, EventKind};

    use super::changes_content;

    #[test]
    fn reads_do_not_wake_a_reload_but_writes_and_swaps_do() {
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
        ] {
            assert!(!changes_content(&Event::new(kind)), "{kind:?}");
        }
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(notify::event::RemoveKind::Any),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(changes_content(&Event::new(kind)), "{kind:?}");
        }
    }
}
