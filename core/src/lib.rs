//! shiplog-core: the types every other crate speaks.
//!
//! - [`Event`](event::Event) is the one record type (logs, predictions, metrics,
//!   registrations), with a deterministic [`EventId`](id::EventId) and a nanosecond
//!   [`Timestamp`](timestamp::Timestamp).
//! - [`codec`] turns batches of events into zstd NDJSON and back, with size caps.
//! - [`query`] parses the search language into a tree that the indexer compiles to tantivy
//!   and that live tail evaluates in memory.
//!
//! Nothing here does I/O beyond in-memory compression.

pub mod codec;
pub mod event;
pub mod id;
pub mod query;
pub mod timestamp;
pub mod units;

pub use event::{Event, Flag, Kind, Level, Port, RegistrationState, Stream};
pub use id::EventId;
pub use timestamp::Timestamp;
