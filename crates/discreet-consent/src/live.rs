//! A document kept fresh from its source: the last good parsed copy, when it was last
//! confirmed, and a background task that reloads it. Used for key sets and revocation lists.
//!
//! Fail closed: until the first successful load, and once the last successful load is older
//! than `max_staleness`, [`LiveDocument::current`] returns `None`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use crate::source::DocumentSource;

/// Parses a fetched document; `None` when it is invalid (the last good copy stays).
pub(crate) type Parser<T> = fn(&[u8]) -> Option<T>;

#[derive(Debug)]
struct Snapshot<T> {
    value: Arc<T>,
    confirmed_at: Instant,
    digest: [u8; 32],
    generation: u64,
}

/// The live copy of one document.
#[derive(Debug)]
pub(crate) struct LiveDocument<T> {
    source: DocumentSource,
    parse: Parser<T>,
    max_staleness: Duration,
    current: RwLock<Option<Snapshot<T>>>,
    generations: AtomicU64,
    /// Serialises on-demand reloads and remembers when the last one ran (rate limit).
    on_demand: Mutex<Option<Instant>>,
}

impl<T: Send + Sync + 'static> LiveDocument<T> {
    pub(crate) fn new(source: DocumentSource, parse: Parser<T>, max_staleness: Duration) -> Self {
        LiveDocument {
            source,
            parse,
            max_staleness,
            current: RwLock::new(None),
            generations: AtomicU64::new(0),
            on_demand: Mutex::new(None),
        }
    }

    /// The current value and its generation, unless never loaded or too stale.
    pub(crate) fn current(&self) -> Option<(Arc<T>, u64)> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        let snap = guard.as_ref()?;
        (snap.confirmed_at.elapsed() <= self.max_staleness)
            .then(|| (Arc::clone(&snap.value), snap.generation))
    }

    /// Fetches and parses the source. On success the copy is confirmed fresh (and replaced
    /// if the content changed); on failure the old copy is kept and ages. Returns whether
    /// the content changed.
    pub(crate) async fn reload(&self) -> Result<bool, ()> {
        let bytes = self.source.fetch().await.map_err(|_| ())?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let unchanged = {
            let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Some(snap) if snap.digest == digest => {
                    snap.confirmed_at = Instant::now();
                    true
                }
                _ => false,
            }
        };
        if unchanged {
            return Ok(false);
        }
        let value = (self.parse)(&bytes).ok_or(())?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let snap = Snapshot {
            value: Arc::new(value),
            confirmed_at: Instant::now(),
            digest,
            generation,
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(snap);
        Ok(true)
    }

    /// Reloads now unless an on-demand reload ran less than `min_interval` ago. Concurrent
    /// callers wait for the one in flight instead of fetching again; callers compare
    /// generations afterwards to see whether anything changed.
    pub(crate) async fn reload_rate_limited(&self, min_interval: Duration) {
        let mut last = self.on_demand.lock().await;
        if last.is_some_and(|t| t.elapsed() < min_interval) {
            return;
        }
        *last = Some(Instant::now());
        let _ = self.reload().await;
    }

    /// Starts the background reload loop: every `interval`, and immediately when a watched
    /// file changes. The task ends when the returned guard is dropped.
    pub(crate) fn spawn(self: &Arc<Self>, interval: Duration, watch: bool) -> TaskGuard {
        let this = Arc::clone(self);
        let handle = tokio::spawn(async move {
            let changed = Arc::new(Notify::new());
            let _watcher = match &this.source {
                DocumentSource::File(f) if watch => f.watch(Arc::clone(&changed)),
                DocumentSource::File(_) => None,
                DocumentSource::Http(_) => None,
            };
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = changed.notified() => {}
                }
                let _ = this.reload().await;
            }
        });
        TaskGuard(handle)
    }
}

/// Aborts a background task when dropped.
#[derive(Debug)]
pub(crate) struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
