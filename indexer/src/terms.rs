//! Counting the values of one field among matching events, for terms and error-ratio
//! aggregations.
//!
//! Keyword fields are fast columns: a per-segment array indexed by term ordinal. A path
//! inside a JSON object (`fields.status`) has no column, so its values are read from the
//! inverted index instead: the matching documents are gathered into a bitset, then every
//! term stored under the path is walked and its postings are counted against the bitset.
//! That costs a pass over the postings of the path (not of the whole field), whatever the
//! query matched, and nothing at all when the query matched nothing.
//!
//! Values under a JSON path are counted by their text: `"42"`, `42` and `42.0` are one value
//! `"42"`, as the query `fields.x:42` matches all three (an array holding two of those forms
//! counts its event twice under that value).

use std::collections::HashMap;
use std::sync::Arc;

use shiplog_core::query::{JsonRoot, KeywordField};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::index::InvertedIndexReader;
use tantivy::query::Query as TQuery;
use tantivy::schema::{Field, IndexRecordOption, Type, ValueBytes};
use tantivy::{BitSet, DocId, DocSet, Score, SegmentOrdinal, SegmentReader, TERMINATED, Term};

use crate::aggregate::TermBucket;
use crate::error::Result;
use crate::schema::Fields;
use crate::store::DayIndex;

/// Distinct values of a terms aggregation kept per day before the rest go to `other`.
pub const TERMS_PER_DAY: usize = 10_000;

/// The field whose values a terms aggregation counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermsField {
    /// A keyword field (a fast column).
    Keyword(KeywordField),
    /// A path inside a JSON object: `fields`, a prediction's `input` or `output`.
    Json {
        /// Which object ([`JsonRoot::Latency`] is a number, not an object: never counted).
        root: JsonRoot,
        /// Dot-separated path below it.
        path: String,
    },
}

impl TermsField {
    /// The field as a query names it: `service`, `fields.status`.
    pub fn describe(&self) -> String {
        match self {
            TermsField::Keyword(k) => k.name().to_string(),
            TermsField::Json { root, path } => root.describe(path),
        }
    }
}

impl From<KeywordField> for TermsField {
    fn from(k: KeywordField) -> Self {
        TermsField::Keyword(k)
    }
}

/// Term counts merged over days.
pub(crate) struct Terms {
    /// Count per value.
    pub counts: HashMap<String, u64>,
    /// Matching events without a value.
    pub missing: u64,
    /// Matching events whose value was dropped by the per-day cap.
    pub dropped: u64,
    /// Whether no day hit the cap.
    pub exact: bool,
}

impl Default for Terms {
    fn default() -> Self {
        Terms {
            counts: HashMap::new(),
            missing: 0,
            dropped: 0,
            exact: true,
        }
    }
}

impl Terms {
    /// Adds one day's counts, keeping at most [`TERMS_PER_DAY`] of its values.
    fn add_day(&mut self, mut day: HashMap<String, u64>, missing: u64) {
        self.missing += missing;
        if day.len() > TERMS_PER_DAY {
            let mut sorted: Vec<(String, u64)> = day.into_iter().collect();
            sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            self.dropped += sorted[TERMS_PER_DAY..].iter().map(|(_, c)| c).sum::<u64>();
            sorted.truncate(TERMS_PER_DAY);
            self.exact = false;
            day = sorted.into_iter().collect();
        }
        for (k, c) in day {
            *self.counts.entry(k).or_default() += c;
        }
    }

    /// Every matching event: those with a counted value, with a value past the per-day
    /// cap, and without one. Exact only for single-valued fields (the keyword fields).
    pub fn matched(&self) -> u64 {
        self.counts.values().sum::<u64>() + self.dropped + self.missing
    }
}

/// Counts the values of `field` among the events of `days` matching `q`.
pub(crate) fn terms(
    fields: &Fields,
    days: &[Arc<DayIndex>],
    q: &dyn TQuery,
    field: &TermsField,
) -> Result<Terms> {
    let mut out = Terms::default();
    for d in days {
        let searcher = d.reader.searcher();
        let (day, missing) = match field {
            TermsField::Keyword(k) => searcher.search(q, &KeywordTerms { field: k.name() })?,
            TermsField::Json { root, path } => {
                let Some(json) = json_field(fields, *root) else {
                    // No object to look in: every matching event lacks the value.
                    let n = searcher.search(q, &tantivy::collector::Count)? as u64;
                    out.missing += n;
                    continue;
                };
                let prefix = Term::from_field_json_path(json, path, false)
                    .serialized_value_bytes()
                    .to_vec();
                searcher.search(
                    q,
                    &JsonTerms {
                        field: json,
                        prefix,
                    },
                )??
            }
        };
        out.add_day(day, missing);
    }
    Ok(out)
}

fn json_field(fields: &Fields, root: JsonRoot) -> Option<Field> {
    match root {
        JsonRoot::Fields => Some(fields.fields),
        JsonRoot::Input => Some(fields.input),
        JsonRoot::Output => Some(fields.output),
        JsonRoot::Latency => None,
    }
}

/// The `size` largest counts (ties by key), and the sum of the others.
pub(crate) fn top(counts: HashMap<String, u64>, size: usize) -> (Vec<TermBucket>, u64) {
    let mut all: Vec<TermBucket> = counts
        .into_iter()
        .map(|(key, count)| TermBucket { key, count })
        .collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    let rest = all.iter().skip(size).map(|b| b.count).sum();
    all.truncate(size);
    (all, rest)
}

/// Adds up per-segment `(counts, missing)` pairs.
fn merge_counts(parts: Vec<(HashMap<String, u64>, u64)>) -> (HashMap<String, u64>, u64) {
    let mut all = HashMap::new();
    let mut missing = 0;
    for (counts, m) in parts {
        missing += m;
        for (k, c) in counts {
            *all.entry(k).or_default() += c;
        }
    }
    (all, missing)
}

/// Counts per value of a keyword fast column, plus documents without one.
struct KeywordTerms {
    field: &'static str,
}

struct KeywordSegment {
    column: Option<StrColumn>,
    /// Whether an event may hold several values (never for the keyword fields we write).
    multivalued: bool,
    counts: Vec<u64>,
    missing: u64,
    ords: Vec<Option<u64>>,
}

impl Collector for KeywordTerms {
    type Fruit = (HashMap<String, u64>, u64);
    type Child = KeywordSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<KeywordSegment> {
        let column = segment.fast_fields().str(self.field)?;
        let terms = column.as_ref().map_or(0, |c| c.num_terms());
        let multivalued = column
            .as_ref()
            .is_some_and(|c| c.ords().get_cardinality().is_multivalue());
        Ok(KeywordSegment {
            column,
            multivalued,
            counts: vec![0; terms],
            missing: 0,
            ords: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        parts: Vec<(HashMap<String, u64>, u64)>,
    ) -> tantivy::Result<Self::Fruit> {
        Ok(merge_counts(parts))
    }
}

impl SegmentCollector for KeywordSegment {
    type Fruit = (HashMap<String, u64>, u64);

    fn collect(&mut self, doc: DocId, _: Score) {
        let Some(column) = &self.column else {
            self.missing += 1;
            return;
        };
        let mut any = false;
        for ord in column.term_ords(doc) {
            any = true;
            if let Some(c) = self.counts.get_mut(ord as usize) {
                *c += 1;
            }
        }
        if !any {
            self.missing += 1;
        }
    }

    /// Reads a block of ordinals at once: looking each event's values up one by one was
    /// most of the cost of a terms or error-ratio aggregation over millions of events.
    fn collect_block(&mut self, docs: &[DocId]) {
        let Some(column) = self.column.as_ref().filter(|_| !self.multivalued) else {
            for &doc in docs {
                self.collect(doc, 0.0);
            }
            return;
        };
        self.ords.clear();
        self.ords.resize(docs.len(), None);
        column.ords().first_vals(docs, &mut self.ords);
        for ord in &self.ords {
            match ord.and_then(|o| self.counts.get_mut(o as usize)) {
                Some(c) => *c += 1,
                None => self.missing += u64::from(ord.is_none()),
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        (by_value(self.column.as_ref(), &self.counts), self.missing)
    }
}

/// Counts by term ordinal turned into counts by value.
fn by_value(column: Option<&StrColumn>, counts: &[u64]) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    if let Some(column) = column {
        let mut key = String::new();
        for (ord, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            key.clear();
            if column.ord_to_str(ord as u64, &mut key).unwrap_or(false) {
                *out.entry(key.clone()).or_default() += c;
            }
        }
    }
    out
}

/// Counts per value stored under one JSON path, read from the inverted index.
struct JsonTerms {
    field: Field,
    /// The path as the term dictionary spells it, up to and including its end marker.
    prefix: Vec<u8>,
}

struct JsonSegment {
    index: Arc<InvertedIndexReader>,
    prefix: Vec<u8>,
    matched: BitSet,
    max_doc: DocId,
    n_matched: u64,
}

type JsonFruit = tantivy::Result<(HashMap<String, u64>, u64)>;

impl Collector for JsonTerms {
    type Fruit = JsonFruit;
    type Child = JsonSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<JsonSegment> {
        Ok(JsonSegment {
            index: segment.inverted_index(self.field)?,
            prefix: self.prefix.clone(),
            matched: BitSet::with_max_value(segment.max_doc()),
            max_doc: segment.max_doc(),
            n_matched: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, parts: Vec<JsonFruit>) -> tantivy::Result<JsonFruit> {
        Ok(parts
            .into_iter()
            .collect::<tantivy::Result<Vec<_>>>()
            .map(merge_counts))
    }
}

impl SegmentCollector for JsonSegment {
    type Fruit = JsonFruit;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.matched.insert(doc);
        self.n_matched += 1;
    }

    fn harvest(self) -> JsonFruit {
        let mut counts = HashMap::new();
        if self.n_matched == 0 {
            return Ok((counts, 0));
        }
        let mut has_value = BitSet::with_max_value(self.max_doc);
        // Every term under the path sorts between `path END` and `path END+1`.
        let mut upper = self.prefix.clone();
        if let Some(last) = upper.last_mut() {
            *last += 1;
        }
        let mut stream = self
            .index
            .terms()
            .range()
            .ge(&self.prefix)
            .lt(&upper)
            .into_stream()?;
        while stream.advance() {
            let Some(key) = value_text(ValueBytes::wrap(&stream.key()[self.prefix.len()..])) else {
                continue;
            };
            let mut postings = self
                .index
                .read_postings_from_terminfo(stream.value(), IndexRecordOption::Basic)?;
            let mut n = 0u64;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if self.matched.contains(doc) {
                    n += 1;
                    has_value.insert(doc);
                }
                doc = postings.advance();
            }
            if n > 0 {
                *counts.entry(key).or_default() += n;
            }
        }
        let missing = self.n_matched.saturating_sub(has_value.len() as u64);
        Ok((counts, missing))
    }
}

/// A value under a JSON path as text; `None` for types a terms aggregation does not count
/// (dates, bytes, nested JSON).
fn value_text(v: ValueBytes<&[u8]>) -> Option<String> {
    // Checked here because `ValueBytes::typ` panics on an empty or unknown type code.
    let code = *v.as_serialized().first()?;
    match Type::from_code(code)? {
        Type::Str => v.as_str().map(str::to_string),
        Type::I64 => v.as_i64().map(|n| n.to_string()),
        Type::U64 => v.as_u64().map(|n| n.to_string()),
        Type::F64 => v.as_f64().map(|f| f.to_string()),
        Type::Bool => v.as_bool().map(|b| b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keeps_the_largest_and_sums_the_rest() {
        let counts: HashMap<String, u64> = [("a", 5), ("b", 9), ("c", 5), ("d", 1)]
            .into_iter()
            .map(|(k, c)| (k.to_string(), c))
            .collect();
        let (buckets, rest) = top(counts, 2);
        let keys: Vec<&str> = buckets.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(rest, 6);
    }

    #[test]
    fn json_values_read_as_the_query_language_writes_them() {
        let text = |build: &dyn Fn(&mut Term)| {
            let mut t = Term::from_field_json_path(Field::from_field_id(0), "a", false);
            let prefix = t.serialized_value_bytes().len();
            build(&mut t);
            value_text(ValueBytes::wrap(&t.serialized_value_bytes()[prefix..]))
        };
        assert_eq!(
            text(&|t| t.append_type_and_str("web")).as_deref(),
            Some("web")
        );
        assert_eq!(
            text(&|t| t.append_type_and_fast_value(-42i64)).as_deref(),
            Some("-42")
        );
        assert_eq!(
            text(&|t| t.append_type_and_fast_value(u64::MAX)).as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(
            text(&|t| t.append_type_and_fast_value(1.5f64)).as_deref(),
            Some("1.5")
        );
        assert_eq!(
            text(&|t| t.append_type_and_fast_value(true)).as_deref(),
            Some("true")
        );
        assert_eq!(text(&|_| {}), None);
    }
}
