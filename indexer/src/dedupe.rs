//! Drops events whose id is already stored, so collector retries and crash replays never
//! produce a second copy.
//!
//! Two layers:
//! - a set of recent ids in memory, bounded by count (`dedupe_ids`, default 2 million). When
//!   it is full, the ids of the oldest event-time second go first, whatever order they came
//!   in, so a backlog arriving late does not push out the live flow's ids and the line below
//!   which memory cannot vouch stays as old as it can be. Each id costs its place in a hash
//!   set (17 bytes a slot; the table grows by doubling, so 4 Mi slots for 2 million ids) and
//!   16 bytes in its second's list: about 100 MiB at 2 million (measured);
//! - the index itself, asked by id (a term lookup) for events the memory cannot vouch for:
//!   those no newer than the newest event the index held when this process started (they
//!   may have been stored before a restart) or than the newest forgotten id, as long as they
//!   fall inside the look-back window (`dedupe_window`, default 24 h). Newer events cannot
//!   be copies of anything stored, so steady-state ingest never pays for a lookup; older
//!   events than the window are not checked, which bounds the work a replay storm can cause.

use std::collections::{BTreeMap, HashSet};

use shiplog_core::{EventId, Timestamp};

const SECOND: i64 = 1_000_000_000;

/// A bounded set of recently seen event ids, backed by index lookups.
#[derive(Debug)]
pub struct Dedupe {
    /// foldhash: seeded per process, so ids chosen by a client cannot be aimed at one
    /// bucket, and several times cheaper than SipHash on a 16-byte key.
    seen: HashSet<u128, foldhash::fast::RandomState>,
    /// The remembered ids by the second of their event time.
    by_second: BTreeMap<i64, Second>,
    /// Entries in `by_second`.
    listed: usize,
    capacity: usize,
    window_nanos: i64,
    /// Events with `ts` up to this may have been stored by an earlier process.
    stored_through: i64,
    /// Memory no longer vouches for events with `ts` up to this.
    forgotten_through: i64,
}

/// The ids remembered for one second of event time.
#[derive(Debug, Default)]
struct Second {
    ids: Vec<u128>,
    /// The newest event time among them, the line memory stops vouching for when they go.
    newest: i64,
}

impl Dedupe {
    /// A set that remembers at most `capacity` ids and looks back `window_nanos` in the
    /// index for events no newer than `stored_through` (the newest event already stored at
    /// start, if any).
    pub fn new(capacity: usize, window_nanos: i64, stored_through: Option<Timestamp>) -> Self {
        Dedupe {
            seen: HashSet::default(),
            by_second: BTreeMap::new(),
            listed: 0,
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
        let t = ts.as_nanos();
        // Decided before remembering: remembering can forget this very second.
        let memory_vouches = t > self.stored_through && t > self.forgotten_through;
        // Remembered either way: as new, or as found in the index.
        if !self.remember(id, t) {
            return Ok(false);
        }
        if memory_vouches {
            return Ok(true);
        }
        let in_window = t > Timestamp::now()
            .as_nanos()
            .saturating_sub(self.window_nanos);
        if in_window && stored()? {
            return Ok(false);
        }
        Ok(true)
    }

    /// Records an id as stored without asking anything.
    pub fn insert(&mut self, id: EventId, ts: Timestamp) -> bool {
        self.remember(id, ts.as_nanos())
    }

    /// Adds the id; false if it was already there.
    fn remember(&mut self, id: EventId, t: i64) -> bool {
        if !self.seen.insert(id.0) {
            return false;
        }
        let second = self
            .by_second
            .entry(t.div_euclid(SECOND))
            .or_insert_with(|| Second {
                ids: Vec::new(),
                newest: t,
            });
        second.ids.push(id.0);
        second.newest = second.newest.max(t);
        self.listed += 1;
        // Whole seconds go at once, so the set can sit below its capacity by up to one
        // second's ids; never above it.
        while self.listed > self.capacity {
            let Some((_, gone)) = self.by_second.pop_first() else {
                break;
            };
            for old in &gone.ids {
                self.seen.remove(old);
            }
            self.listed -= gone.ids.len();
            self.forgotten_through = self.forgotten_through.max(gone.newest);
        }
        true
    }

    /// Forgets ids with their event times, for batches that could not be made durable.
    ///
    /// Each leaves the list of its second too: listed there, it would be dropped from the
    /// set with that second even after coming again with another time (a client that
    /// chooses its ids), and memory would then vouch for an id the index holds.
    pub fn forget(&mut self, events: impl IntoIterator<Item = (EventId, Timestamp)>) {
        let mut by_second: BTreeMap<i64, HashSet<u128>> = BTreeMap::new();
        for (id, ts) in events {
            if self.seen.remove(&id.0) {
                by_second
                    .entry(ts.as_nanos().div_euclid(SECOND))
                    .or_default()
                    .insert(id.0);
            }
        }
        for (second, ids) in by_second {
            let Some(listed) = self.by_second.get_mut(&second) else {
                continue;
            };
            let before = listed.ids.len();
            listed.ids.retain(|id| !ids.contains(id));
            self.listed -= before - listed.ids.len();
            if listed.ids.is_empty() {
                self.by_second.remove(&second);
            }
        }
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
                d.check_new(EventId(i), future.offset(i as i64 * SECOND), never)
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
    fn a_forgotten_id_that_comes_again_with_another_time_stays_known() {
        let mut d = Dedupe::new(3, DAY, None);
        let t = Timestamp::now().offset(DAY / 2);
        assert!(d.check_new(EventId(7), t, never).unwrap());
        assert!(d.check_new(EventId(8), t, never).unwrap());
        // The batch was not made durable; the client sends id 7 again, a minute later.
        d.forget([(EventId(7), t)]);
        assert_eq!(d.len(), 1);
        let later = t.offset(60 * SECOND);
        assert!(d.check_new(EventId(7), later, never).unwrap());
        // Filling memory drops the first second (id 8's): id 7 is remembered at its new time.
        for i in 0..2 {
            assert!(
                d.check_new(
                    EventId(100 + i),
                    later.offset((i as i64 + 1) * SECOND),
                    never
                )
                .unwrap()
            );
        }
        assert!(!d.check_new(EventId(7), later, never).unwrap());
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_late_backlog_goes_before_the_live_flow_and_is_not_looked_up_in_order() {
        let mut d = Dedupe::new(100, DAY, None);
        let now = Timestamp::now();
        for i in 0..100 {
            assert!(
                d.check_new(EventId(i), now.offset(i as i64 * 10_000_000), never)
                    .unwrap()
            );
        }
        // A backlog from an hour ago, oldest first: each of its seconds is the oldest in
        // memory and goes first, and the next backlog event is newer than what went, so
        // the index is never asked.
        let hour_ago = now.offset(-3600 * SECOND);
        for i in 0..500 {
            let id = EventId(1_000 + i as u128);
            assert!(
                d.check_new(id, hour_ago.offset(i * SECOND / 10), never)
                    .unwrap()
            );
            assert!(d.len() <= 100);
        }
        for i in 0..100 {
            assert!(
                !d.check_new(EventId(i), now.offset(i as i64 * 10_000_000), never)
                    .unwrap(),
                "the live flow's ids are all still remembered"
            );
        }
        // A copy of a backlog event that went is older than what memory vouches for.
        assert!(
            !d.check_new(EventId(1_000), hour_ago, || Ok::<_, ()>(true))
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
