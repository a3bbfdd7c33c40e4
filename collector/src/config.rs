//! Settings of one collector.

use std::time::Duration;

use crate::error::{Error, Result};

/// How one collector runs: where Docker is, how it batches, how much it buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Name of this node, stamped on every event; defaults to the host name.
    pub node: String,
    /// Docker endpoint (`unix:///var/run/docker.sock`, `tcp://host:2375`); `None` uses
    /// bollard's defaults, which honour `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// A batch is sent once it holds this many events.
    pub batch_max_events: usize,
    /// A batch is sent once its estimated encoded size reaches this many bytes.
    pub batch_max_bytes: usize,
    /// A batch is sent once its oldest event has waited this long.
    pub batch_max_age: Duration,
    /// Capacity, in events, of the channel between the sources and the batcher. When it is
    /// full, sources wait (see [`sources`](crate::sources)).
    pub channel_capacity: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            node: hostname(),
            docker_host: None,
            batch_max_events: 10_000,
            batch_max_bytes: 1024 * 1024,
            batch_max_age: Duration::from_millis(100),
            channel_capacity: 10_000,
        }
    }
}

impl CollectorConfig {
    /// Checks that every value is usable, naming the first one that is not.
    pub fn validate(&self) -> Result<()> {
        if self.node.trim().is_empty() {
            return Err(Error::Config {
                name: "node",
                value: format!("{:?}", self.node),
                hint: "set a non-empty node name",
            });
        }
        let positive = [
            ("batch_max_events", self.batch_max_events),
            ("batch_max_bytes", self.batch_max_bytes),
            ("channel_capacity", self.channel_capacity),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Config {
                    name,
                    value: "0".into(),
                    hint: "use a value of at least 1",
                });
            }
        }
        if self.batch_max_age.is_zero() {
            return Err(Error::Config {
                name: "batch_max_age",
                value: "0s".into(),
                hint: "use a duration above zero, for example 100ms",
            });
        }
        Ok(())
    }
}

/// This machine's host name, or `unknown` when it cannot be read.
pub fn hostname() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let from_env = || std::env::var("HOSTNAME").ok();
    from_kernel
        .or_else(from_env)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeroes_are_named() {
        let config = CollectorConfig::default();
        config.validate().unwrap();
        assert!(!config.node.is_empty());
        let bad = CollectorConfig {
            channel_capacity: 0,
            ..CollectorConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("channel_capacity = 0"), "{err}");
    }
}
