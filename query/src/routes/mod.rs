//! One module per group of endpoints.

pub mod compat;
pub mod health;
pub mod ingest;
pub mod search;
pub mod tail;
