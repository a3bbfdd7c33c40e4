//! tracing setup: human-readable lines on stderr, `RUST_LOG` honoured, and a slot for the
//! OTLP span export that `[telemetry]` may start later (see [`crate::otel`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber. `-v` raises shiplog's own level, `-q` lowers it.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let default = format!(
        "warn,shiplog={level},shiplog_core={level},shiplog_collector={level},shiplog_indexer={level},shiplog_query={level}"
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // The per-request span exists for OTLP traces; on stderr it would prefix every
        // line logged while serving a request.
        .with_filter(filter_fn(|meta| {
            meta.target() != shiplog_query::telemetry::REQUEST_SPAN_TARGET
        }));
    // The filter applies to both outputs: what `RUST_LOG` leaves out is neither logged nor
    // exported.
    let _ = tracing_subscriber::registry()
        .with(crate::otel::Slot)
        .with(filter)
        .with(fmt)
        .try_init();
}
