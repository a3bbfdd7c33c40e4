//! What a search or live tail shows when it is given no query.
//!
//! Containers report metric samples every few seconds, far more often than most of them
//! log, so "everything" would bury the lines behind the samples. A blank query on the
//! native search and tail therefore means every kind except `metric`: logs, predictions,
//! registrations and the gap events that stand for lost lines. Metrics have their own
//! view (`/api/v1/metrics`) and stay one query away: `kind:metric` finds them, and `*`
//! (or `*:*`) finds every event of every kind. Anything typed means exactly what it says.
//!
//! Only the native search and tail take this default. [`parse`] itself still reads blank
//! text as [`Query::All`], so alert rules, aggregations and the compatibility surfaces
//! (Elasticsearch, Loki) keep their meaning.

use crate::event::Kind;

use super::{KeywordField, ParseError, Query, parse};

/// The query a blank search or tail stands for: every event that is not a metric sample.
pub fn default_query() -> Query {
    Query::Not(Box::new(Query::Keyword {
        field: KeywordField::Kind,
        value: Kind::Metric.as_str().to_string(),
    }))
}

/// Parses the `q` of a search or tail: blank text is [`default_query`], anything else
/// is [`parse`]d as written (`*` matches everything, `kind:metric` the samples).
pub fn parse_or_default(input: &str) -> Result<Query, ParseError> {
    if input.trim().is_empty() {
        return Ok(default_query());
    }
    parse(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Timestamp};

    fn of_kind(kind: Kind) -> Event {
        let mut e = Event::log(Timestamp::now(), "hello");
        e.kind = kind;
        e
    }

    #[test]
    fn blank_text_is_every_kind_but_metric() {
        for blank in ["", "   ", "\t\n"] {
            assert_eq!(
                parse_or_default(blank).unwrap(),
                default_query(),
                "{blank:?}"
            );
        }
        let q = default_query();
        for kind in [Kind::Log, Kind::Prediction, Kind::Registration] {
            assert!(q.matches(&of_kind(kind)), "{kind:?}");
        }
        assert!(!q.matches(&of_kind(Kind::Metric)));
        let mut gap = of_kind(Kind::Log);
        gap.fields.insert(
            crate::GAP_FIELD.into(),
            serde_json::json!({"lines_estimate": 3}),
        );
        assert!(q.matches(&gap), "gap events are logs");
    }

    #[test]
    fn typed_queries_mean_what_they_say() {
        let metric = of_kind(Kind::Metric);
        for all in ["*", "*:*"] {
            assert_eq!(parse_or_default(all).unwrap(), Query::All, "{all}");
        }
        assert!(parse_or_default("kind:metric").unwrap().matches(&metric));
        assert_eq!(
            parse_or_default("level:error").unwrap(),
            parse("level:error").unwrap()
        );
        assert!(parse_or_default("(a").is_err());
        assert_eq!(
            parse("").unwrap(),
            Query::All,
            "the plain parser is unchanged"
        );
    }
}
