//! Redact: masks, hashes or drops sensitive values before the event leaves the node.
//!
//! The rules live in `shiplog_core::redact` because the query service applies the same ones
//! again at its direct ingest endpoints; this module is where the collector's pipeline
//! picks them up.

pub use shiplog_core::redact::{MASK, REDACTED_FIELD, Redact, Replacement, luhn_valid, redact_all};
