//! One module per group of endpoints.

pub mod aggregate;
pub mod alerts;
pub mod compat;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod predictions;
pub mod prom;
pub mod retention;
pub mod search;
pub mod services;
pub mod tail;
