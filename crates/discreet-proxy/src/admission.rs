//! Admission: whether a call may start now. Over the limit it is refused
//! (`RESOURCE_EXHAUSTED`) quickly: a long queue would only add latency to every call behind
//! it, and callers with deadlines are better served by a fast refusal they can retry
//! elsewhere or later. With the adaptive limit a call may wait for a place, but no longer
//! than one no-load call takes (the measured `min_rtt`; 1 ms until measured): enough to
//! absorb a burst that arrives faster than a small limit turns over, too short to matter
//! for the latency of admitted calls. No more calls wait than there are places; the rest
//! are refused at once, as they are by a fixed limit and by a full ceiling.
//!
//! Two counts are held to two limits:
//! - every call in flight, to `limits.max_concurrent_calls` (the ceiling);
//! - calls *at work*, to what [`AdaptiveLimit`] computes from the latency of completed
//!   unary calls (with `limits.adaptive_concurrency` on; otherwise the ceiling
//!   again). A call is not at work while it waits for its caller to finish sending the
//!   request, or once it is a server stream whose response has begun: those waits are
//!   set by the caller or by the length of the stream, not by our load, and counting them
//!   would let three slow clients or three long streams hold a small adaptive limit and
//!   shed everyone else. They stay bounded by the ceiling.
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use discreet_telemetry::metrics::GatewayMetrics;

use crate::limit::{AdaptiveLimit, LimitSettings};

/// Calls in flight and the limit they are held to.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Every admitted call not yet finished.
    in_flight: AtomicUsize,
    ceiling: usize,
    /// Admitted calls at work (see the module documentation).
    at_work: AtomicUsize,
    /// The limit on `at_work`. Read on every call without the lock; written when the
    /// controller changes it.
    limit: AtomicUsize,
    adaptive: Option<Mutex<AdaptiveLimit>>,
    /// How long a call may wait for a place, in microseconds (0: refuse at once).
    max_wait_us: AtomicU64,
    /// Calls waiting for a place, at most the limit.
    waiting: AtomicUsize,
    /// Woken when a call stops being at work.
    released: Notify,
    metrics: Arc<GatewayMetrics>,
}

/// Until the no-load latency is measured, the longest wait for a place.
const INITIAL_MAX_WAIT: Duration = Duration::from_millis(1);

/// One admitted call's place; released when dropped (for a stream, when its response
/// body ends).
#[derive(Debug)]
pub(crate) struct AdmissionPermit {
    admission: Arc<Admission>,
    admitted_at: Instant,
    at_work_at_admission: usize,
    /// Whether this call counts in `at_work` now.
    at_work: AtomicBool,
    /// Time spent waiting on the caller (its request body), in microseconds: left out of
    /// the load sample, or a caller that sends slowly would shrink everyone's limit.
    caller_wait_us: AtomicU64,
    /// When a unary call completed normally (the store's trailers arrived): only those
    /// measure load, and only up to then (how fast the caller reads is not our load).
    completed_at: Option<Instant>,
    /// The call's place in its caller's share (`caller_share.rs`), held as long as this.
    caller_share: std::sync::OnceLock<crate::caller_share::CallerShare>,
}

/// While alive, the call is waiting on its caller and does not count as at work.
pub(crate) struct WaitingOnCaller<'a> {
    permit: &'a AdmissionPermit,
    since: Instant,
}

impl Admission {
    /// A fixed limit of `max`, or an adaptive one between `settings.min_limit` and `max`.
    pub(crate) fn new(
        max: usize,
        adaptive: Option<LimitSettings>,
        metrics: Arc<GatewayMetrics>,
    ) -> Arc<Admission> {
        let adaptive = adaptive.map(AdaptiveLimit::new);
        let limit = adaptive.as_ref().map_or(max, AdaptiveLimit::limit);
        metrics.concurrency_limit.set(gauge(limit));
        let max_wait = if adaptive.is_some() {
            INITIAL_MAX_WAIT
        } else {
            Duration::ZERO
        };
        Arc::new(Admission {
            in_flight: AtomicUsize::new(0),
            ceiling: max,
            at_work: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            adaptive: adaptive.map(Mutex::new),
            max_wait_us: AtomicU64::new(micros(max_wait)),
            waiting: AtomicUsize::new(0),
            released: Notify::new(),
            metrics,
        })
    }

    /// A place for one call, waiting at most the bounded wait for one; `None`: refuse.
    pub(crate) async fn admit(self: &Arc<Self>) -> Option<AdmissionPermit> {
        let max_wait = Duration::from_micros(self.max_wait_us.load(Ordering::Relaxed));
        match self.try_admit() {
            Ok(permit) => return Some(permit),
            Err(Full::Ceiling) => return None,
            Err(Full::Limit) if max_wait.is_zero() => return None,
            Err(Full::Limit) => {}
        }
        // No more waiters than places: within one no-load latency about `limit` places
        // turn over, so a waiter beyond that would most likely wait out the whole bound
        // and be refused anyway, having cost a timer and a wake-up. Under a flood, that is
        // nearly every call.
        let places = self.limit.load(Ordering::Relaxed);
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < places).then_some(n + 1)
            })
            .ok()?;
        let _waiting = Decrement(&self.waiting);
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            // Registered before the check, so a release between the two is not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.try_admit() {
                Ok(permit) => return Some(permit),
                Err(Full::Ceiling) => return None,
                Err(Full::Limit) => {}
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return self.try_admit().ok();
            }
        }
    }

    /// A place for one call now, or which limit is full.
    fn try_admit(self: &Arc<Self>) -> Result<AdmissionPermit, Full> {
        let limit = self.limit.load(Ordering::Relaxed);
        let before = self
            .at_work
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| Full::Limit)?;
        let ceiling = self.ceiling;
        if self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < ceiling).then_some(n + 1)
            })
            .is_err()
        {
            self.at_work.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Ceiling);
        }
        Ok(AdmissionPermit {
            admission: Arc::clone(self),
            admitted_at: Instant::now(),
            at_work_at_admission: before + 1,
            at_work: AtomicBool::new(true),
            caller_wait_us: AtomicU64::new(0),
            completed_at: None,
            caller_share: std::sync::OnceLock::new(),
        })
    }

    fn release(&self, permit: &AdmissionPermit) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if permit.at_work.swap(false, Ordering::AcqRel) {
            self.at_work.fetch_sub(1, Ordering::AcqRel);
        }
        self.released.notify_one();
        let (Some(adaptive), Some(completed_at)) = (self.adaptive.as_ref(), permit.completed_at)
        else {
            return;
        };
        let caller_wait = Duration::from_micros(permit.caller_wait_us.load(Ordering::Acquire));
        let rtt = completed_at
            .saturating_duration_since(permit.admitted_at)
            .saturating_sub(caller_wait);
        let now = Instant::now();
        // A poisoned lock means a panic inside the controller's arithmetic; keep the last
        // limit rather than take the gateway down.
        let Ok(mut limit) = adaptive.lock() else {
            return;
        };
        let changed = limit.record(rtt, permit.at_work_at_admission, now);
        if let Some(changed) = changed {
            self.limit.store(changed, Ordering::Relaxed);
            self.metrics.concurrency_limit.set(gauge(changed));
            // More places: let waiters take them now rather than at their next wake-up.
            self.released.notify_waiters();
        }
        if let Some(min_rtt) = limit.min_rtt() {
            self.max_wait_us.store(micros(min_rtt), Ordering::Relaxed);
        }
    }
}

impl AdmissionPermit {
    /// The call was a unary call that completed normally: its latency so far is a load
    /// sample.
    pub(crate) fn completed(&mut self) {
        self.completed_at = Some(Instant::now());
    }

    /// Holds `share` for as long as this permit (a second share is dropped at once: a
    /// call takes one place in its caller's share).
    pub(crate) fn hold_caller_share(&self, share: crate::caller_share::CallerShare) {
        let _ = self.caller_share.set(share);
    }

    /// The call waits on its caller (the request body) until the guard is dropped.
    pub(crate) fn waiting_on_caller(&self) -> WaitingOnCaller<'_> {
        self.set_at_work(false);
        WaitingOnCaller {
            permit: self,
            since: Instant::now(),
        }
    }

    /// A server stream whose response has begun: no longer counted as at work.
    pub(crate) fn streaming(&self) {
        self.set_at_work(false);
    }

    fn set_at_work(&self, at_work: bool) {
        if self.at_work.swap(at_work, Ordering::AcqRel) != at_work {
            if at_work {
                self.admission.at_work.fetch_add(1, Ordering::AcqRel);
            } else {
                self.admission.at_work.fetch_sub(1, Ordering::AcqRel);
                self.admission.released.notify_one();
            }
        }
    }
}

impl Drop for WaitingOnCaller<'_> {
    fn drop(&mut self) {
        self.permit
            .caller_wait_us
            .fetch_add(micros(self.since.elapsed()), Ordering::AcqRel);
        // Back at work; not checked against the limit (the call was admitted once, and the
        // ceiling still bounds it), so the count may briefly exceed the limit.
        self.permit.set_at_work(true);
    }
}

impl Drop for AdmissionPermit {
    fn drop(&mut self) {
        self.admission.release(self);
    }
}

/// Which limit refused a call.
enum Full {
    /// The adaptive limit on calls at work: worth a short wait.
    Limit,
    /// `max_concurrent_calls`: refused at once.
    Ceiling,
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn metrics() -> Arc<GatewayMetrics> {
        Arc::new(GatewayMetrics::new("test-key"))
    }

    #[test]
    fn a_fixed_limit_admits_exactly_that_many() {
        let a = Admission::new(3, None, metrics());
        let held: Vec<_> = (0..3).map(|_| a.try_admit().ok().unwrap()).collect();
        assert!(a.try_admit().is_err());
        drop(held);
        assert!(a.try_admit().is_ok());
    }

    #[test]
    fn an_adaptive_limit_starts_at_its_minimum_and_reports_it() {
        let m = metrics();
        let a = Admission::new(512, Some(LimitSettings::new(4, 512, 0.25)), Arc::clone(&m));
        let held: Vec<_> = (0..4).map(|_| a.try_admit().ok().unwrap()).collect();
        assert!(a.try_admit().is_err(), "probing the no-load latency at 4");
        assert_eq!(m.concurrency_limit.get(), 4);
        drop(held);
        // Completed unary calls measure; after enough of them the limit may grow.
        for _ in 0..200 {
            let batch: Vec<_> = (0..4).filter_map(|_| a.try_admit().ok()).collect();
            for mut p in batch {
                p.completed();
            }
        }
        assert_eq!(
            a.in_flight.load(Ordering::Relaxed),
            0,
            "every permit released"
        );
        assert_eq!(a.at_work.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn calls_waiting_on_their_callers_hold_only_the_ceiling() {
        let a = Admission::new(6, Some(LimitSettings::new(2, 6, 0.25)), metrics());
        let admit = || a.try_admit().ok().unwrap();
        // Two slow senders: while they wait on their request bodies, others are admitted.
        let slow: Vec<_> = (0..2).map(|_| admit()).collect();
        assert!(
            a.try_admit().is_err(),
            "both at work: the adaptive limit (2) is full"
        );
        let waits: Vec<_> = slow
            .iter()
            .map(AdmissionPermit::waiting_on_caller)
            .collect();
        let busy: Vec<_> = (0..2).map(|_| admit()).collect();
        assert!(a.try_admit().is_err());
        // Long streams likewise; the ceiling (6) still bounds everything.
        busy.iter().for_each(AdmissionPermit::streaming);
        let more: Vec<_> = (0..2).map(|_| admit()).collect();
        more.iter().for_each(AdmissionPermit::streaming);
        assert!(
            matches!(a.try_admit(), Err(Full::Ceiling)),
            "six in flight: the ceiling"
        );
        drop(waits);
        assert_eq!(
            a.at_work.load(Ordering::Relaxed),
            2,
            "the slow senders are back at work"
        );
        drop((slow, busy, more));
        assert_eq!(a.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(a.at_work.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn time_waiting_on_the_caller_is_not_a_load_sample() {
        let a = Admission::new(8, Some(LimitSettings::new(1, 8, 0.25)), metrics());
        // The 25 calls that measure the no-load latency each wait 10 ms for a slow caller.
        for _ in 0..25 {
            let mut permit = a.try_admit().ok().unwrap();
            drop(permit.waiting_on_caller());
            {
                let _slow = permit.waiting_on_caller();
                std::thread::sleep(Duration::from_millis(10));
            }
            permit.completed();
        }
        let min_rtt = a
            .adaptive
            .as_ref()
            .unwrap()
            .lock()
            .unwrap()
            .min_rtt()
            .unwrap();
        assert!(
            min_rtt < Duration::from_millis(10),
            "the caller's 10 ms counted as load: {min_rtt:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waits_briefly_for_a_place_and_no_longer() {
        let a = Admission::new(8, Some(LimitSettings::new(1, 8, 0.25)), metrics());
        let first = a.admit().await.unwrap();
        // The place frees within the wait (1 ms before the no-load latency is known).
        let waiter = tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.admit().await.is_some() }
        });
        tokio::time::sleep(Duration::from_micros(300)).await;
        drop(first);
        assert!(waiter.await.unwrap(), "admitted when the place freed");
        // Nobody frees the place: refused once the wait is over.
        let _held = a.admit().await.unwrap();
        let start = tokio::time::Instant::now();
        assert!(a.admit().await.is_none());
        assert_eq!(start.elapsed(), INITIAL_MAX_WAIT);
        assert_eq!(a.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_calls_wait_than_there_are_places() {
        // While the no-load latency is measured the limit is `min_limit`: 1, then 2 places.
        for places in [1, 2] {
            let a = Admission::new(8, Some(LimitSettings::new(places, 8, 0.25)), metrics());
            let mut held = Vec::new();
            for _ in 0..places {
                held.push(a.admit().await.unwrap());
            }
            let waiters: Vec<_> = (0..places)
                .map(|_| {
                    let a = Arc::clone(&a);
                    tokio::spawn(async move { a.admit().await.is_some() })
                })
                .collect();
            tokio::task::yield_now().await;
            assert_eq!(a.waiting.load(Ordering::Relaxed), places, "one per place");
            let start = tokio::time::Instant::now();
            assert!(a.admit().await.is_none(), "one more is refused");
            assert_eq!(start.elapsed(), Duration::ZERO, "at once, not after a wait");
            for waiter in waiters {
                assert!(!waiter.await.unwrap(), "nobody freed a place");
            }
            assert_eq!(
                a.waiting.load(Ordering::Relaxed),
                0,
                "no waiter left counted"
            );
            drop(held);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_limit_refuses_at_once() {
        let a = Admission::new(1, None, metrics());
        let _held = a.admit().await.unwrap();
        let start = tokio::time::Instant::now();
        assert!(a.admit().await.is_none());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
