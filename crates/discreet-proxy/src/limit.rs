//! The adaptive concurrency limit: how many calls may run at once so that admitted calls
//! keep close to their no-load latency. Plain data and arithmetic, no clock and no I/O;
//! `admission.rs` feeds it latency samples and reads the limit.
//!
//! A fixed limit cannot be right: 512 calls in flight on a two-core pod queue for tens of
//! milliseconds each, while 16 might idle a large one. This follows Envoy's adaptive
//! concurrency filter (the gradient controller), which is the design platform teams know:
//!
//! - the **no-load latency** (`min_rtt`) is measured with the limit pinned to `min_limit`
//!   for `probe_samples` calls, at start and every `probe_interval` after (latency rises
//!   under load, so it can only be observed at low concurrency; re-measuring follows a
//!   store that became slower for good);
//! - every `window`, the window's p90 latency gives the gradient
//!   `min_rtt * (1 + buffer) / p90`, clamped to 0.5..=2, and `limit = gradient * limit`,
//!   plus `sqrt(limit)` of headroom for bursts while latency is within the buffer: the
//!   limit shrinks while latency is above the no-load latency plus its buffer and grows
//!   while it is below (Envoy adds the headroom always, which holds latency above the
//!   buffer at small limits, where the sidecar of a small store lives);
//! - the limit grows only while it is in use (some window had at least half of it in
//!   flight): an idle gateway must not drift to `max_limit` and then let a sudden spike in.
use std::time::{Duration, Instant};

/// The controller's settings (from `limits.adaptive_concurrency`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LimitSettings {
    /// Lowest limit, and the limit while the no-load latency is measured.
    pub(crate) min_limit: usize,
    /// Highest limit (`limits.max_concurrent_calls`).
    pub(crate) max_limit: usize,
    /// Latency allowed above the no-load latency, as a fraction (0.25: 25%).
    pub(crate) buffer: f64,
    /// How often the limit is recomputed from the latest samples.
    pub(crate) window: Duration,
    /// Samples needed before a window counts (fewer: the window is extended).
    pub(crate) window_samples: usize,
    /// Calls measured, at `min_limit`, for the no-load latency.
    pub(crate) probe_samples: usize,
    /// How often the no-load latency is measured again.
    pub(crate) probe_interval: Duration,
}

impl LimitSettings {
    /// Defaults for everything but the bounds and the buffer.
    pub(crate) fn new(min_limit: usize, max_limit: usize, buffer: f64) -> LimitSettings {
        LimitSettings {
            // The ceiling wins over the floor.
            min_limit: min_limit.clamp(1, max_limit.max(1)),
            max_limit: max_limit.max(1),
            buffer: buffer.max(0.0),
            window: Duration::from_millis(100),
            window_samples: 20,
            probe_samples: 25,
            probe_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
enum Phase {
    /// Measuring the no-load latency at `min_limit` since `since`; `resume` is the limit
    /// to go back to.
    Probing { resume: f64, since: Option<Instant> },
    /// Adjusting the limit every window until `next_probe`.
    Steady {
        window_start: Instant,
        next_probe: Instant,
    },
}

/// The current limit and what it is computed from.
#[derive(Debug)]
pub(crate) struct AdaptiveLimit {
    settings: LimitSettings,
    limit: f64,
    min_rtt_us: Option<u64>,
    phase: Phase,
    samples: Vec<u64>,
    /// Most calls in flight seen in the current window.
    peak_in_flight: usize,
}

impl AdaptiveLimit {
    /// Starts by measuring the no-load latency, then grows from `min_limit`.
    pub(crate) fn new(settings: LimitSettings) -> AdaptiveLimit {
        AdaptiveLimit {
            settings,
            limit: settings.min_limit as f64,
            min_rtt_us: None,
            phase: Phase::Probing {
                resume: settings.min_limit as f64,
                since: None,
            },
            samples: Vec::with_capacity(settings.window_samples.max(settings.probe_samples)),
            peak_in_flight: 0,
        }
    }

    /// Calls that may be in flight now.
    pub(crate) fn limit(&self) -> usize {
        match self.phase {
            Phase::Probing { .. } => self.settings.min_limit,
            Phase::Steady { .. } => {
                // In range by construction; the cast only drops the fraction.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let limit = self.limit as usize;
                limit.clamp(self.settings.min_limit, self.settings.max_limit)
            }
        }
    }

    /// The measured no-load latency, once there is one.
    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt_us.map(Duration::from_micros)
    }

    /// One admitted call finished in `rtt`, with `in_flight` calls running when it was
    /// admitted. Returns the new limit when it changed.
    pub(crate) fn record(
        &mut self,
        rtt: Duration,
        in_flight: usize,
        now: Instant,
    ) -> Option<usize> {
        let before = self.limit();
        if let Phase::Probing {
            since: Some(since), ..
        } = self.phase
            && now.checked_sub(rtt).is_none_or(|admitted| admitted < since)
        {
            // Admitted under the previous, higher limit: it queued with more calls than the
            // probe allows, so its latency is not the no-load latency.
            return None;
        }
        self.samples
            .push(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX));
        self.peak_in_flight = self.peak_in_flight.max(in_flight);
        match self.phase {
            Phase::Probing { resume, .. } => {
                if self.samples.len() >= self.settings.probe_samples {
                    self.min_rtt_us = Some(percentile(&mut self.samples, 50).max(1));
                    self.limit = resume;
                    self.start_window(now, Some(now + self.settings.probe_interval));
                }
            }
            Phase::Steady {
                window_start,
                next_probe,
            } => {
                if now.duration_since(window_start) >= self.settings.window
                    && self.samples.len() >= self.settings.window_samples
                {
                    self.adjust();
                    if now >= next_probe {
                        self.phase = Phase::Probing {
                            resume: self.limit,
                            since: Some(now),
                        };
                        self.samples.clear();
                        self.peak_in_flight = 0;
                    } else {
                        self.start_window(now, None);
                    }
                }
            }
        }
        let after = self.limit();
        (after != before).then_some(after)
    }

    fn adjust(&mut self) {
        let Some(min_rtt) = self.min_rtt_us else {
            return;
        };
        let p90 = percentile(&mut self.samples, 90).max(1);
        #[allow(clippy::cast_precision_loss)]
        let gradient =
            ((min_rtt as f64 * (1.0 + self.settings.buffer)) / p90 as f64).clamp(0.5, 2.0);
        // Headroom (sqrt of the limit, for bursts) only while latency is within the
        // buffer: added when over it too, it would hold latency above the buffer for good
        // (at equilibrium `gradient = 1 - sqrt(limit) / limit`, 2x the buffer at limit 4).
        let mut next = gradient * self.limit;
        if gradient >= 1.0 {
            next += next.sqrt();
        }
        // Growing needs evidence that the current limit is used: an idle or lightly used
        // gateway keeps its limit instead of drifting up to the maximum.
        #[allow(clippy::cast_precision_loss)]
        let used = self.peak_in_flight as f64 >= self.limit / 2.0;
        if next > self.limit && !used {
            next = self.limit;
        }
        #[allow(clippy::cast_precision_loss)]
        let (lo, hi) = (
            self.settings.min_limit as f64,
            self.settings.max_limit as f64,
        );
        self.limit = next.clamp(lo, hi);
    }

    fn start_window(&mut self, now: Instant, next_probe: Option<Instant>) {
        let next_probe = match (next_probe, &self.phase) {
            (Some(at), _) => at,
            (None, Phase::Steady { next_probe, .. }) => *next_probe,
            (None, Phase::Probing { .. }) => now + self.settings.probe_interval,
        };
        self.phase = Phase::Steady {
            window_start: now,
            next_probe,
        };
        self.samples.clear();
        self.peak_in_flight = 0;
    }
}

/// The `p`th percentile (nearest rank) of `samples`, reordering them.
fn percentile(samples: &mut [u64], p: usize) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let rank = (samples.len() * p).div_ceil(100).clamp(1, samples.len()) - 1;
    *samples.select_nth_unstable(rank).1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `n` samples of `rtt` at `in_flight`, 1 ms apart; returns the clock.
    fn feed(
        limit: &mut AdaptiveLimit,
        now: Instant,
        n: usize,
        rtt: Duration,
        in_flight: usize,
    ) -> Instant {
        let mut t = now;
        for _ in 0..n {
            t += MS;
            limit.record(rtt, in_flight, t);
        }
        t
    }

    fn settings() -> LimitSettings {
        LimitSettings::new(4, 512, 0.25)
    }

    #[test]
    fn starts_at_the_minimum_and_measures_the_no_load_latency() {
        let mut l = AdaptiveLimit::new(settings());
        assert_eq!(l.limit(), 4);
        assert_eq!(l.min_rtt(), None);
        feed(&mut l, Instant::now(), 25, 2 * MS, 4);
        assert_eq!(l.min_rtt(), Some(2 * MS));
        assert_eq!(l.limit(), 4);
    }

    #[test]
    fn grows_while_latency_stays_low_and_the_limit_is_used() {
        let mut l = AdaptiveLimit::new(settings());
        let mut t = feed(&mut l, Instant::now(), 25, 2 * MS, 4);
        let mut last = l.limit();
        // At the no-load latency the gradient is 1 + buffer (1.25): 4 to 512 in ~20 windows.
        for _ in 0..25 {
            let in_flight = l.limit();
            t = feed(&mut l, t, 100, 2 * MS, in_flight);
            assert!(l.limit() >= last, "{} < {last}", l.limit());
            last = l.limit();
        }
        assert_eq!(l.limit(), 512, "growth with headroom reaches the maximum");
    }

    #[test]
    fn does_not_grow_while_idle() {
        let mut l = AdaptiveLimit::new(settings());
        let t = feed(&mut l, Instant::now(), 25, 2 * MS, 1);
        feed(&mut l, t, 1000, 2 * MS, 1);
        assert_eq!(
            l.limit(),
            4,
            "one call at a time is no evidence a larger limit is needed"
        );
    }

    #[test]
    fn shrinks_when_latency_rises_and_holds_near_the_buffer() {
        let mut l = AdaptiveLimit::new(settings());
        let mut t = feed(&mut l, Instant::now(), 25, 2 * MS, 4);
        for _ in 0..25 {
            let in_flight = l.limit();
            t = feed(&mut l, t, 100, 2 * MS, in_flight);
        }
        assert_eq!(l.limit(), 512);
        // Queueing: latency is four times the no-load latency.
        for _ in 0..5 {
            t = feed(&mut l, t, 100, 8 * MS, 512);
        }
        assert!(l.limit() < 512 / 8, "halves each window: {}", l.limit());
        // Latency exactly at the allowed buffer: gradient 1, only the headroom is added,
        // so the limit creeps but does not jump.
        let before = l.limit();
        feed(&mut l, t, 100, Duration::from_micros(2500), before);
        assert!(
            l.limit() <= before + before.isqrt() + 1,
            "{} from {before}",
            l.limit()
        );
    }

    #[test]
    fn never_leaves_its_bounds() {
        let mut l = AdaptiveLimit::new(LimitSettings::new(3, 10, 0.25));
        let mut t = feed(&mut l, Instant::now(), 25, 5 * MS, 3);
        for round in 0..50 {
            let rtt = if round % 2 == 0 { MS } else { 100 * MS };
            t = feed(&mut l, t, 100, rtt, 10);
            assert!((3..=10).contains(&l.limit()), "{}", l.limit());
        }
    }

    #[test]
    fn measures_again_after_the_probe_interval() {
        let mut s = settings();
        s.probe_interval = Duration::from_secs(1);
        let mut l = AdaptiveLimit::new(s);
        let mut t = feed(&mut l, Instant::now(), 25, 2 * MS, 4);
        for _ in 0..5 {
            let in_flight = l.limit();
            t = feed(&mut l, t, 100, 2 * MS, in_flight);
        }
        let grown = l.limit();
        assert!(grown > 4);
        // The store became slower for good: after the next probe the new no-load latency
        // is the baseline, and the limit resumes from where it was.
        t += Duration::from_secs(1);
        let mut fed = 0;
        while l.limit() != 4 {
            t = feed(&mut l, t, 1, 6 * MS, grown);
            fed += 1;
            assert!(fed < 200, "never went back to probing");
        }
        // Calls admitted before the probe, under the higher limit, finish slowly; they
        // are not the no-load latency and are left out.
        t = feed(&mut l, t, 20, 500 * MS, grown);
        t += 10 * MS;
        feed(&mut l, t, 25, 6 * MS, 4);
        assert_eq!(l.min_rtt(), Some(6 * MS));
        assert!(
            l.limit() >= grown / 2,
            "resumed near {grown}: {}",
            l.limit()
        );
    }

    #[test]
    fn a_window_needs_enough_samples() {
        let mut l = AdaptiveLimit::new(settings());
        let t = feed(&mut l, Instant::now(), 25, 2 * MS, 4);
        // Five slow samples over a long time do not make a window.
        let mut u = t;
        for _ in 0..5 {
            u += Duration::from_secs(1);
            assert_eq!(l.record(50 * MS, 4, u), None);
        }
        assert_eq!(l.limit(), 4);
    }
}
