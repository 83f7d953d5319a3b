//! The serving threads: one single-threaded Tokio runtime each, every caller connection
//! pinned to one of them, as nginx and Envoy pin connections to workers.
//!
//! Why not one work-stealing runtime: a proxied call is a chain of small tasks (the
//! caller's connection, the call, the store's connection, back). On a work-stealing
//! runtime each hand-over may wake another thread, and on a loaded node those wake-ups,
//! not the work, set the latency. Here the whole chain of a call runs on the thread that
//! owns its connection, with that thread's own connection to the store
//! ([`current_worker`], used by `upstream.rs`). On this project's load benchmark that cut
//! the CPU per call by about a third (BENCHMARKS.md).
use std::{
    cell::Cell,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::sync::{mpsc, oneshot, watch};

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the serving thread this code runs on, if it runs on one.
pub(crate) fn current_worker() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// How many serving threads `configured` (`limits.worker_threads`) means: `0` is one per
/// CPU this process may use.
pub(crate) fn count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// What a serving thread does with each connection handed to it, on its own runtime.
pub(crate) trait ConnectionHandler: Send + 'static {
    /// Serves one connection until it ends or `stopping` turns true; then drains.
    fn serve(&self, stream: tokio::net::TcpStream) -> impl Future<Output = ()> + Send + 'static;
    /// Waits for the connections served to finish after a stop, at most `grace`.
    fn drain(self, grace: Duration) -> impl Future<Output = ()>;
}

/// How many caller connections may be open at once (`limits.max_connections`), and the
/// metrics that show it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionLimit {
    pub(crate) max: usize,
    /// Connections open now.
    pub(crate) open: Gauge,
    /// Connections closed at accept, over `max`.
    pub(crate) refused: Counter,
}

/// One serving thread, seen from the acceptor.
#[derive(Debug)]
struct Worker {
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Connections open on it, for the choice of the next one.
    open: Arc<AtomicUsize>,
    done: oneshot::Receiver<()>,
}

/// The serving threads, seen from the acceptor.
#[derive(Debug)]
pub(crate) struct Workers {
    workers: Vec<Worker>,
    stop: watch::Sender<bool>,
    limit: ConnectionLimit,
}

impl Workers {
    /// Starts `n` threads, each serving the connections it is given with a handler made
    /// by `handler(i)` on its own thread. Fails if a runtime or a thread cannot be made.
    pub(crate) fn start<H, F>(
        n: usize,
        grace: Duration,
        limit: ConnectionLimit,
        handler: F,
    ) -> Result<Workers, String>
    where
        H: ConnectionHandler,
        F: Fn(usize) -> H,
    {
        let (stop, _) = watch::channel(false);
        let mut workers = Vec::with_capacity(n);
        for index in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start serving thread {index}: {e}"))?;
            let (tx, rx) = mpsc::unbounded_channel();
            let (done_tx, done) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let handler = handler(index);
            let stopping = stop.subscribe();
            let open_here = (Arc::clone(&open), limit.open.clone());
            std::thread::Builder::new()
                .name(format!("discreet-worker-{index}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(Some(index)));
                    runtime.block_on(run(handler, rx, stopping, open_here, grace));
                    // Dropping the runtime here cancels whatever outlived the grace period.
                    drop(runtime);
                    let _ = done_tx.send(());
                })
                .map_err(|e| format!("cannot start serving thread {index}: {e}"))?;
            workers.push(Worker {
                connections: tx,
                open,
                done,
            });
        }
        Ok(Workers {
            workers,
            stop,
            limit,
        })
    }

    /// Hands an accepted connection to the thread with the fewest open (the first such).
    /// Callers keep gRPC connections for long, so counting connections balances load
    /// better than taking turns. Over `limits.max_connections` open, the connection is
    /// closed instead: each holds buffers, and connections that never call must not be
    /// able to take the memory of those that do.
    pub(crate) fn assign(&self, stream: std::net::TcpStream) {
        let open: usize = self
            .workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .sum();
        if open >= self.limit.max {
            self.limit.refused.inc();
            tracing::debug!(
                max_connections = self.limit.max,
                "connection closed at accept: limits.max_connections are open"
            );
            return;
        }
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        self.limit.open.inc();
        if worker.connections.send(stream).is_err() {
            // That thread has stopped (only at shutdown): the connection is closed.
            worker.open.fetch_sub(1, Ordering::Relaxed);
            self.limit.open.dec();
        }
    }

    /// Stops every thread (each drains its connections for up to its grace period) and
    /// waits for all of them. Dropping `Workers` instead ends the threads without a
    /// drain.
    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        for worker in self.workers {
            drop(worker.connections);
            let _ = worker.done.await;
        }
    }
}

/// A serving thread's loop: serve each connection handed over until told to stop, then
/// drain.
async fn run<H: ConnectionHandler>(
    handler: H,
    mut connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
    mut stopping: watch::Receiver<bool>,
    open: (Arc<AtomicUsize>, Gauge),
    grace: Duration,
) {
    let anchor = tokio::spawn(timer_anchor());
    loop {
        tokio::select! {
            next = connections.recv() => {
                let Some(stream) = next else { break };
                let open = OpenConnection(Arc::clone(&open.0), open.1.clone());
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => {
                        let served = handler.serve(stream);
                        tokio::spawn(async move {
                            served.await;
                            drop(open);
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot take over an accepted connection"),
                }
            }
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    // Stopped: drain. Dropped without a stop (the task that held `Workers` was cancelled,
    // as when a test's runtime ends): end at once, as one runtime would have.
    if *stopping.borrow() {
        handler.drain(grace).await;
    }
    anchor.abort();
}

/// How often [`timer_anchor`] ticks: sooner than almost any call's deadline.
const ANCHOR_TICK: Duration = Duration::from_millis(250);

/// Keeps a timer due within [`ANCHOR_TICK`] on this thread's runtime, always.
///
/// Each call arms a deadline timer (`limits.default_timeout` or the caller's). When that
/// is the soonest timer, Tokio wakes the thread's event loop through its eventfd to
/// re-plan its sleep: a system call and a spurious wake-up on every call, even while the
/// thread is busy (seen with `perf record -e syscalls:sys_enter_write`). With a sooner
/// timer always armed, a call's deadline is never the soonest, and the re-plan costs
/// four wake-ups a second instead.
async fn timer_anchor() {
    loop {
        tokio::time::sleep(ANCHOR_TICK).await;
    }
}

/// One open connection in a thread's count and the gauge, until dropped.
struct OpenConnection(Arc<AtomicUsize>, Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        self.1.dec();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// Notes which serving thread each connection landed on, and holds it until the peer
    /// closes it.
    struct Recorder(Arc<Mutex<Vec<Option<usize>>>>);

    impl ConnectionHandler for Recorder {
        fn serve(
            &self,
            mut stream: tokio::net::TcpStream,
        ) -> impl Future<Output = ()> + Send + 'static {
            self.0.lock().unwrap().push(current_worker());
            async move {
                let mut buf = [0u8; 16];
                while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            }
        }

        /// As a real drain may: wait out the whole grace period.
        async fn drain(self, grace: Duration) {
            tokio::time::sleep(grace).await;
        }
    }

    fn unlimited() -> ConnectionLimit {
        ConnectionLimit {
            max: usize::MAX,
            ..ConnectionLimit::default()
        }
    }

    fn connect(listener: &std::net::TcpListener) -> (std::net::TcpStream, std::net::TcpStream) {
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    async fn wait_for(seen: &Mutex<Vec<Option<usize>>>, n: usize) -> Vec<Option<usize>> {
        for _ in 0..500 {
            if seen.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen.lock().unwrap().clone()
    }

    async fn open_on(workers: &Workers, i: usize, n: usize) {
        for _ in 0..500 {
            if workers.workers[i].open.load(Ordering::Relaxed) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("worker {i} never had {n} connections open");
    }

    #[tokio::test]
    async fn connections_go_to_the_thread_with_fewest_and_stay_there() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let workers = Workers::start(2, Duration::from_millis(100), unlimited(), |_| {
            Recorder(Arc::clone(&seen))
        })
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let (client, server) = connect(&listener);
            workers.assign(server);
            clients.push(client);
        }
        // Each connection runs on a serving thread, never on the caller's runtime, two on
        // each while the counts are level (the threads record in either order).
        let mut landed = wait_for(&seen, 4).await;
        landed.sort();
        assert_eq!(landed, [Some(0), Some(0), Some(1), Some(1)]);
        assert_eq!(workers.workers[0].open.load(Ordering::Relaxed), 2);
        // Thread 0's callers (the first and third: `assign` counts a connection before
        // handing it over, so the choice is in order) leave; the next two go to it.
        drop(clients.remove(2));
        drop(clients.remove(0));
        open_on(&workers, 0, 0).await;
        for _ in 0..2 {
            let (client, server) = connect(&listener);
            workers.assign(server);
            clients.push(client);
        }
        assert_eq!(wait_for(&seen, 6).await[4..], [Some(0), Some(0)]);
        // Stopping returns once every thread has drained and ended.
        tokio::time::timeout(Duration::from_secs(5), workers.stop())
            .await
            .expect("serving threads stopped");
    }

    #[tokio::test]
    async fn dropped_without_a_stop_the_threads_end_without_draining() {
        use std::io::Read;
        let seen = Arc::new(Mutex::new(Vec::new()));
        // A grace period far past the test's patience: only the no-drain path ends in time.
        let workers = Workers::start(1, Duration::from_secs(600), unlimited(), |_| {
            Recorder(Arc::clone(&seen))
        })
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut client, server) = connect(&listener);
        workers.assign(server);
        wait_for(&seen, 1).await;
        drop(workers);
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let closed = tokio::task::spawn_blocking(move || client.read(&mut [0u8; 1]))
            .await
            .unwrap();
        assert!(
            matches!(closed, Ok(0)),
            "the connection outlived its serving thread: {closed:?}"
        );
    }

    #[tokio::test]
    async fn connections_over_the_limit_are_closed_and_counted() {
        use std::io::Read;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let limit = ConnectionLimit {
            max: 2,
            ..ConnectionLimit::default()
        };
        let workers = Workers::start(2, Duration::from_millis(100), limit.clone(), |_| {
            Recorder(Arc::clone(&seen))
        })
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (client, server) = connect(&listener);
            workers.assign(server);
            clients.push(client);
        }
        // Two are served; the third was closed at once.
        assert_eq!(wait_for(&seen, 2).await.len(), 2);
        assert_eq!(limit.open.get(), 2);
        assert_eq!(limit.refused.get(), 1);
        let mut third = clients.pop().unwrap();
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let closed = tokio::task::spawn_blocking(move || third.read(&mut [0u8; 1]))
            .await
            .unwrap();
        assert!(matches!(closed, Ok(0)), "{closed:?}");
        // One leaves: its place is free for the next.
        drop(clients.pop());
        for _ in 0..500 {
            if limit.open.get() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_client, server) = connect(&listener);
        workers.assign(server);
        assert_eq!(wait_for(&seen, 3).await.len(), 3);
        assert_eq!(limit.refused.get(), 1);
        tokio::time::timeout(Duration::from_secs(5), workers.stop())
            .await
            .expect("serving threads stopped");
    }

    #[test]
    fn zero_threads_means_one_per_cpu() {
        assert_eq!(count(3), 3);
        assert_eq!(
            count(0),
            std::thread::available_parallelism().unwrap().get()
        );
    }
}
