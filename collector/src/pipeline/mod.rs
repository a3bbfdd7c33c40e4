//! The stages between sources and sinks. For now one: the [`Batcher`].

mod batcher;

pub use batcher::{Batcher, BatcherConfig, BatcherStats};
