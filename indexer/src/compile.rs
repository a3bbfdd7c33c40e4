//! Compiles our query tree (shiplog_core::query) into tantivy queries.

use std::ops::Bound;

use shiplog_core::Timestamp;
use shiplog_core::query::{JsonRoot, NumberRange, Pattern, PatternField, Query, TimeRange};
use tantivy::query::{
    AllQuery, BitSetDocSet, BooleanQuery, ConstScorer, EmptyQuery, EnableScoring, Explanation,
    InvertedIndexRangeQuery, Occur, PhraseQuery, Query as TQuery, RangeQuery, Scorer, TermQuery,
    Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{BitSet, DateTime, DocId, Score, SegmentReader, TantivyError, Term};

use crate::schema::Fields;

/// The tantivy query for a parsed query.
pub fn compile(fields: &Fields, q: &Query) -> Box<dyn TQuery> {
    match q {
        Query::All => Box::new(AllQuery),
        Query::Text { terms } => {
            if terms.len() == 1 {
                let term = Term::from_field_text(fields.message, &terms[0]);
                Box::new(TermQuery::new(term, IndexRecordOption::Basic))
            } else {
                let terms = terms
                    .iter()
                    .map(|t| Term::from_field_text(fields.message, t))
                    .collect();
                Box::new(PhraseQuery::new(terms))
            }
        }
        Query::Keyword { field, value } => {
            let term = Term::from_field_text(fields.keyword(*field), value);
            Box::new(TermQuery::new(term, IndexRecordOption::Basic))
        }
        Query::Json { root, path, value } => match json_field(fields, *root) {
            Some(field) => json_query(field, path, value),
            None => Box::new(EmptyQuery),
        },
        Query::Pattern { field, pattern } => {
            let field = match field {
                PatternField::Message => fields.message,
                PatternField::Keyword(k) => fields.keyword(*k),
            };
            Box::new(PatternQuery {
                field,
                pattern: pattern.clone(),
            })
        }
        Query::Time(range) => time_query(fields, range),
        Query::Number { root, path, range } => match json_field(fields, *root) {
            Some(field) => number_query(field, path, range),
            None => latency_query(fields, range),
        },
        Query::And(qs) => {
            let mut clauses: Vec<(Occur, Box<dyn TQuery>)> = Vec::with_capacity(qs.len() + 1);
            for sub in qs {
                match sub {
                    Query::Not(inner) => clauses.push((Occur::MustNot, compile(fields, inner))),
                    other => clauses.push((Occur::Must, compile(fields, other))),
                }
            }
            if clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
                clauses.push((Occur::Must, Box::new(AllQuery)));
            }
            Box::new(BooleanQuery::new(clauses))
        }
        Query::Or(qs) => Box::new(BooleanQuery::new(
            qs.iter()
                .map(|s| (Occur::Should, compile(fields, s)))
                .collect(),
        )),
        Query::Not(inner) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery) as Box<dyn TQuery>),
            (Occur::MustNot, compile(fields, inner)),
        ])),
    }
}

/// A value inside `fields` matches as a string, and also as a number or boolean when it
/// reads as one, so `fields.user_id:42` finds both `"42"` and `42`.
fn json_query(field: Field, path: &str, value: &str) -> Box<dyn TQuery> {
    let base = Term::from_field_json_path(field, path, false);
    let mut alternatives: Vec<(Occur, Box<dyn TQuery>)> = Vec::new();
    let mut push = |term: Term| {
        alternatives.push((
            Occur::Should,
            Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn TQuery>,
        ))
    };
    let mut t = base.clone();
    t.append_type_and_str(value);
    push(t);
    if let Ok(i) = value.parse::<i64>() {
        let mut t = base.clone();
        t.append_type_and_fast_value(i);
        push(t);
    }
    if let Ok(u) = value.parse::<u64>()
        && u > i64::MAX as u64
    {
        let mut t = base.clone();
        t.append_type_and_fast_value(u);
        push(t);
    }
    if let Ok(f) = value.parse::<f64>()
        && f.is_finite()
    {
        let mut t = base.clone();
        t.append_type_and_fast_value(f);
        push(t);
    }
    if let Ok(b) = value.parse::<bool>() {
        let mut t = base.clone();
        t.append_type_and_fast_value(b);
        push(t);
    }
    Box::new(BooleanQuery::new(alternatives))
}

/// The JSON field a root names; `None` for `latency_ms`, which is a plain number field.
fn json_field(fields: &Fields, root: JsonRoot) -> Option<Field> {
    match root {
        JsonRoot::Fields => Some(fields.fields),
        JsonRoot::Input => Some(fields.input),
        JsonRoot::Output => Some(fields.output),
        JsonRoot::Latency => None,
    }
}

/// `latency_ms` ranges on its indexed f64 field.
fn latency_query(fields: &Fields, range: &NumberRange) -> Box<dyn TQuery> {
    let term = |b: Bound<f64>| b.map(|v| Term::from_field_f64(fields.latency_ms, v));
    let (lower, upper) = (term(range.lower), term(range.upper));
    if lower == Bound::Unbounded && upper == Bound::Unbounded {
        // Any latency at all: an open range over every f64.
        return Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_f64(fields.latency_ms, f64::MIN)),
            Bound::Included(Term::from_field_f64(fields.latency_ms, f64::MAX)),
        ));
    }
    Box::new(RangeQuery::new(lower, upper))
}

fn time_query(fields: &Fields, range: &TimeRange) -> Box<dyn TQuery> {
    let term = |t: &Timestamp| {
        Term::from_field_date(fields.ts, DateTime::from_timestamp_nanos(t.as_nanos()))
    };
    let (from, to) = (range.from.as_ref().map(term), range.to.as_ref().map(term));
    if from == Bound::Unbounded && to == Bound::Unbounded {
        return Box::new(AllQuery);
    }
    Box::new(RangeQuery::new(from, to))
}

/// A numeric range over a JSON path, on the inverted index (no fast field needed).
///
/// The index holds a JSON number as an i64 term when it is a whole number that fits, a u64
/// term when it is a larger whole number, and an f64 term otherwise; each type's terms sort
/// in numeric order, so the range becomes one term range per type. Numbers compare as f64
/// in the tail, so the integer ranges are exactly the integers whose f64 falls in the range.
fn number_query(field: Field, path: &str, range: &NumberRange) -> Box<dyn TQuery> {
    let base = Term::from_field_json_path(field, path, false);
    let term_range = |lower: Term, upper: Term| -> Box<dyn TQuery> {
        Box::new(InvertedIndexRangeQuery::new(
            Bound::Included(lower),
            Bound::Included(upper),
        ))
    };
    let with = |value: &dyn Fn(&mut Term)| {
        let mut t = base.clone();
        value(&mut t);
        t
    };
    let mut alternatives: Vec<(Occur, Box<dyn TQuery>)> = Vec::new();
    if let Some((lo, hi)) = range.integer_interval(i128::from(i64::MIN), i128::from(i64::MAX)) {
        let lower = with(&|t| t.append_type_and_fast_value(lo as i64));
        let upper = with(&|t| t.append_type_and_fast_value(hi as i64));
        alternatives.push((Occur::Should, term_range(lower, upper)));
    }
    let big = i128::from(i64::MAX) + 1;
    if let Some((lo, hi)) = range.integer_interval(big, i128::from(u64::MAX)) {
        let lower = with(&|t| t.append_type_and_fast_value(lo as u64));
        let upper = with(&|t| t.append_type_and_fast_value(hi as u64));
        alternatives.push((Occur::Should, term_range(lower, upper)));
    }
    let float = |b: Bound<f64>, open: f64| {
        let at = |v: f64| with(&|t| t.append_type_and_fast_value(v));
        match b {
            Bound::Included(v) => Bound::Included(at(v)),
            Bound::Excluded(v) => Bound::Excluded(at(v)),
            Bound::Unbounded => Bound::Included(at(open)),
        }
    };
    alternatives.push((
        Occur::Should,
        Box::new(InvertedIndexRangeQuery::new(
            float(range.lower, f64::NEG_INFINITY),
            float(range.upper, f64::INFINITY),
        )),
    ));
    Box::new(BooleanQuery::new(alternatives))
}

/// Matches documents with a term that a [`Pattern`] accepts, by walking the field's term
/// dictionary from the pattern's literal prefix and asking the pattern about each term.
///
/// The tail asks the very same [`Pattern`], so search and tail agree on any pattern, and no
/// regex syntax has to be translated for tantivy's automata. The cost is one pass over the
/// field's terms that share the literal prefix (all of them for `*x` or a regex), per
/// segment; terms are short (message terms are under 40 bytes) and regexes are size-limited
/// and never backtrack, so the pass stays linear.
#[derive(Clone, Debug)]
struct PatternQuery {
    field: Field,
    pattern: Pattern,
}

impl TQuery for PatternQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for PatternQuery {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut docs = BitSet::with_max_value(reader.max_doc());
        let index = reader.inverted_index(self.field)?;
        let prefix = self.pattern.literal_prefix().as_bytes();
        let mut terms = index.terms().range().ge(prefix).into_stream()?;
        let mut walked = 0u32;
        while terms.advance() {
            walked = walked.wrapping_add(1);
            if walked.is_multiple_of(256) {
                crate::cancel::check_tantivy()?;
            }
            let key = terms.key();
            if !key.starts_with(prefix) {
                break;
            }
            let Ok(term) = std::str::from_utf8(key) else {
                continue;
            };
            if !self.pattern.is_match(term) {
                continue;
            }
            let mut postings =
                index.read_block_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
            loop {
                let block = postings.docs();
                if block.is_empty() {
                    break;
                }
                for &doc in block {
                    docs.insert(doc);
                }
                postings.advance();
            }
        }
        Ok(Box::new(ConstScorer::new(BitSetDocSet::from(docs), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) != doc {
            return Err(TantivyError::InvalidArgument(format!(
                "document {doc} does not match {:?}",
                self.pattern
            )));
        }
        Ok(Explanation::new("PatternQuery", 1.0))
    }
}

/// Restricts a query to `since <= ts <= until`, checking the running query's
/// [`Budget`](crate::cancel::Budget) before each segment.
pub fn within(
    fields: &Fields,
    q: Box<dyn TQuery>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Box<dyn TQuery> {
    if since.is_none() && until.is_none() {
        return Box::new(crate::cancel::Checked(q));
    }
    let bound = |t: Option<Timestamp>| match t {
        Some(t) => Bound::Included(Term::from_field_date(
            fields.ts,
            DateTime::from_timestamp_nanos(t.as_nanos()),
        )),
        None => Bound::Unbounded,
    };
    let range: Box<dyn TQuery> = Box::new(RangeQuery::new(bound(since), bound(until)));
    Box::new(crate::cancel::Checked(Box::new(BooleanQuery::new(vec![
        (Occur::Must, q),
        (Occur::Must, range),
    ]))))
}
