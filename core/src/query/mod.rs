//! The query language: parser, syntax tree and an in-memory matcher.
//!
//! ```text
//! service:web AND (error OR level:warn) NOT "health check" fields.user_id:42
//! ```
//!
//! Bare words and quoted phrases search the message; `field:value` matches a keyword field
//! exactly (or a message term for `message:`); `fields.a.b:value` matches inside the JSON
//! fields. Words next to each other are joined with AND. The indexer compiles the same tree
//! to tantivy queries, and live tail evaluates it with [`Query::matches`], so both agree.

pub mod analysis;
mod matcher;
mod parser;

pub use parser::{MAX_CLAUSES, MAX_DEPTH, MAX_QUERY_BYTES, ParseError, parse};

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
}

impl KeywordField {
    /// Every keyword field, for error messages and schema building.
    pub const ALL: [KeywordField; 8] = [
        KeywordField::Service,
        KeywordField::Node,
        KeywordField::ContainerName,
        KeywordField::ContainerId,
        KeywordField::Image,
        KeywordField::Stream,
        KeywordField::Level,
        KeywordField::Kind,
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
            _ => return None,
        })
    }
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
        /// Path below `fields`, dot-separated.
        path: String,
        /// The value as typed; matches a string equal to it or a number equal to it.
        value: String,
    },
    /// Every clause matches.
    And(Vec<Query>),
    /// At least one clause matches.
    Or(Vec<Query>),
    /// The clause does not match.
    Not(Box<Query>),
}
