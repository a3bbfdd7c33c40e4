//! The time span of the events a query matches: the first and last `ts` and how many there
//! are, in one pass over the `ts` column.
//!
//! Elasticsearch-style date histograms need it: they bucket from the first matching event
//! to the last rather than over a window the caller names, and the aggregation engine
//! takes a window.

use shiplog_core::Timestamp;
use shiplog_core::query::Query;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DateTime, DocId, Score, SegmentOrdinal, SegmentReader};

use crate::compile::{compile, within};
use crate::error::Result;
use crate::store::Store;

/// First and last event time of the matches, and their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpan {
    /// Oldest matching event time.
    pub first: Timestamp,
    /// Newest matching event time.
    pub last: Timestamp,
    /// Matching events.
    pub count: u64,
}

impl TimeSpan {
    fn merge(a: Option<TimeSpan>, b: Option<TimeSpan>) -> Option<TimeSpan> {
        match (a, b) {
            (Some(a), Some(b)) => Some(TimeSpan {
                first: a.first.min(b.first),
                last: a.last.max(b.last),
                count: a.count + b.count,
            }),
            (a, b) => a.or(b),
        }
    }
}

/// The span of the events matching `query` between `since` and `until` (both included,
/// either open); `None` when nothing matches. Blocking (disk reads).
pub fn time_span(
    store: &Store,
    query: &Query,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<Option<TimeSpan>> {
    let fields = store.fields();
    let q = within(fields, compile(fields, query), since, until);
    let mut span = None;
    for d in store.days_between(since, until) {
        let part = d.reader.searcher().search(&*q, &SpanCollector)?;
        span = TimeSpan::merge(span, part);
    }
    Ok(span)
}

/// Min and max of the `ts` column over the matching documents.
struct SpanCollector;

struct SpanSegment {
    ts: Column<DateTime>,
    span: Option<TimeSpan>,
}

impl Collector for SpanCollector {
    type Fruit = Option<TimeSpan>;
    type Child = SpanSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SpanSegment> {
        Ok(SpanSegment {
            ts: segment.fast_fields().date("ts")?,
            span: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, parts: Vec<Option<TimeSpan>>) -> tantivy::Result<Option<TimeSpan>> {
        Ok(parts.into_iter().fold(None, TimeSpan::merge))
    }
}

impl SegmentCollector for SpanSegment {
    type Fruit = Option<TimeSpan>;

    fn collect(&mut self, doc: DocId, _: Score) {
        // Every document has a `ts` (the schema writes one per event).
        let Some(ts) = self.ts.first(doc) else {
            return;
        };
        let t = Timestamp(ts.into_timestamp_nanos());
        let one = TimeSpan {
            first: t,
            last: t,
            count: 1,
        };
        self.span = TimeSpan::merge(self.span, Some(one));
    }

    fn harvest(self) -> Option<TimeSpan> {
        self.span
    }
}
