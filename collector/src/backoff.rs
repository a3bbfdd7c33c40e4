//! Capped exponential backoff with optional jitter, shared by the sink retry loop and the
//! Docker reconnect loop.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// Delays that double from `initial` up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    jitter: bool,
    rng: u64,
}

impl Backoff {
    /// Backoff without jitter: `initial`, `2 * initial`, ... capped at `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        debug_assert!(initial <= max, "backoff initial delay exceeds its cap");
        Backoff {
            initial,
            max,
            current: initial,
            jitter: false,
            rng: RandomState::new().hash_one(0u8) | 1,
        }
    }

    /// The same schedule with each delay drawn from `[d/2, d]`, so that many collectors
    /// retrying against one indexer do not hit it in lockstep.
    pub(crate) fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// The delay to wait now; the next call returns a longer one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        if !self.jitter {
            return base;
        }
        let half = base / 2;
        let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let extra = if spread == 0 {
            0
        } else {
            self.next_random() % spread
        };
        half + Duration::from_nanos(extra)
    }

    /// Starts again from the initial delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }

    /// xorshift64*: plenty for jitter, and no extra dependency.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let got: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_jitter();
        let mut expected = Duration::from_millis(100);
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d >= expected / 2 && d <= expected, "{d:?} vs {expected:?}");
            expected = (expected * 2).min(Duration::from_secs(10));
        }
    }
}
