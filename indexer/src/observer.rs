//! Lossless hooks on fresh events, for consumers that must see every accepted event (the
//! alert engine), unlike live tail's broadcast, which drops events for a subscriber that
//! lags.
//!
//! The WAL thread calls every registered [`Observer`] with each batch right after it is
//! fsynced and de-duplicated, before the ingest is acknowledged, in WAL order. An observer
//! runs on the WAL thread, so it must not block: the alert engine only moves the batch
//! into its own bounded queue and decides itself what happens when that queue is full.

use std::sync::{Arc, RwLock};

use shiplog_core::Event;

/// Receives every accepted, de-duplicated event once, in the order the WAL stored them.
pub trait Observer: Send + Sync {
    /// Called on the WAL thread with one durable batch (never empty); must return quickly.
    fn observe(&self, events: &[Arc<Event>]);
}

/// The registered observers, shared by the indexer handle and the WAL thread.
#[derive(Default, Clone)]
pub struct Observers {
    list: Arc<RwLock<Vec<Arc<dyn Observer>>>>,
}

impl Observers {
    /// Adds an observer; it sees batches made durable from now on.
    pub fn add(&self, observer: Arc<dyn Observer>) {
        self.list
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }

    /// Hands a durable batch to every observer.
    pub fn publish(&self, events: &[Arc<Event>]) {
        if events.is_empty() {
            return;
        }
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        for o in list.iter() {
            o.observe(events);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use shiplog_core::{EventId, Timestamp};

    use super::*;
    use crate::{Indexer, IndexerConfig};

    #[derive(Default)]
    struct Collect(Mutex<Vec<u128>>);

    impl Observer for Collect {
        fn observe(&self, events: &[Arc<Event>]) {
            self.0.lock().unwrap().extend(events.iter().map(|e| e.id.0));
        }
    }

    #[test]
    fn observers_see_every_new_event_once_in_order_and_never_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Indexer::open(IndexerConfig {
            data_dir: dir.path().to_path_buf(),
            writer_memory_bytes: 64 * 1024 * 1024,
            writer_threads: 1,
            commit_interval: Duration::from_millis(200),
            tail_buffer: 16,
            ..IndexerConfig::default()
        })
        .unwrap();
        let seen = Arc::new(Collect::default());
        ix.add_observer(seen.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Far more events than the tail buffer holds: the observer still gets all of them.
        let batch = |from: u128, to: u128| -> Vec<Event> {
            (from..to)
                .map(|i| {
                    let mut e = Event::log(Timestamp::now(), format!("line {i}"));
                    e.id = EventId(i);
                    e
                })
                .collect()
        };
        rt.block_on(ix.ingest(batch(1, 1001))).unwrap();
        let again = rt.block_on(ix.ingest(batch(900, 1101))).unwrap();
        assert_eq!(again.duplicates, 101);
        ix.close();
        let ids = seen.0.lock().unwrap().clone();
        assert_eq!(ids, (1..1101).collect::<Vec<_>>());
    }
}
