//! A value loaded from files that may be replaced while the gateway runs (the TLS
//! certificate and key, the client CA bundle): the last good value serves until a new one
//! loads, and a change that does not load is reported once, not on every poll.
//!
//! The files are read once per attempt and the value is parsed from those very bytes, so
//! what serves is always what was checked, even if a file changes again mid-reload.
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use sha2::{Digest, Sha256};

/// What a reload attempt did.
#[derive(Debug)]
pub(crate) enum FileReload<T> {
    /// The files hold what is serving, or a change already refused.
    Unchanged,
    /// A new value serves from now on.
    Loaded(Arc<T>),
    /// The files do not load; the previous value keeps serving. The message names the
    /// file and the problem.
    Rejected(String),
}

/// The value serving now and the files it came from.
#[derive(Debug)]
pub(crate) struct WatchedFiles<T> {
    files: Vec<PathBuf>,
    current: RwLock<(Arc<T>, [u8; 32])>,
    /// The digest of the last refused state, so it is reported once.
    last_rejected: RwLock<Option<[u8; 32]>>,
}

impl<T> WatchedFiles<T> {
    /// Loads the value at start-up; files that do not load are an error here (there is no
    /// last good value to keep serving).
    pub(crate) fn load(
        files: Vec<PathBuf>,
        parse: impl Fn(&[Vec<u8>]) -> Result<T, String>,
    ) -> Result<Self, String> {
        let contents = read_all(&files)?;
        let value = parse(&contents)?;
        Ok(WatchedFiles {
            current: RwLock::new((Arc::new(value), digest(&contents))),
            files,
            last_rejected: RwLock::new(None),
        })
    }

    /// The files, to watch.
    pub(crate) fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The value serving now.
    pub(crate) fn current(&self) -> Arc<T> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard.0),
            // A writer panicked mid-swap; the Arc inside is still a whole value.
            Err(poisoned) => Arc::clone(&poisoned.into_inner().0),
        }
    }

    /// Re-reads the files; serves what they hold if it changed and `parse` accepts it.
    pub(crate) fn reload(&self, parse: impl Fn(&[Vec<u8>]) -> Result<T, String>) -> FileReload<T> {
        let first = self.attempt(&parse);
        // Several files are read one after the other: a refusal may come from reading one
        // before and one after a replacement (or between two files written in turn).
        // If they changed meanwhile, judge the new state instead; a state that stays
        // broken is refused as before.
        match first {
            FileReload::Rejected(_) if self.last_rejected_state() != self.state_now() => {
                self.attempt(&parse)
            }
            other => other,
        }
    }

    fn attempt(&self, parse: &impl Fn(&[Vec<u8>]) -> Result<T, String>) -> FileReload<T> {
        // Unreadable (mid-replacement a file can briefly vanish; deleted, it stays gone)
        // is a state too, identified by its message, and reported once.
        let (contents, state) = self.read();
        if Some(state) == self.current_digest() {
            self.set_last_rejected(None);
            return FileReload::Unchanged;
        }
        if let Ok(last) = self.last_rejected.read()
            && *last == Some(state)
        {
            return FileReload::Unchanged;
        }
        match contents.and_then(|c| parse(&c)) {
            Ok(value) => {
                let value = Arc::new(value);
                match self.current.write() {
                    Ok(mut guard) => *guard = (Arc::clone(&value), state),
                    Err(poisoned) => *poisoned.into_inner() = (Arc::clone(&value), state),
                }
                self.set_last_rejected(None);
                FileReload::Loaded(value)
            }
            Err(message) => {
                self.set_last_rejected(Some(state));
                FileReload::Rejected(message)
            }
        }
    }

    fn current_digest(&self) -> Option<[u8; 32]> {
        Some(match self.current.read() {
            Ok(guard) => guard.1,
            Err(poisoned) => poisoned.into_inner().1,
        })
    }

    fn last_rejected_state(&self) -> Option<[u8; 32]> {
        self.last_rejected.read().ok().and_then(|last| *last)
    }

    fn state_now(&self) -> Option<[u8; 32]> {
        Some(self.read().1)
    }

    /// The files' contents now, or why they cannot be read, and that state's digest.
    fn read(&self) -> (Result<Vec<Vec<u8>>, String>, [u8; 32]) {
        match read_all(&self.files) {
            Ok(contents) => {
                let state = digest(&contents);
                (Ok(contents), state)
            }
            Err(message) => {
                let state = digest(&[message.clone().into_bytes()]);
                (Err(message), state)
            }
        }
    }

    fn set_last_rejected(&self, state: Option<[u8; 32]>) {
        if let Ok(mut last) = self.last_rejected.write() {
            *last = state;
        }
    }
}

fn read_all(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    files
        .iter()
        .map(|path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("{}: {e}", Path::display(path)))
        })
        .collect()
}

/// Of every file's bytes, each prefixed by its length so that moving bytes from one file
/// to the next is a change.
fn digest(contents: &[Vec<u8>]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for bytes in contents {
        hash.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
        hash.update(bytes);
    }
    hash.finalize().into()
}
