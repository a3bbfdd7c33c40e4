//! Which event times a node accepts from outside: how many different days one batch may
//! touch, and optionally how far in the past or the future an event's time may lie.
//!
//! Every UTC day is an index of its own, and opening one costs a directory, a writer and a
//! commit. A batch whose events fall on thousands of different days would keep the single
//! writer busy for seconds and stall every other sender behind it, so one batch may touch at
//! most [`AcceptWindow::max_days`] days; lines of further days are refused with a reason
//! (one by one with `partial=true`). The collector cuts its batches at the same bound, so
//! its own batches are never refused. The time bounds are off by default: a node that
//! refuses old lines would lose a backlog read after a long outage.

use std::collections::HashSet;
use std::time::Duration;

use crate::timestamp::Timestamp;

/// The default for [`AcceptWindow::max_days`].
pub const DEFAULT_MAX_DAYS_PER_BATCH: usize = 32;

/// The bounds on event times in one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptWindow {
    /// Most different UTC days the events of one batch may fall on (at least 1).
    pub max_days: usize,
    /// Events older than this before the receive time are refused (`None`: no bound).
    pub max_past: Option<Duration>,
    /// Events further than this after the receive time are refused (`None`: no bound).
    pub max_future: Option<Duration>,
}

impl Default for AcceptWindow {
    fn default() -> Self {
        AcceptWindow {
            max_days: DEFAULT_MAX_DAYS_PER_BATCH,
            max_past: None,
            max_future: None,
        }
    }
}

impl AcceptWindow {
    /// No bound at all: for a node's own batches read back from its disk buffer, which the
    /// collector already cut at the day bound when it made them.
    pub const fn unbounded() -> Self {
        AcceptWindow {
            max_days: usize::MAX,
            max_past: None,
            max_future: None,
        }
    }

    /// A check for one batch received at `now`.
    pub fn start(&self, now: Timestamp) -> WindowCheck {
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        WindowCheck {
            earliest: self.max_past.map(|d| (now.offset(-nanos(d)), d)),
            latest: self.max_future.map(|d| (now.offset(nanos(d)), d)),
            max_days: self.max_days.max(1),
            days: HashSet::new(),
        }
    }
}

/// The running check of one batch: remembers the days its accepted events fall on.
#[derive(Debug, Clone)]
pub struct WindowCheck {
    earliest: Option<(Timestamp, Duration)>,
    latest: Option<(Timestamp, Duration)>,
    max_days: usize,
    days: HashSet<i64>,
}

impl WindowCheck {
    /// Accepts an event time, or says in words why it is refused. A refused time does not
    /// count towards the batch's days.
    pub fn check(&mut self, ts: Timestamp) -> Result<(), String> {
        if let Some((earliest, past)) = self.earliest
            && ts < earliest
        {
            return Err(format!(
                "ts {} is older than this node accepts ({} before the time it arrived, \
                 [api] accept_past); raise accept_past to load older lines",
                ts.to_rfc3339(),
                human(past)
            ));
        }
        if let Some((latest, future)) = self.latest
            && ts > latest
        {
            return Err(format!(
                "ts {} is more than {} ahead of this node's clock ([api] accept_future); \
                 check the sender's clock",
                ts.to_rfc3339(),
                human(future)
            ));
        }
        let day = ts.day_number();
        if !self.days.contains(&day) {
            if self.days.len() >= self.max_days {
                return Err(format!(
                    "ts {} falls on a day beyond the {} different days one batch may hold \
                     ([api] max_days_per_batch); send the events of other days in \
                     another batch",
                    ts.to_rfc3339(),
                    self.max_days
                ));
            }
            self.days.insert(day);
        }
        Ok(())
    }

    /// How many different days the accepted times fall on so far.
    pub fn days(&self) -> usize {
        self.days.len()
    }
}

/// A duration in the largest whole unit that states it exactly (`36h`, `7d`, `90s`).
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 || d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400 * 1_000_000_000;

    fn at_day(n: i64) -> Timestamp {
        Timestamp(n * DAY + 3_600 * 1_000_000_000)
    }

    #[test]
    fn a_batch_may_touch_at_most_max_days_and_refused_days_do_not_count() {
        let window = AcceptWindow {
            max_days: 3,
            ..AcceptWindow::default()
        };
        let mut check = window.start(at_day(20_000));
        for d in [1, 2, 1, 3, 2] {
            assert!(check.check(at_day(d)).is_ok(), "day {d}");
        }
        let refused = check.check(at_day(4)).unwrap_err();
        assert!(refused.contains("3 different days"), "{refused}");
        assert!(refused.contains("max_days_per_batch"), "{refused}");
        // Days already held stay open after a refusal.
        assert!(check.check(at_day(3)).is_ok());
        assert_eq!(check.days(), 3);
    }

    #[test]
    fn past_and_future_bounds_name_the_setting_and_the_time() {
        let now = at_day(20_000);
        let window = AcceptWindow {
            max_days: 100,
            max_past: Some(Duration::from_secs(7 * 86_400)),
            max_future: Some(Duration::from_secs(3_600)),
        };
        let mut check = window.start(now);
        assert!(check.check(now.offset(-6 * DAY)).is_ok());
        let old = check.check(now.offset(-8 * DAY)).unwrap_err();
        assert!(old.contains("accept_past") && old.contains("7d"), "{old}");
        assert!(check.check(now.offset(DAY / 48)).is_ok());
        let ahead = check.check(now.offset(DAY)).unwrap_err();
        assert!(
            ahead.contains("accept_future") && ahead.contains("1h"),
            "{ahead}"
        );
        assert!(ahead.contains(&now.offset(DAY).to_rfc3339()), "{ahead}");
    }

    #[test]
    fn unbounded_by_default_in_time_and_a_zero_day_bound_still_admits_one_day() {
        let mut check = AcceptWindow::default().start(at_day(20_000));
        assert!(check.check(Timestamp(1)).is_ok());
        assert!(check.check(Timestamp(i64::MAX)).is_ok());
        let mut one = AcceptWindow {
            max_days: 0,
            ..AcceptWindow::default()
        }
        .start(at_day(1));
        assert!(one.check(at_day(5)).is_ok());
        assert!(one.check(at_day(6)).is_err());
    }
}
