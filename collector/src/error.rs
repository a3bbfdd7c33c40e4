//! The collector's error type.
//!
//! Only setup can fail: once [`run`](crate::run) is going, trouble with Docker or the sink is
//! retried and logged, never returned.

use std::error::Error as StdError;
use std::fmt::Write as _;

/// Why the collector could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting has a value the collector cannot work with.
    #[error("invalid collector setting {name} = {value}: {hint}")]
    Config {
        /// The setting's name.
        name: &'static str,
        /// The value that was given.
        value: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// A configured regex does not compile.
    #[error("invalid pattern in {setting}: '{pattern}': {reason}")]
    Pattern {
        /// The setting holding it.
        setting: &'static str,
        /// The pattern (its first 200 characters).
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },
    /// The `[predictions]` section is unusable (a rule, a pattern, the hash key).
    #[error("{0}")]
    Predictions(#[source] shiplog_core::prediction_config::PredictionConfigError),
    /// The state directory cannot be created or read.
    #[error("cannot use state directory '{path}': {source}: check that it is writable")]
    StateDir {
        /// The directory.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The indexer address cannot be turned into an ingest URL.
    #[error("invalid indexer url '{url}': {reason}")]
    SinkUrl {
        /// The URL that was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (for example no TLS roots are available).
    #[error("cannot build the http client: {}", chain(.0))]
    HttpClient(#[source] reqwest::Error),
    /// The Docker host setting names a transport bollard cannot use.
    #[error(
        "cannot use docker host '{host}': {source}: use unix:///path, tcp://host:port or http://host:port"
    )]
    DockerHost {
        /// The host that was given.
        host: String,
        /// bollard's reason.
        #[source]
        source: bollard::errors::Error,
    },
    /// A pipeline task panicked or was aborted.
    #[error("collector task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An error and all its sources on one line, `outer: inner: innermost`.
///
/// reqwest and hyper hide the useful part ("connection refused") in the source chain.
pub(crate) fn chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_lists_every_cause_once() {
        let err = Outer(std::io::Error::other("connection refused"));
        assert_eq!(chain(&err), "outer: connection refused");
    }
}
