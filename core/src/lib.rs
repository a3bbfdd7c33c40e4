//! shiplog-core: the types every other crate speaks.
//!
//! - [`Event`](event::Event) is the one record type (logs, predictions, metrics,
//!   registrations), with a deterministic [`EventId`](id::EventId) and a nanosecond
//!   [`Timestamp`](timestamp::Timestamp).
//! - [`accept`] bounds the event times one batch may carry (days per batch, past and
//!   future).
//! - [`codec`] turns batches of events into zstd NDJSON and back, with size caps.
//! - [`query`] parses the search language into a tree that the indexer compiles to tantivy
//!   and that live tail evaluates in memory.
//! - [`prediction_config`] turns the `[predictions]` config section into the
//!   [`prediction`] mapping and [`redact`] rules that collector and API both apply.
//!
//! Nothing here does I/O beyond in-memory compression (and reading the environment
//! variable a `[predictions]` section may name for its hash key).

pub mod accept;
pub mod codec;
pub mod digest;
pub mod event;
pub mod id;
pub mod prediction;
pub mod prediction_config;
pub mod query;
pub mod redact;
pub mod timestamp;
pub mod units;

pub use event::{Event, Flag, GAP_FIELD, Kind, Level, Port, RegistrationState, Stream};
pub use id::EventId;
pub use timestamp::Timestamp;
