//! The query language: parser, syntax tree and an in-memory matcher.
//!
//! ```text
//! service:web AND (error OR level:warn) NOT "health check" fields.user_id:42
//! service:web-* container:/api-[0-9]+/ timeout* ts:>now-15m fields.latency_ms:[250 TO *]
//! ```
//!
//! Bare words and quoted phrases search the message; `field:value` matches a keyword field
//! exactly (or a message term for `message:`); `fields.a.b:value` matches inside the JSON
//! fields. Words next to each other are joined with AND. The indexer compiles the same tree
//! to tantivy queries, and live tail evaluates it with [`Query::matches`], so both agree.
//!
//! | syntax | meaning |
//! |---|---|
//! | `error`, `"disk full"` | a message term, a phrase of terms (case is ignored) |
//! | `service:web`, `level:warn` | a keyword field equals the value (case-sensitive, except `level`, `kind`, `stream`) |
//! | `fields.user.id:42` | a JSON value equals the string, number or boolean |
//! | `service:web*`, `container:api-?` | wildcard on a keyword value: `*` any run, `?` one character; `\*` is a literal star |
//! | `timeout*`, `message:re?try` | wildcard on one message term; the pattern is lower-cased, and may hold only letters, digits, `*` and `?` |
//! | `service:/web-[0-9]+/` | regex on a whole keyword value (anchored, Rust `regex` syntax, `\/` for a slash, `(?i)` to ignore case) |
//! | `message:/retr[a-z]+/` | regex on one message term, ignoring case (like Elasticsearch on text fields) |
//! | `ts:[2026-11-01 TO 2026-11-02]`, `ts:{a TO b}`, `ts:[a TO *]` | time range; `[ ]` include, `{ }` exclude the bound, `*` leaves an end open |
//! | `ts:>now-15m`, `ts:>=2026-11-22T03:00:00Z`, `ts:<now`, `ts:<=…` | one-sided time range |
//! | `ts:2026-11-22` | that whole UTC day |
//! | `fields.latency_ms:>250`, `fields.status:[200 TO 299]` | numeric range on a JSON value |
//! | `*`, `*:*` | every event, of every kind |
//!
//! [`parse`] reads blank text as [`Query::All`] too; the native search and live tail read it
//! with [`parse_or_default`] instead, as [`default_query`]: every kind except metric samples.
//!
//! Ranges, regexes and wildcards:
//!
//! - A range, a regex or a comparison is recognised only right after `field:` (or inside
//!   `field:( … )`); a bare `[error]` or `/dev/sda1` is still text. `*` and `?` make any
//!   unquoted, unescaped word a wildcard; quote or escape them (`"a*"`, `a\*`) to search
//!   them literally.
//! - Time bounds are `now`, `now-15m`, `now+1h` (units ns, us, ms, s, m, h, d, w), RFC 3339,
//!   or a date alone, which stands for the whole UTC day: `[2026-11-01 TO 2026-11-02]` covers
//!   both days, `>2026-11-01` starts on the 2nd. `now` is read once, when the query is parsed
//!   (a live tail keeps the instant it started with).
//! - Numeric ranges match JSON numbers compared as 64-bit floats; strings such as `"250"`
//!   and booleans never fall in a range. Paths reach through arrays at every level, as the
//!   index flattens them: `fields.spans.ms` sees `{"spans": [{"ms": 4}, {"ms": [9, 12]}]}`'s
//!   4, 9 and 12.
//! - Wildcards and regexes apply to the message and keyword fields, not to `fields.<path>`
//!   (tantivy indexes date-like JSON strings as dates, so a string pattern there could not
//!   agree with the tail). A wildcard on the message cannot span terms: `blk_*` is refused
//!   because `_` never occurs inside a term; search `blk*`.
//! - Keyword wildcards and regexes never match an empty or missing value, and neither does
//!   `service:""` (empty values are not indexed).
//! - Regexes are compiled with size limits ([`pattern::REGEX_SIZE_LIMIT`]) and never
//!   backtrack, so `(a*)*b` is harmless and `a{1000}{1000}` is refused at parse time.

pub mod analysis;
mod default_query;
mod lexer;
mod matcher;
mod parser;
pub mod pattern;
pub mod range;

pub use default_query::{default_query, parse_or_default};
pub use parser::{MAX_CLAUSES, MAX_DEPTH, MAX_QUERY_BYTES, ParseError, parse, parse_at};
pub use pattern::Pattern;
pub use range::{NumberRange, TimeRange};

/// A keyword field: matched exactly, never tokenised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeywordField {
    /// `service`
    Service,
    /// `node`
    Node,
    /// `container` or `container_name`
    ContainerName,
    /// `container_id`
    ContainerId,
    /// `image`
    Image,
    /// `stream`: stdout or stderr
    Stream,
    /// `level`
    Level,
    /// `kind`
    Kind,
    /// `model`: the model of a prediction
    Model,
    /// `model_version` or `version`
    ModelVersion,
    /// `request_id`
    RequestId,
    /// `status`: how a prediction ended
    Status,
}

impl KeywordField {
    /// Every keyword field, for error messages and schema building.
    pub const ALL: [KeywordField; 12] = [
        KeywordField::Service,
        KeywordField::Node,
        KeywordField::ContainerName,
        KeywordField::ContainerId,
        KeywordField::Image,
        KeywordField::Stream,
        KeywordField::Level,
        KeywordField::Kind,
        KeywordField::Model,
        KeywordField::ModelVersion,
        KeywordField::RequestId,
        KeywordField::Status,
    ];

    /// The field's name in events and in the index.
    pub fn name(self) -> &'static str {
        match self {
            KeywordField::Service => "service",
            KeywordField::Node => "node",
            KeywordField::ContainerName => "container_name",
            KeywordField::ContainerId => "container_id",
            KeywordField::Image => "image",
            KeywordField::Stream => "stream",
            KeywordField::Level => "level",
            KeywordField::Kind => "kind",
            KeywordField::Model => "model",
            KeywordField::ModelVersion => "model_version",
            KeywordField::RequestId => "request_id",
            KeywordField::Status => "status",
        }
    }

    /// Looks a field up by a name a user may type.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "service" => KeywordField::Service,
            "node" | "host" => KeywordField::Node,
            "container" | "container_name" => KeywordField::ContainerName,
            "container_id" => KeywordField::ContainerId,
            "image" => KeywordField::Image,
            "stream" => KeywordField::Stream,
            "level" => KeywordField::Level,
            "kind" => KeywordField::Kind,
            "model" => KeywordField::Model,
            "model_version" | "version" => KeywordField::ModelVersion,
            "request_id" => KeywordField::RequestId,
            "status" => KeywordField::Status,
            _ => return None,
        })
    }
}

/// Where a structured path starts: the `fields` object, a prediction's `input` or
/// `output`, or a prediction's `latency_ms` number (no path below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonRoot {
    /// `fields.<path>`
    Fields,
    /// `input.<path>`
    Input,
    /// `output.<path>`
    Output,
    /// `latency_ms`
    Latency,
}

impl JsonRoot {
    /// The root's name in events and in the index.
    pub fn name(self) -> &'static str {
        match self {
            JsonRoot::Fields => "fields",
            JsonRoot::Input => "input",
            JsonRoot::Output => "output",
            JsonRoot::Latency => "latency_ms",
        }
    }

    /// How a path under this root is written in a query (`fields.a.b`, `latency_ms`).
    pub fn describe(self, path: &str) -> String {
        if path.is_empty() {
            self.name().to_string()
        } else {
            format!("{}.{path}", self.name())
        }
    }
}

/// Where a wildcard or regex applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternField {
    /// Any one analysed message term.
    Message,
    /// The whole value of a keyword field.
    Keyword(KeywordField),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Matches everything (the empty query).
    All,
    /// Message terms: one term, or a phrase when there are several, in order.
    Text {
        /// Analysed terms, never empty.
        terms: Vec<String>,
    },
    /// A keyword field equal to a value.
    Keyword {
        /// Which field.
        field: KeywordField,
        /// The exact value (levels, kinds and streams are normalised).
        value: String,
    },
    /// A value inside the JSON `fields` object, by dotted path.
    Json {
        /// Which structured value the path starts in.
        root: JsonRoot,
        /// Path below the root, dot-separated.
        path: String,
        /// The value as typed; matches a string equal to it or a number equal to it.
        value: String,
    },
    /// A wildcard or regex matching one message term or a whole keyword value.
    Pattern {
        /// Where the pattern applies.
        field: PatternField,
        /// The pattern.
        pattern: Pattern,
    },
    /// The event time lies in a range.
    Time(TimeRange),
    /// A number inside the JSON `fields` object lies in a range.
    Number {
        /// Which structured value the path starts in ([`JsonRoot::Latency`]: the number
        /// itself, with an empty path).
        root: JsonRoot,
        /// Path below the root, dot-separated.
        path: String,
        /// The range.
        range: NumberRange,
    },
    /// Every clause matches.
    And(Vec<Query>),
    /// At least one clause matches.
    Or(Vec<Query>),
    /// The clause does not match.
    Not(Box<Query>),
}
