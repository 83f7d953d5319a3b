//! A document kept fresh from its source: the last good parsed copy, when it was last
//! confirmed, and a background task that reloads it. Used for key sets and revocation lists.
//!
//! Fail closed: until the first successful load, and once the last successful load is older
//! than `max_staleness`, [`LiveDocument::current`] returns `None`.
//!
//! Reloads may overlap (the timer's and one for an unknown key id), and a slow fetch can
//! finish after a later, faster one. The fetch that finishes last must not win over one
//! that started later: an old revocation list installed over a newer one would accept
//! revoked tokens again until the next reload. So each fetch takes a ticket when it
//! starts, and a result is installed only if no later fetch's result already was.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use crate::source::DocumentSource;

/// The first wait before a failed source is read again, and the longest.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// `wait` give or take a fifth, so replicas started together do not retry a source in
/// step.
fn jittered(wait: Duration) -> Duration {
    use rand_core::RngCore;
    let spread = wait / 5;
    let offset = u64::from(rand_core::OsRng.next_u32()) % (spread.as_millis() as u64 * 2 + 1);
    wait - spread + Duration::from_millis(offset)
}

/// Parses a fetched document; `None` when it is invalid (the last good copy stays).
pub(crate) type Parser<T> = fn(&[u8]) -> Option<T>;

#[derive(Debug)]
struct Snapshot<T> {
    value: Arc<T>,
    confirmed_at: Instant,
    digest: [u8; 32],
    generation: u64,
    /// The ticket of the fetch this copy was confirmed by (see the module).
    fetched: u64,
}

/// The live copy of one document.
#[derive(Debug)]
pub(crate) struct LiveDocument<T> {
    /// What it is (`consent_keys`, `revocation`, `caller_keys`), for logs and metrics.
    name: &'static str,
    source: DocumentSource,
    parse: Parser<T>,
    max_staleness: Duration,
    current: RwLock<Option<Snapshot<T>>>,
    generations: AtomicU64,
    /// Tickets handed to fetches as they start (see the module).
    fetches: AtomicU64,
    /// Serialises on-demand reloads and remembers when the last one ran (rate limit).
    on_demand: Mutex<Option<Instant>>,
    /// Fetches that failed (unreachable, refused, unparsable) since the last that did not.
    failures_in_a_row: AtomicU64,
}

/// How a source is doing, for the operator's metrics: alerts fire on these before the
/// last good copy grows too old and every check fails closed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceHealth {
    /// Seconds since the source was last read successfully (its copy confirmed), `None`
    /// if never.
    pub age_seconds: Option<f64>,
    /// How long a copy is used after that before checks fail closed (`max_staleness`).
    pub max_staleness_seconds: f64,
    /// Reads that failed since the last one that succeeded.
    pub consecutive_failures: u64,
}

impl<T: Send + Sync + 'static> LiveDocument<T> {
    pub(crate) fn new(
        name: &'static str,
        source: DocumentSource,
        parse: Parser<T>,
        max_staleness: Duration,
    ) -> Self {
        LiveDocument {
            name,
            source,
            parse,
            max_staleness,
            current: RwLock::new(None),
            generations: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            on_demand: Mutex::new(None),
            failures_in_a_row: AtomicU64::new(0),
        }
    }

    /// Whether the document comes from a local file (not a URL).
    pub(crate) fn is_file(&self) -> bool {
        matches!(self.source, DocumentSource::File(_))
    }

    /// What it is (`consent_keys`, `revocation`, `caller_keys`).
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// How the source is doing now.
    pub(crate) fn health(&self) -> SourceHealth {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        SourceHealth {
            age_seconds: guard
                .as_ref()
                .map(|snap| snap.confirmed_at.elapsed().as_secs_f64()),
            max_staleness_seconds: self.max_staleness.as_secs_f64(),
            consecutive_failures: self.failures_in_a_row.load(Ordering::Relaxed),
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
    /// the content changed (`Ok(false)` too when a later fetch overtook this one), or why
    /// it failed.
    pub(crate) async fn reload(&self) -> Result<bool, String> {
        let ticket = self.fetches.fetch_add(1, Ordering::AcqRel) + 1;
        let result = match self.source.fetch().await {
            Ok(bytes) => self
                .install(ticket, &bytes)
                .map_err(|()| match &self.source {
                    DocumentSource::File(f) => {
                        format!("{}: the document does not parse", f.path().display())
                    }
                    DocumentSource::Http(_) => "the document does not parse".to_owned(),
                }),
            Err(e) => Err(e.to_string()),
        };
        // Logged when a run of failures starts and when it ends, not at every poll (a
        // revocation list is polled every second); the metrics count the run. The reason
        // names the failure (a status, a TLS error, a file error kind), never a URL, a
        // token or the document.
        match &result {
            Ok(_) => {
                let failed = self.failures_in_a_row.swap(0, Ordering::Relaxed);
                if failed > 0 {
                    tracing::info!(
                        source = self.name,
                        failed,
                        "key or revocation source read again"
                    );
                }
            }
            Err(reason) => {
                if self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) == 0 {
                    let has_copy = self
                        .current
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_some();
                    if has_copy {
                        tracing::warn!(
                            source = self.name,
                            error = %reason,
                            max_staleness_secs = self.max_staleness.as_secs(),
                            "key or revocation source cannot be read; its last good copy serves \
                             until max_staleness, then checks that need it fail closed"
                        );
                    } else {
                        tracing::warn!(
                            source = self.name,
                            error = %reason,
                            "key or revocation source cannot be read and was never read; \
                             checks that need it fail closed until it is"
                        );
                    }
                }
            }
        }
        result
    }

    /// Installs what the fetch with `ticket` read, unless a later fetch's result is
    /// installed already. Returns whether the content changed.
    fn install(&self, ticket: u64, bytes: &[u8]) -> Result<bool, ()> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        {
            let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                // Overtaken: a fetch that started later has been installed. What this one
                // read is older than what is in place (and its freshness is no news).
                Some(snap) if snap.fetched > ticket => return Ok(false),
                Some(snap) if snap.digest == digest => {
                    snap.confirmed_at = Instant::now();
                    snap.fetched = ticket;
                    return Ok(false);
                }
                _ => {}
            }
        }
        // Parsed outside the lock: verification reads `current` on every call.
        let value = (self.parse)(bytes).ok_or(())?;
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_some_and(|snap| snap.fetched > ticket) {
            return Ok(false);
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *guard = Some(Snapshot {
            value: Arc::new(value),
            confirmed_at: Instant::now(),
            digest,
            generation,
            fetched: ticket,
        });
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
            // A source that failed is tried again sooner than `interval` (5 minutes for
            // keys): from 1 s, doubling to 30 s. A gateway started while its key URL was
            // unreachable is not ready until it is read, and must not wait a whole
            // interval once the URL is back.
            let mut retry = RETRY_FIRST;
            loop {
                let wait = if this.failures_in_a_row.load(Ordering::Relaxed) > 0 {
                    jittered(retry).min(interval)
                } else {
                    // Read successfully (perhaps by an on-demand reload): the next failure
                    // starts the backoff again from its first step.
                    retry = RETRY_FIRST;
                    interval
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = changed.notified() => {}
                }
                retry = match this.reload().await {
                    Ok(_) => RETRY_FIRST,
                    Err(_) => (retry * 2).min(RETRY_MAX),
                };
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_are_spread_by_a_fifth() {
        let waits: Vec<Duration> = (0..200)
            .map(|_| jittered(Duration::from_secs(10)))
            .collect();
        assert!(
            waits
                .iter()
                .all(|w| (Duration::from_secs(8)..=Duration::from_secs(12)).contains(w)),
            "{waits:?}"
        );
        // Not all the same: replicas do not retry in step.
        assert!(waits.iter().any(|w| *w != waits[0]));
    }
    use crate::source::FileSource;

    fn document() -> LiveDocument<String> {
        let parse: Parser<String> = |b| std::str::from_utf8(b).ok().map(str::to_owned);
        LiveDocument::new(
            "test",
            DocumentSource::File(FileSource::new("unused")),
            parse,
            Duration::from_secs(60),
        )
    }

    fn content(d: &LiveDocument<String>) -> String {
        d.current().unwrap().0.as_str().to_owned()
    }

    #[test]
    fn a_slow_fetch_finishing_last_does_not_replace_a_newer_one() {
        let d = document();
        // Fetch 1 (the timer's) starts, then fetch 2 (an unknown key id); 2 ends first.
        assert_eq!(d.install(2, b"new"), Ok(true));
        assert_eq!(d.install(1, b"old"), Ok(false), "overtaken");
        assert_eq!(content(&d), "new");
        // The same content from the older fetch is no confirmation either.
        assert_eq!(d.install(1, b"new"), Ok(false));
        // A later fetch replaces it as usual.
        assert_eq!(d.install(3, b"newer"), Ok(true));
        assert_eq!(content(&d), "newer");
        assert_eq!(d.current().unwrap().1, 2, "two installs, two generations");
    }

    #[tokio::test]
    async fn health_counts_failures_in_a_row_and_the_age_of_the_last_good_read() {
        let dir = std::env::temp_dir().join(format!("discreet-live-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("doc");
        let parse: Parser<String> = |b| std::str::from_utf8(b).ok().map(str::to_owned);
        let d = LiveDocument::new(
            "test",
            DocumentSource::File(FileSource::new(&file)),
            parse,
            Duration::from_secs(60),
        );
        let h = d.health();
        assert_eq!(
            (h.age_seconds, h.consecutive_failures),
            (None, 0),
            "never read"
        );
        assert_eq!(h.max_staleness_seconds, 60.0);
        // Missing, then unparsable: two failures in a row, still never read.
        assert!(d.reload().await.is_err());
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(d.reload().await.is_err());
        assert_eq!(d.health().consecutive_failures, 2);
        assert_eq!(d.health().age_seconds, None);
        // Read: the count resets and the age starts.
        std::fs::write(&file, "good").unwrap();
        assert!(d.reload().await.is_ok());
        let h = d.health();
        assert_eq!(h.consecutive_failures, 0);
        assert!(h.age_seconds.is_some_and(|a| a < 5.0), "{h:?}");
        std::fs::remove_file(&file).unwrap();
        assert!(d.reload().await.is_err());
        assert_eq!(d.health().consecutive_failures, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What the subscriber installed by [`logged`] wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_run_of_failures_is_logged_once_with_its_reason_and_so_is_its_end() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let dir = std::env::temp_dir().join(format!("discreet-live-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("doc");
        let parse: Parser<String> =
            |b| (b != b"SECRET-UNPARSABLE").then(|| String::from_utf8_lossy(b).into_owned());
        let d = LiveDocument::new(
            "revocation",
            DocumentSource::File(FileSource::new(&file)),
            parse,
            Duration::from_secs(60),
        );
        std::fs::write(&file, "good").unwrap();
        d.reload().await.unwrap();
        std::fs::write(&file, "SECRET-UNPARSABLE").unwrap();
        for _ in 0..3 {
            assert!(d.reload().await.is_err());
        }
        std::fs::write(&file, "good again").unwrap();
        d.reload().await.unwrap();
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("cannot be read").count(), 1, "{text}");
        assert!(
            text.contains("source=\"revocation\"") || text.contains("source=revocation"),
            "{text}"
        );
        assert!(text.contains("does not parse"), "{text}");
        assert!(
            text.contains("read again") && text.contains("failed=3"),
            "{text}"
        );
        assert!(
            !text.contains("SECRET"),
            "the document reached the log: {text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unparsable_document_keeps_the_last_good_copy() {
        let d = document();
        assert_eq!(d.install(1, b"good"), Ok(true));
        assert_eq!(d.install(2, &[0xff, 0xfe]), Err(()));
        assert_eq!(content(&d), "good");
        assert_eq!(d.install(3, b"good"), Ok(false), "unchanged: confirmed");
    }
}
