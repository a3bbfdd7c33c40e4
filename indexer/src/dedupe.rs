//! Drops events whose id is already stored, so collector retries and crash replays never
//! produce a second copy.
//!
//! Two layers:
//! - a set of recent ids in memory, bounded by count (`dedupe_ids`, default 2 million: about
//!   80 MiB with hash-set overhead); the oldest id is forgotten when it is full;
//! - the index itself, asked by id (a term lookup) for events the memory cannot vouch for:
//!   those no newer than the newest event the index held when this process started (they
//!   may have been stored before a restart) or than the newest forgotten id, as long as they
//!   fall inside the look-back window (`dedupe_window`, default 24 h). Newer events cannot
//!   be copies of anything stored, so steady-state ingest never pays for a lookup; older
//!   events than the window are not checked, which bounds the work a replay storm can cause.

use std::collections::{HashSet, VecDeque};

use shiplog_core::{EventId, Timestamp};

/// A bounded set of recently seen event ids, backed by index lookups.
#[derive(Debug)]
pub struct Dedupe {
    seen: HashSet<u128>,
    order: VecDeque<(u128, i64)>,
    capacity: usize,
    window_nanos: i64,
    /// Events with `ts` up to this may have been stored by an earlier process.
    stored_through: i64,
    /// Newest `ts` among forgotten ids.
    forgotten_through: i64,
}

impl Dedupe {
    /// A set that remembers at most `capacity` ids and looks back `window_nanos` in the
    /// index for events no newer than `stored_through` (the newest event already stored at
    /// start, if any).
    pub fn new(capacity: usize, window_nanos: i64, stored_through: Option<Timestamp>) -> Self {
        Dedupe {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            window_nanos,
            stored_through: stored_through.map_or(i64::MIN, Timestamp::as_nanos),
            forgotten_through: i64::MIN,
        }
    }

    /// Whether the event is new. `stored` asks the index; it is called only when memory
    /// cannot decide. A new id is remembered.
    pub fn check_new<E>(
        &mut self,
        id: EventId,
        ts: Timestamp,
        stored: impl FnOnce() -> Result<bool, E>,
    ) -> Result<bool, E> {
        if self.seen.contains(&id.0) {
            return Ok(false);
        }
        let t = ts.as_nanos();
        let in_window = t > Timestamp::now()
            .as_nanos()
            .saturating_sub(self.window_nanos);
        if in_window && (t <= self.stored_through || t <= self.forgotten_through) && stored()? {
            self.remember(id, t);
            return Ok(false);
        }
        self.remember(id, t);
        Ok(true)
    }

    /// Records an id as stored without asking anything.
    pub fn insert(&mut self, id: EventId, ts: Timestamp) -> bool {
        if self.seen.contains(&id.0) {
            return false;
        }
        self.remember(id, ts.as_nanos());
        true
    }

    fn remember(&mut self, id: EventId, t: i64) {
        if !self.seen.insert(id.0) {
            return;
        }
        self.order.push_back((id.0, t));
        if self.order.len() > self.capacity
            && let Some((old, old_ts)) = self.order.pop_front()
        {
            self.seen.remove(&old);
            self.forgotten_through = self.forgotten_through.max(old_ts);
        }
    }

    /// Forgets an id, for a batch that could not be made durable.
    pub fn forget(&mut self, id: EventId) {
        self.seen.remove(&id.0);
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400 * 1_000_000_000;

    fn never() -> Result<bool, ()> {
        panic!("the index must not be asked")
    }

    #[test]
    fn drops_repeats_and_stays_bounded() {
        let mut d = Dedupe::new(3, DAY, None);
        let future = Timestamp::now().offset(DAY / 2);
        assert!(d.check_new(EventId(1), future, never).unwrap());
        assert!(!d.check_new(EventId(1), future, never).unwrap());
        for i in 2..10 {
            assert!(
                d.check_new(EventId(i), future.offset(i as i64), never)
                    .unwrap()
            );
        }
        assert_eq!(d.len(), 3);
        // Id 1 was forgotten: memory cannot vouch for it any more, so the index is asked.
        assert!(
            !d.check_new(EventId(1), future, || Ok::<_, ()>(true))
                .unwrap()
        );
    }

    #[test]
    fn asks_the_index_for_events_no_newer_than_what_was_stored_within_the_window() {
        let mut d = Dedupe::new(100, DAY, Some(Timestamp::now()));
        let an_hour_ago = Timestamp::now().offset(-3600 * 1_000_000_000);
        assert!(
            !d.check_new(EventId(7), an_hour_ago, || Ok::<_, ()>(true))
                .unwrap()
        );
        assert!(
            d.check_new(EventId(8), an_hour_ago, || Ok::<_, ()>(false))
                .unwrap()
        );
        let last_week = Timestamp::now().offset(-7 * DAY);
        assert!(
            d.check_new(EventId(9), last_week, never).unwrap(),
            "outside the window: not asked"
        );
        let err = d
            .check_new(EventId(10), an_hour_ago, || Err("disk"))
            .unwrap_err();
        assert_eq!(err, "disk");
        let later = Timestamp::now().offset(1_000_000_000);
        assert!(
            d.check_new(EventId(11), later, never).unwrap(),
            "newer than anything stored: not asked"
        );
        let mut fresh = Dedupe::new(100, DAY, None);
        assert!(
            fresh.check_new(EventId(12), an_hour_ago, never).unwrap(),
            "an empty index is never asked"
        );
    }
}
