//! When a view asks the server again: every `every` while answers come, and after a lost
//! connection with a backoff that doubles from 0.5 s to 10 s, so a dead server is not
//! hammered and a revived one is noticed quickly. What is on screen stays meanwhile.

use std::time::{Duration, Instant};

/// First retry delay after a failed call.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The schedule of one periodic call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    every: Duration,
    next_at: Option<Instant>,
    failures: u32,
    in_flight: bool,
}

impl Refresh {
    /// Due at once, then every `every`.
    pub fn every(every: Duration) -> Self {
        Refresh {
            every,
            next_at: None,
            failures: 0,
            in_flight: false,
        }
    }

    /// Whether a call should start now; if so it is marked as in flight.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.in_flight || self.next_at.is_some_and(|t| now < t) {
            return false;
        }
        self.in_flight = true;
        true
    }

    /// Makes the next [`due`](Self::due) true at once (a new query, a key press).
    pub fn now(&mut self) {
        self.next_at = None;
        self.failures = 0;
    }

    /// Records an answer: next call after `every`.
    pub fn succeeded(&mut self, now: Instant) {
        self.in_flight = false;
        self.failures = 0;
        self.next_at = Some(now + self.every);
    }

    /// Records a failure; returns the delay before the next try.
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.in_flight = false;
        let delay = BACKOFF_MIN
            .saturating_mul(1u32 << self.failures.min(16))
            .min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        self.next_at = Some(now + delay);
        delay
    }

    /// Records an answer that says "not now": next call after `delay`.
    pub fn retry_in(&mut self, now: Instant, delay: Duration) {
        self.in_flight = false;
        self.next_at = Some(now + delay);
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_after_failures_and_resets_on_success() {
        let t = Instant::now();
        let mut r = Refresh::every(Duration::from_secs(5));
        assert!(r.due(t));
        assert!(!r.due(t), "one call at a time");
        assert_eq!(r.failed(t), Duration::from_millis(500));
        assert!(!r.due(t));
        assert!(r.due(t + Duration::from_millis(500)));
        assert_eq!(r.failed(t), Duration::from_secs(1));
        r.due(t + Duration::from_secs(1));
        r.failed(t);
        r.due(t + Duration::from_secs(2));
        for _ in 0..10 {
            r.failed(t);
            r.due(t + BACKOFF_MAX);
        }
        assert_eq!(r.failed(t), BACKOFF_MAX);
        r.due(t + BACKOFF_MAX);
        r.succeeded(t);
        assert_eq!(r.failures(), 0);
        assert!(!r.due(t + Duration::from_secs(4)));
        assert!(r.due(t + Duration::from_secs(5)));
        r.succeeded(t);
        r.now();
        assert!(r.due(t));
    }
}
