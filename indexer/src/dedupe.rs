//! Remembers recent event ids so that retries and replays are stored once.
//!
//! Bounded by count: a set plus a FIFO of the same ids; the oldest id is forgotten when the
//! set is full. At 16 bytes an id and hash-set overhead, two million ids cost about 80 MiB.

use std::collections::{HashSet, VecDeque};

use shiplog_core::EventId;

/// A bounded set of recently seen event ids.
#[derive(Debug)]
pub struct Dedupe {
    seen: HashSet<u128>,
    order: VecDeque<u128>,
    capacity: usize,
}

impl Dedupe {
    /// A set that remembers at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Dedupe {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records the id; false if it was already known (a duplicate).
    pub fn insert(&mut self, id: EventId) -> bool {
        if !self.seen.insert(id.0) {
            return false;
        }
        self.order.push_back(id.0);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// Forgets an id, for a batch whose commit failed.
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

    #[test]
    fn drops_repeats_and_stays_bounded() {
        let mut d = Dedupe::new(3);
        assert!(d.insert(EventId(1)));
        assert!(!d.insert(EventId(1)));
        for i in 2..10 {
            assert!(d.insert(EventId(i)));
        }
        assert_eq!(d.len(), 3);
        assert!(d.insert(EventId(1)), "the oldest id was forgotten");
    }
}
