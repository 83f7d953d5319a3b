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

/// Most bytes read from one watched file. Certificates, keys, CA bundles (Mozilla's is
/// ~250 KiB) and tokens are far smaller; a path that names something else (a device such
/// as /dev/zero, a log file) must not be read into memory on every poll.
const MAX_WATCHED_FILE_BYTES: u64 = 4 << 20;

fn read_all(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    files.iter().map(|path| read_bounded(path)).collect()
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(MAX_WATCHED_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_WATCHED_FILE_BYTES {
        return Err(format!(
            "{}: larger than {} MiB; expected a certificate, key, CA bundle or token file",
            path.display(),
            MAX_WATCHED_FILE_BYTES >> 20
        ));
    }
    Ok(bytes)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_past_the_bound_is_refused_without_reading_it_whole() {
        let dir = std::env::temp_dir().join(format!("discreet-watched-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.pem");
        std::fs::write(
            &big,
            vec![b'a'; usize::try_from(MAX_WATCHED_FILE_BYTES).unwrap() + 1],
        )
        .unwrap();
        let e = WatchedFiles::load(vec![big.clone()], |_| Ok(())).unwrap_err();
        assert!(
            e.contains("big.pem") && e.contains("larger than 4 MiB"),
            "{e}"
        );
        // At the bound, read.
        std::fs::write(
            &big,
            vec![b'a'; usize::try_from(MAX_WATCHED_FILE_BYTES).unwrap()],
        )
        .unwrap();
        let loaded = WatchedFiles::load(vec![big], |c| Ok(c[0].len())).unwrap();
        assert_eq!(*loaded.current() as u64, MAX_WATCHED_FILE_BYTES);
        // A device that never ends is refused, not read until memory runs out.
        if Path::new("/dev/zero").exists() {
            let e = WatchedFiles::load(vec![PathBuf::from("/dev/zero")], |_| Ok(())).unwrap_err();
            assert!(e.contains("larger than"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
