//! How many requests may be sent to the store a second time: a share of the calls, as
//! the retry budgets of Finagle and linkerd.
//!
//! The gateway retries only a request the store provably never processed (`upstream.rs`),
//! once. That is what a rolling restart looks like, and callers should not see it. But a
//! store that sheds load by refusing streams (`REFUSED_STREAM`) refuses the retries too:
//! without a budget, every refused call would be sent twice, doubling the load on a store
//! that is already shedding. With it, retries stay within [`RATIO_PERCENT`] of calls
//! (plus [`MIN_PER_SECOND`], so a quiet gateway can still ride out a restart), and a
//! burst is bounded by [`MAX_BALANCE`].
//!
//! Plain data with no clock of its own: the caller passes the time, so tests drive it.
use std::time::Instant;

/// Retries earned per 100 calls.
pub(crate) const RATIO_PERCENT: u64 = 20;
/// Retries allowed per second whatever the calls, for a gateway with little traffic.
pub(crate) const MIN_PER_SECOND: u64 = 10;
/// Most retries saved up: what one restart of the store can cost (every stream its GOAWAY
/// excluded is retried), without letting a long quiet spell buy a retry storm.
pub(crate) const MAX_BALANCE: u64 = 200;

/// Thousandths of a retry, so that a call can earn a fraction of one.
const MILLI: u64 = 1000;

/// One serving thread's retry budget (each thread has its own, so a call never touches
/// another thread's memory for it).
#[derive(Debug)]
pub(crate) struct RetryBudget {
    /// In thousandths of a retry.
    balance: u64,
    /// When the per-second allowance was last added.
    refilled_at: Instant,
}

impl RetryBudget {
    /// A budget holding one second's allowance.
    pub(crate) fn new(now: Instant) -> RetryBudget {
        RetryBudget {
            balance: MIN_PER_SECOND * MILLI,
            refilled_at: now,
        }
    }

    /// A call was sent: it earns its share of a retry.
    pub(crate) fn deposit(&mut self) {
        self.balance = (self.balance + RATIO_PERCENT * MILLI / 100).min(MAX_BALANCE * MILLI);
    }

    /// Takes one retry if the budget has it.
    pub(crate) fn withdraw(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        // MIN_PER_SECOND retries a second is MIN_PER_SECOND thousandths a millisecond.
        let allowance = u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(MIN_PER_SECOND);
        if allowance > 0 {
            self.balance = self
                .balance
                .saturating_add(allowance)
                .min(MAX_BALANCE * MILLI);
            self.refilled_at = now;
        }
        if self.balance < MILLI {
            return false;
        }
        self.balance -= MILLI;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Retries taken in a row at `now`.
    fn drain(budget: &mut RetryBudget, now: Instant) -> u64 {
        let mut n = 0;
        while budget.withdraw(now) {
            n += 1;
        }
        n
    }

    #[test]
    fn a_new_budget_holds_one_second_of_allowance() {
        let now = Instant::now();
        assert_eq!(drain(&mut RetryBudget::new(now), now), MIN_PER_SECOND);
    }

    #[test]
    fn retries_are_a_fifth_of_calls_when_every_call_fails() {
        // A store refusing every stream: 1,000 calls within the same instant earn 200
        // retries; without the budget, each of the 1,000 would be retried.
        let now = Instant::now();
        let mut budget = RetryBudget::new(now);
        drain(&mut budget, now);
        let mut retries = 0;
        for _ in 0..1000 {
            budget.deposit();
            retries += u64::from(budget.withdraw(now));
        }
        assert_eq!(retries, 1000 * RATIO_PERCENT / 100);
    }

    #[test]
    fn a_quiet_gateway_still_gets_its_allowance_per_second() {
        let start = Instant::now();
        let mut budget = RetryBudget::new(start);
        drain(&mut budget, start);
        assert!(!budget.withdraw(start));
        let later = start + Duration::from_millis(500);
        assert_eq!(drain(&mut budget, later), MIN_PER_SECOND / 2);
    }

    #[test]
    fn savings_are_capped() {
        let start = Instant::now();
        let mut budget = RetryBudget::new(start);
        for _ in 0..1_000_000 {
            budget.deposit();
        }
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(drain(&mut budget, much_later), MAX_BALANCE);
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut budget = RetryBudget::new(start);
        drain(&mut budget, start);
        assert!(!budget.withdraw(start - Duration::from_secs(5)));
    }
}
