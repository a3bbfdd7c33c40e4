//! Sources: where events come from. Each source writes [`Event`]s into one shared
//! [`EventSender`] and stops when the shutdown token is cancelled.
//!
//! # When the channel is full: sources wait
//!
//! The channel to the batcher is bounded ([`CollectorConfig::channel_capacity`]). When it is
//! full, a source's send waits until the batcher takes events again; nothing is dropped.
//! For Docker this is the right default: while we wait, the engine keeps the lines in the
//! container's own log files, and we read on from where we paused. The cost is that a sink
//! outage longer than Docker's log rotation loses the oldest lines there, not here; a disk
//! buffer (later) is the answer to that, not dropping in memory.
//!
//! [`CollectorConfig::channel_capacity`]: crate::CollectorConfig::channel_capacity

use shiplog_core::Event;

use crate::checkpoint::SourcePosition;

pub mod docker;

/// An event on its way to the batcher, with the source position it ends at: once the
/// batch holding it is acknowledged, that position is the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceEvent {
    /// The event.
    pub event: Event,
    /// Where the event ends in its source, when the source can resume from there.
    pub end: Option<SourcePosition>,
}

impl From<Event> for SourceEvent {
    fn from(event: Event) -> Self {
        SourceEvent { event, end: None }
    }
}

/// The sending half of the bounded channel every source writes to.
pub type EventSender = tokio::sync::mpsc::Sender<SourceEvent>;
