//! A caller's share of the gateway: at most `limits.max_calls_per_caller` calls of one
//! caller (`namespace/serviceaccount`) in flight at once.
//!
//! Admission (`admission.rs`) bounds every call together, before anyone is identified, so
//! one caller that floods takes the places of all the others. Once the caller is known
//! (step 3 of a read), a caller already at its share is refused `RESOURCE_EXHAUSTED`
//! while the others keep their places. The share is held as long as the admission place
//! (for a stream, until its response ends).
//!
//! One map for all serving threads, touched twice per call under an uncontended lock,
//! only when the limit is configured; it holds an entry per caller with a call in flight,
//! so never more entries than calls in flight.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Calls in flight per caller, and the most one caller may have.
#[derive(Debug)]
pub(crate) struct CallerShares {
    max: usize,
    in_flight: Mutex<HashMap<Arc<str>, usize>>,
}

/// One call's place in its caller's share; given back when dropped.
#[derive(Debug)]
pub(crate) struct CallerShare {
    shares: Arc<CallerShares>,
    caller: Arc<str>,
}

impl CallerShares {
    /// `None` for 0: no per-caller limit.
    pub(crate) fn new(max: usize) -> Option<Arc<CallerShares>> {
        (max > 0).then(|| {
            Arc::new(CallerShares {
                max,
                in_flight: Mutex::new(HashMap::new()),
            })
        })
    }

    /// A place for one more call of `caller`, or `None` if it is at its share (or the
    /// lock is poisoned: refused rather than unbounded).
    pub(crate) fn take(self: &Arc<Self>, caller: &Arc<str>) -> Option<CallerShare> {
        let mut in_flight = self.in_flight.lock().ok()?;
        let held = in_flight.entry(Arc::clone(caller)).or_insert(0);
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(CallerShare {
            shares: Arc::clone(self),
            caller: Arc::clone(caller),
        })
    }

    #[cfg(test)]
    fn held(&self, caller: &str) -> usize {
        self.in_flight
            .lock()
            .map_or(0, |m| m.get(caller).copied().unwrap_or(0))
    }
}

impl Drop for CallerShare {
    fn drop(&mut self) {
        let Ok(mut in_flight) = self.shares.in_flight.lock() else {
            return;
        };
        if let Some(held) = in_flight.get_mut(&self.caller) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                in_flight.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_at_its_share_is_refused_and_others_are_not() {
        let shares = CallerShares::new(2).unwrap();
        let flooder: Arc<str> = Arc::from("shop/recommender");
        let polite: Arc<str> = Arc::from("risk/scorer");
        let held: Vec<_> = (0..2).map(|_| shares.take(&flooder).unwrap()).collect();
        assert!(
            shares.take(&flooder).is_none(),
            "a third call of the same caller"
        );
        let other = shares.take(&polite).unwrap();
        drop(held.into_iter().next());
        assert!(
            shares.take(&flooder).is_some(),
            "a place given back is taken again"
        );
        drop(other);
        assert_eq!(shares.held("risk/scorer"), 0);
    }

    #[test]
    fn callers_without_calls_leave_no_entry() {
        let shares = CallerShares::new(1).unwrap();
        for i in 0..1000 {
            drop(shares.take(&Arc::from(format!("ns/caller-{i}"))).unwrap());
        }
        assert!(shares.in_flight.lock().unwrap().is_empty());
        assert!(CallerShares::new(0).is_none(), "0: no per-caller limit");
    }
}
