//! One module per group of endpoints.

pub mod aggregate;
pub mod compat;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod prom;
pub mod retention;
pub mod search;
pub mod services;
pub mod tail;
