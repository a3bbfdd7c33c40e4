//! Searching across daily indexes: newest first, with cursor pagination.

use std::str::FromStr;

use shiplog_core::query::Query;
use shiplog_core::{Event, EventId, Timestamp};
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query as TQuery, RangeQuery};
use tantivy::schema::Value;
use tantivy::{DateTime, DocAddress, Order, TantivyDocument};

use crate::compile::{compile, within};
use crate::error::{IndexerError, Result};
use crate::store::Store;

/// Largest page a search may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// What to search for.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The parsed query.
    pub query: Query,
    /// Oldest source time to include.
    pub since: Option<Timestamp>,
    /// Newest source time to include.
    pub until: Option<Timestamp>,
    /// Page size (capped at [`MAX_LIMIT`]).
    pub limit: usize,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// One page of hits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchResponse {
    /// Matching events, newest first.
    pub hits: Vec<Event>,
    /// How many events match in the whole window, counted exactly.
    pub total: u64,
    /// Whether `total` is exact: always `true` (kept so a future estimate can say so).
    pub total_exact: bool,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Whether the page stopped short of `limit` because its events reached the byte cap
    /// of [`search_capped`]; `next_cursor` then continues where it stopped.
    pub truncated: bool,
}

/// Where the previous page stopped: the sort key (time, then `seq`) of its oldest event,
/// and the ids it returned with exactly that key. Events are ordered by (ts, seq), so the
/// next page is "everything older than that key" plus the few events that share it; the
/// cursor stays small even when thousands of events share one time (a batch sent without
/// times shares its arrival time, told apart by `seq`).
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    ts: Timestamp,
    seq: u32,
    seen: Vec<EventId>,
}

impl Cursor {
    fn encode(&self) -> String {
        let mut s = format!("{}.{}", self.ts.as_nanos(), self.seq);
        for id in &self.seen {
            s.push('.');
            s.push_str(&id.to_string());
        }
        s
    }

    fn decode(text: &str) -> Result<Self> {
        let bad = || IndexerError::BadCursor(text.chars().take(64).collect());
        let mut parts = text.split('.');
        let ts = parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)?;
        let seq = parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or_else(bad)?;
        let seen = parts
            .map(EventId::from_str)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| bad())?;
        if seen.is_empty() || seen.len() > MAX_LIMIT {
            return Err(bad());
        }
        Ok(Cursor {
            ts: Timestamp(ts),
            seq,
            seen,
        })
    }

    /// Events that sort after this cursor's key (newer, or as new with a higher `seq`):
    /// these were on earlier pages. With `after == false`, the rest: this page and later.
    /// Both sides are written as positive ranges: tantivy's exclusion of a fast-field range
    /// seeks it backwards.
    fn side(&self, fields: &crate::schema::Fields, after: bool) -> Box<dyn TQuery> {
        use std::ops::Bound;
        use tantivy::Term;
        let at = Term::from_field_date(
            fields.ts,
            DateTime::from_timestamp_nanos(self.ts.as_nanos()),
        );
        let seq = Term::from_field_u64(fields.seq, u64::from(self.seq));
        let (other_times, seqs) = if after {
            (
                RangeQuery::new(Bound::Excluded(at.clone()), Bound::Unbounded),
                RangeQuery::new(Bound::Excluded(seq), Bound::Unbounded),
            )
        } else {
            (
                RangeQuery::new(Bound::Unbounded, Bound::Excluded(at.clone())),
                RangeQuery::new(Bound::Unbounded, Bound::Included(seq)),
            )
        };
        let same_time = RangeQuery::new(Bound::Included(at.clone()), Bound::Included(at));
        let tied: Box<dyn TQuery> = Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(same_time)),
            (Occur::Must, Box::new(seqs)),
        ]));
        Box::new(BooleanQuery::new(vec![
            (Occur::Should, Box::new(other_times)),
            (Occur::Should, tied),
        ]))
    }
}

/// Runs a search. Blocking: call it off the async runtime.
pub fn search(store: &Store, req: &SearchRequest) -> Result<SearchResponse> {
    search_capped(store, req, usize::MAX)
}

/// Runs a search whose page holds at most `max_bytes` of stored events (at least one
/// event, however big): newest first, stopping before the event that would pass the cap,
/// with `truncated` set and a cursor to the rest. Bounds what one page holds in memory
/// however large its events are.
pub fn search_capped(
    store: &Store,
    req: &SearchRequest,
    max_bytes: usize,
) -> Result<SearchResponse> {
    let limit = req.limit.clamp(1, MAX_LIMIT);
    let cursor = req.cursor.as_deref().map(Cursor::decode).transpose()?;
    let fields = store.fields();
    let base = compile(fields, &req.query);
    let page_until = match (&cursor, req.until) {
        (Some(c), Some(u)) => Some(c.ts.min(u)),
        (Some(c), None) => Some(c.ts),
        (None, u) => u,
    };
    // The total is exact and nearly free: finding the newest hits visits every match up to
    // the page's key anyway, and counting them in that pass costs one increment each. Only
    // the matches that sort before a cursor (earlier pages) are counted apart, and a first
    // page has none. (A separate count of the whole window cost as much again as the page
    // for expensive queries; see examples/total_count_cost.rs.)
    let (paged, newer) = match &cursor {
        Some(c) => {
            let both = |window: Box<dyn TQuery>, after: bool| -> Box<dyn TQuery> {
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, window),
                    (Occur::Must, c.side(fields, after)),
                ]))
            };
            let newer = both(within(fields, base.box_clone(), req.since, req.until), true);
            let paged = both(within(fields, base, req.since, page_until), false);
            (paged, Some(newer))
        }
        None => (within(fields, base, req.since, page_until), None),
    };
    let skip = cursor.as_ref().map_or(0, |c| c.seen.len());
    let want = limit + skip;

    let mut newer_total = 0u64;
    let mut remaining = 0u64;
    let mut candidates: Vec<((i64, u64), usize, DocAddress)> = Vec::new();
    let days = store.days_between(req.since, req.until);
    let mut searchers = Vec::with_capacity(days.len());
    for (day_no, day) in days.iter().enumerate() {
        crate::cancel::check()?;
        // One searcher per day for the whole request: doc addresses are only valid within
        // the searcher (the segments it holds) that produced them.
        let searcher = day.reader.searcher();
        searchers.push(searcher.clone());
        if let (Some(q), Some(c)) = (&newer, &cursor)
            && c.ts.day_string() <= day.day
        {
            newer_total += searcher.search(&**q, &Count)? as u64;
        }
        if page_until.is_some_and(|u| u.day_string() < day.day) {
            continue;
        }
        let top = TopDocs::with_limit(want).order_by((
            (
                SortByStaticFastValue::<DateTime>::for_field("ts"),
                Order::Desc,
            ),
            (SortByStaticFastValue::<u64>::for_field("seq"), Order::Desc),
        ));
        let (count, hits) = searcher.search(&*paged, &(Count, top))?;
        remaining += count as u64;
        for ((ts, seq), addr) in hits {
            let nanos = ts.map_or(i64::MIN, |t| t.into_timestamp_nanos());
            candidates.push(((nanos, seq.unwrap_or(0)), day_no, addr));
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    candidates.truncate(want);

    let mut events = Vec::with_capacity(candidates.len().min(limit));
    let mut bytes = 0usize;
    let mut truncated = false;
    for (_, day_no, addr) in candidates {
        let doc: TantivyDocument = searchers[day_no].doc(addr)?;
        let source = doc
            .get_first(fields.source)
            .and_then(|v| v.as_bytes())
            .ok_or_else(|| IndexerError::Corrupt("document has no _source".into()))?;
        let event: Event =
            serde_json::from_slice(source).map_err(|e| IndexerError::Corrupt(e.to_string()))?;
        if cursor
            .as_ref()
            .is_some_and(|c| event.ts == c.ts && event.seq == c.seq && c.seen.contains(&event.id))
        {
            continue;
        }
        // Candidates come newest first, so stopping here keeps the page's newest events
        // and the cursor below resumes right after them.
        if !events.is_empty() && bytes.saturating_add(source.len()) > max_bytes {
            truncated = true;
            break;
        }
        bytes = bytes.saturating_add(source.len());
        events.push(event);
    }
    events.sort_by_key(|e| std::cmp::Reverse((e.ts, e.seq, e.id)));
    events.truncate(limit);

    let returned = (skip + events.len()) as u64;
    let next_cursor = match events.last() {
        Some(last) if (events.len() == limit || truncated) && remaining > returned => {
            let mut seen: Vec<EventId> = events
                .iter()
                .filter(|e| e.ts == last.ts && e.seq == last.seq)
                .map(|e| e.id)
                .collect();
            if let Some(c) = cursor.filter(|c| c.ts == last.ts && c.seq == last.seq) {
                seen.extend(c.seen);
            }
            Some(
                Cursor {
                    ts: last.ts,
                    seq: last.seq,
                    seen,
                }
                .encode(),
            )
        }
        _ => None,
    };
    Ok(SearchResponse {
        hits: events,
        total: remaining + newer_total,
        total_exact: true,
        next_cursor,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            ts: Timestamp(-5),
            seq: 7,
            seen: vec![EventId(1), EventId(u128::MAX)],
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "abc",
            "12",
            "12.zz",
            "12.",
            "12.3",
            "12.3.",
            // The earlier form, without seq: a page flow does not survive an upgrade.
            "12.0000000000000000000000000000000a",
            &format!("1.0{}", ".0".repeat(3)),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
