//! Cooperative cancellation of a query's work.
//!
//! tantivy has no way to stop a search from outside, so a query that outlives its timeout
//! would keep its thread busy until it finished on its own (minutes, for a thousand `*a*`
//! terms over a long window), and enough of them starve every other query. Instead the
//! work checks a [`Budget`] at the places where time goes: before each day, before each
//! segment of a day (the weight [`Checked`] wraps every top-level query in), and every few
//! hundred terms of a pattern's walk over the term dictionary. A spent budget turns into
//! [`IndexerError::Cancelled`](crate::IndexerError::Cancelled).
//!
//! The budget rides in a thread-local for the duration of [`Budget::run`], so every search,
//! aggregation and span query honours it without each signature carrying it: queries run
//! on the calling thread (the store uses tantivy's single-thread executor).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tantivy::query::{EnableScoring, Explanation, Query as TQuery, Scorer, Weight};
use tantivy::{DocId, Score, SegmentReader, TantivyError};

use crate::error::{IndexerError, Result};

/// The message of the tantivy error a spent budget raises inside a weight; mapped back to
/// [`IndexerError::Cancelled`] where tantivy errors become ours.
pub(crate) const CANCELLED: &str = "shiplog: query cancelled";

thread_local! {
    static CURRENT: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// How long a query may run, and a flag to stop it sooner. Cheap to clone: clones share
/// the flag, so the side that gave up (a request that timed out) can stop the thread
/// still running.
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Option<Instant>,
    stop: Arc<AtomicBool>,
}

impl Budget {
    /// A budget that is spent `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        Budget {
            deadline: Instant::now().checked_add(timeout),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A budget with no deadline, spent only by [`cancel`](Self::cancel).
    pub fn unlimited() -> Self {
        Budget {
            deadline: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Stops the work at its next check.
    pub fn cancel(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the work should stop: cancelled, or past the deadline.
    pub fn spent(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Runs `f` with this budget checked by every query it makes on this thread.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<Budget>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = prev);
            }
        }
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let _restore = Restore(prev);
        f()
    }
}

/// Whether the budget of the running query (if any) is spent.
pub fn spent() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(Budget::spent))
}

/// `Err(Cancelled)` once the running query's budget is spent.
pub(crate) fn check() -> Result<()> {
    if spent() {
        return Err(IndexerError::Cancelled);
    }
    Ok(())
}

/// The same check, as the error a tantivy weight may return.
pub(crate) fn check_tantivy() -> tantivy::Result<()> {
    if spent() {
        return Err(TantivyError::InternalError(CANCELLED.into()));
    }
    Ok(())
}

/// A query whose weight checks the budget before each segment. Wraps the top of every
/// compiled query; the work inside a segment is checked where it is long (pattern walks).
#[derive(Debug)]
pub(crate) struct Checked(pub Box<dyn TQuery>);

impl Clone for Checked {
    fn clone(&self) -> Self {
        Checked(self.0.box_clone())
    }
}

impl TQuery for Checked {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        check_tantivy()?;
        Ok(Box::new(CheckedWeight(self.0.weight(scoring)?)))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a tantivy::Term, bool)) {
        self.0.query_terms(visitor)
    }
}

struct CheckedWeight(Box<dyn Weight>);

impl Weight for CheckedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        check_tantivy()?;
        self.0.scorer(reader, boost)
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.0.explain(reader, doc)
    }

    fn count(&self, reader: &SegmentReader) -> tantivy::Result<u32> {
        check_tantivy()?;
        self.0.count(reader)
    }

    fn for_each(
        &self,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score),
    ) -> tantivy::Result<()> {
        check_tantivy()?;
        self.0.for_each(reader, callback)
    }

    fn for_each_no_score(
        &self,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(&[DocId]),
    ) -> tantivy::Result<()> {
        check_tantivy()?;
        self.0.for_each_no_score(reader, callback)
    }

    fn for_each_pruning(
        &self,
        threshold: Score,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score) -> Score,
    ) -> tantivy::Result<()> {
        check_tantivy()?;
        self.0.for_each_pruning(threshold, reader, callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_seen_only_inside_run_and_restored_after() {
        assert!(!spent());
        let b = Budget::unlimited();
        b.run(|| {
            assert!(!spent());
            b.cancel();
            assert!(spent());
            assert!(matches!(check(), Err(IndexerError::Cancelled)));
            let inner = Budget::unlimited();
            inner.run(|| assert!(!spent()));
            assert!(spent(), "the outer budget is back after the inner run");
        });
        assert!(!spent(), "no budget outside run");
        assert!(Budget::new(Duration::ZERO).spent());
        assert!(!Budget::new(Duration::from_secs(3600)).spent());
    }

    #[test]
    fn the_tantivy_error_maps_back_to_cancelled() {
        let e: IndexerError = check_tantivy_with(true).unwrap_err().into();
        assert!(matches!(e, IndexerError::Cancelled), "{e:?}");
        let other: IndexerError = TantivyError::InternalError("x".into()).into();
        assert!(matches!(other, IndexerError::Tantivy(_)), "{other:?}");
    }

    fn check_tantivy_with(cancelled: bool) -> tantivy::Result<()> {
        let b = Budget::unlimited();
        if cancelled {
            b.cancel();
        }
        b.run(check_tantivy)
    }
}
