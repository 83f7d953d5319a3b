//! A caller connection's calls in flight, and when it has had none for long enough to be
//! closed (`limits.connection_idle_timeout`).
//!
//! Why not count bytes read: the gateway's own keep-alive PINGs are answered, so a live
//! caller that never calls still sends something every 30 s. Calls are what a
//! connection is for, so a connection is idle when it has had no call open.
//!
//! The count is kept with atomics and checked on a coarse timer (a quarter of the
//! timeout) rather than by waking the connection on each call's end: a call pays a few
//! uncontended atomic operations, and no timer is re-armed per call.
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// The calls of one caller connection.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCalls {
    open: AtomicUsize,
    started: AtomicUsize,
}

/// One call in flight on a connection, until dropped (with its response body, for a
/// call that streams one).
#[derive(Debug)]
pub(crate) struct CallInFlight(Arc<ConnectionCalls>);

impl ConnectionCalls {
    /// A call starts.
    pub(crate) fn begin(self: &Arc<Self>) -> CallInFlight {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        CallInFlight(Arc::clone(self))
    }

    /// Resolves once the connection has had no call open for `timeout` (to 1.25x it, never
    /// less), never if `timeout` is zero.
    pub(crate) async fn idle_for(self: Arc<Self>, timeout: Duration) {
        if timeout.is_zero() {
            return std::future::pending().await;
        }
        let tick = timeout / 4;
        let mut seen = self.started.load(Ordering::Relaxed);
        // Counting quiet checks from a time the connection is known to have been quiet
        // since: the start, or a check that found no call open after calls (they ended
        // before it, so counting from the check never closes a connection early, and a
        // connection goes between 1x and 1.25x the timeout after its last call).
        let mut counting = true;
        let mut quiet_ticks = 0;
        loop {
            tokio::time::sleep(tick).await;
            let started = self.started.load(Ordering::Relaxed);
            if self.open.load(Ordering::Relaxed) != 0 {
                counting = false;
                quiet_ticks = 0;
            } else if started != seen || !counting {
                counting = true;
                quiet_ticks = 0;
            } else {
                quiet_ticks += 1;
                if quiet_ticks >= 4 {
                    return;
                }
            }
            seen = started;
        }
    }
}

impl Drop for CallInFlight {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::Future;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    /// Whether `idle` resolves within `within` of (paused, auto-advancing) time.
    async fn resolves_within(idle: impl Future<Output = ()>, within: Duration) -> bool {
        tokio::time::timeout(within, idle).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_calls_is_idle_after_the_timeout_and_not_before() {
        let calls = Arc::new(ConnectionCalls::default());
        let started = tokio::time::Instant::now();
        Arc::clone(&calls).idle_for(TIMEOUT).await;
        let took = started.elapsed();
        assert!(took >= TIMEOUT && took <= TIMEOUT * 5 / 4, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_flight_keeps_the_connection_however_long_it_takes() {
        let calls = Arc::new(ConnectionCalls::default());
        let call = calls.begin();
        assert!(!resolves_within(Arc::clone(&calls).idle_for(TIMEOUT), TIMEOUT * 10).await);
        // Once it ends, the timeout runs from there.
        drop(call);
        assert!(resolves_within(Arc::clone(&calls).idle_for(TIMEOUT), TIMEOUT * 2).await);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_runs_from_the_end_of_the_last_call() {
        let calls = Arc::new(ConnectionCalls::default());
        let call = calls.begin();
        let idle = Arc::clone(&calls).idle_for(TIMEOUT);
        tokio::pin!(idle);
        // Checks every 15 s; the call ends 5 s before one.
        assert!(!resolves_within(idle.as_mut(), Duration::from_secs(70)).await);
        drop(call);
        // Not a second early...
        assert!(!resolves_within(idle.as_mut(), TIMEOUT - Duration::from_secs(1)).await);
        // ...and by 1.25x the timeout after the call ended.
        assert!(resolves_within(idle, TIMEOUT / 4 + Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn short_calls_between_checks_count_as_activity() {
        let calls = Arc::new(ConnectionCalls::default());
        let idle = Arc::clone(&calls).idle_for(TIMEOUT);
        tokio::pin!(idle);
        // A call that starts and ends between two checks, every 20 s: never idle.
        for _ in 0..20 {
            assert!(!resolves_within(idle.as_mut(), Duration::from_secs(20)).await);
            drop(calls.begin());
        }
        // Then none: idle within 1.25x the timeout.
        assert!(resolves_within(idle, TIMEOUT * 5 / 4 + Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_timeout_is_never() {
        let calls = Arc::new(ConnectionCalls::default());
        assert!(!resolves_within(Arc::clone(&calls).idle_for(Duration::ZERO), TIMEOUT * 100).await);
    }
}
