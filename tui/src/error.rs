//! The one error type of the TUI: what can stop it before or while it runs.

use std::io;

/// Why the terminal UI could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The server address is not a usable URL.
    #[error("invalid server url '{url}': {reason}; pass something like http://127.0.0.1:7070")]
    InvalidUrl {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS setup, bad token characters, ...).
    #[error("cannot set up the http client: {0}")]
    Http(#[from] reqwest::Error),
    /// The token cannot be sent in an `Authorization` header.
    #[error("invalid token: it must be printable ascii without spaces")]
    InvalidToken,
    /// Reading from or writing to the terminal failed.
    #[error("terminal i/o failed: {0}")]
    Terminal(#[from] io::Error),
    /// The background client thread could not be started.
    #[error("cannot start the client thread: {0}")]
    Thread(io::Error),
    /// Termination signals could not be watched.
    #[error("cannot watch termination signals: {0}")]
    Signals(io::Error),
}

/// Result with [`TuiError`].
pub type Result<T, E = TuiError> = std::result::Result<T, E>;

/// Backends that cannot fail (ratatui's `TestBackend`, used by tests and the benchmark).
impl From<std::convert::Infallible> for TuiError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
