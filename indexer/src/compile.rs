//! Compiles our query tree (shiplog_core::query) into tantivy queries.

use std::ops::Bound;

use shiplog_core::Timestamp;
use shiplog_core::query::Query;
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhraseQuery, Query as TQuery, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DateTime, Term};

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
        Query::Json { path, value } => json_query(fields, path, value),
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
fn json_query(fields: &Fields, path: &str, value: &str) -> Box<dyn TQuery> {
    let base = Term::from_field_json_path(fields.fields, path, false);
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

/// Restricts a query to `since <= ts <= until`.
pub fn within(
    fields: &Fields,
    q: Box<dyn TQuery>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Box<dyn TQuery> {
    if since.is_none() && until.is_none() {
        return q;
    }
    let bound = |t: Option<Timestamp>| match t {
        Some(t) => Bound::Included(Term::from_field_date(
            fields.ts,
            DateTime::from_timestamp_nanos(t.as_nanos()),
        )),
        None => Bound::Unbounded,
    };
    let range: Box<dyn TQuery> = Box::new(RangeQuery::new(bound(since), bound(until)));
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, q),
        (Occur::Must, range),
    ]))
}
