//! The stages between sources and sinks. For now one: the [`Batcher`].

mod batcher;
mod delivery;

pub use batcher::{Batcher, BatcherConfig, BatcherStats, DEFAULT_SPILL_AFTER};
