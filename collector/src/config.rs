//! Settings of one collector.
//!
//! Plain values without serde: the binary maps its TOML sections onto these. Patterns are
//! kept as strings here (so the config compares and prints) and compiled once by
//! [`CollectorConfig::validate`] and the parts that use them.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
pub use shiplog_core::prediction_config::PredictionsConfig;

pub use crate::buffer::WhenFull;
use crate::error::{Error, Result};
use crate::transforms::multiline::DEFAULT_FLUSH_TIMEOUT;

/// Longest pattern accepted, in bytes (a config typo, not a real pattern, beyond that).
const MAX_PATTERN_BYTES: usize = 4096;
/// Compiled size cap of one pattern, so a pattern cannot take the node's memory.
const PATTERN_SIZE_LIMIT: usize = 1024 * 1024;
/// How often each running container's metrics are sampled by default.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(10);
/// How often the collector ships its own metrics by default.
pub const DEFAULT_TELEMETRY_INTERVAL: Duration = Duration::from_secs(60);

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
    /// Directory for the collector's own state (checkpoints). `None`: nothing is kept, and
    /// after a restart running containers are read from the restart on.
    pub state_dir: Option<PathBuf>,
    /// Containers whose name matches one of these regexes are not collected.
    pub exclude_names: Vec<String>,
    /// Containers whose image matches one of these regexes are not collected.
    pub exclude_images: Vec<String>,
    /// When any include list is non-empty, only containers matching at least one include
    /// entry (name regex, image regex or label) are collected; exclusions still win.
    pub include_names: Vec<String>,
    /// Image regexes of containers to collect (see `include_names`).
    pub include_images: Vec<String>,
    /// Labels of containers to collect, as `key=value` (or `key`: any value); see
    /// `include_names`.
    pub include_labels: Vec<String>,
    /// Join continuation lines (stack traces, tracebacks, indented lines) into one event.
    pub multiline: bool,
    /// A regex: a line matching it starts a new event, any other line continues the
    /// previous one. `None`: the known Java and Python forms and indented lines continue.
    pub multiline_start_pattern: Option<String>,
    /// How long the last line of a burst waits for a continuation before it is sent.
    pub multiline_flush_timeout: Duration,
    /// Regex parse rules: named captures become fields.
    pub parse_rules: Vec<ParseRule>,
    /// Redaction rules, applied last, before events leave the node.
    pub redact_rules: Vec<RedactRule>,
    /// How often each running container's metrics (CPU, memory, network, block I/O, pids)
    /// are sampled from Docker's stats stream; zero turns metrics off. Docker refreshes its
    /// stats about once a second, so shorter intervals sample once a second.
    pub metrics_interval: Duration,
    /// Cap on the disk buffer (`state_dir/buffer/`) that holds batches while the indexer is
    /// down or slow; unused without a `state_dir` (batches are then retried in memory).
    pub buffer_max_bytes: u64,
    /// What happens when the disk buffer is full: `Block` (default: stop reading, Docker
    /// keeps the lines) or `DropNewest` (drop the batch, counted).
    pub buffer_when_full: WhenFull,
    /// A direct send taking longer than this goes to the disk buffer instead, so reading
    /// never waits on a slow indexer for longer.
    pub buffer_spill_after: Duration,
    /// Containers already running when the collector starts, with no checkpoint, are read
    /// from the beginning of their stored logs (`true`) or from a second before the start
    /// (`false`, default: a first install does not re-ship a host's whole history).
    pub read_from_head: bool,
    /// Longest line kept, in bytes (default 256 KiB, from 1 KiB to 512 KiB): the rest of a
    /// longer line (or of a joined multi-line event) is cut and the event flagged
    /// `truncated`, never dropped.
    pub max_line_bytes: usize,
    /// Reads containers' logs (those without a TTY) straight from the engine's Unix socket
    /// (`true`, default: about two thirds of the CPU per line, see `raw_logs`) or through
    /// the Docker client like everything else (`false`). An engine reached over TCP is read
    /// through the client either way.
    pub docker_socket_logs: bool,
    /// Reads followed `json-file` logs straight from the engine's files (`true`, default),
    /// holding each one open through rotations, where the engine is local and its files
    /// readable; the engine's own followed log loses whole files at rotation when its
    /// reader falls behind (see `sources::docker::rotation`). `false`, or where the files
    /// cannot be read: through the engine's log endpoint, as `docker_socket_logs` says.
    pub docker_log_files: bool,
    /// How often the collector's own metrics are shipped as events of service `shiplog`;
    /// zero turns that off (they are still served by `render_prometheus`).
    pub telemetry_interval: Duration,
    /// Which containers write predictions, how their JSON lines map onto predictions, and
    /// the redactions those containers' events get before they leave the node.
    pub predictions: PredictionsConfig,
}

/// Which containers a rule applies to: each pattern given must match; none given: all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerMatch {
    /// Regex on the container name.
    pub name: Option<String>,
    /// Regex on the image reference.
    pub image: Option<String>,
}

/// A regex parse transform: the named captures of `pattern` become fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseRule {
    /// Name, for messages.
    pub name: String,
    /// Regex with named groups (`(?P<status>\d{3})`).
    pub pattern: String,
    /// Containers it applies to.
    pub containers: ContainerMatch,
}

/// A redaction transform: what `pattern` matches is masked or hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactRule {
    /// Name, listed in `fields._redacted` of each event it changed.
    pub name: String,
    /// Regex of what to hide.
    pub pattern: String,
    /// `None`: replace with `****`. `Some(key)`: replace with `sha256:<16 hex>`, an
    /// HMAC-SHA256 under this key, so equal values can still be correlated.
    pub hash_key: Option<String>,
    /// Containers it applies to.
    pub containers: ContainerMatch,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            node: hostname(),
            docker_host: None,
            batch_max_events: 10_000,
            batch_max_bytes: 1024 * 1024,
            batch_max_age: Duration::from_millis(100),
            // Enough to keep the batcher busy while a batch is in flight (bulk throughput
            // was the same at 10,000), and each slot is an event held in memory.
            channel_capacity: 2_048,
            state_dir: None,
            exclude_names: Vec::new(),
            exclude_images: Vec::new(),
            include_names: Vec::new(),
            include_images: Vec::new(),
            include_labels: Vec::new(),
            multiline: true,
            multiline_start_pattern: None,
            multiline_flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            parse_rules: Vec::new(),
            redact_rules: Vec::new(),
            metrics_interval: DEFAULT_METRICS_INTERVAL,
            buffer_max_bytes: crate::buffer::DEFAULT_MAX_BYTES,
            buffer_when_full: WhenFull::Block,
            buffer_spill_after: crate::pipeline::DEFAULT_SPILL_AFTER,
            read_from_head: false,
            max_line_bytes: crate::sources::docker::line::MAX_LINE_BYTES,
            docker_socket_logs: true,
            docker_log_files: true,
            telemetry_interval: DEFAULT_TELEMETRY_INTERVAL,
            predictions: PredictionsConfig::default(),
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
        {
            use crate::sources::docker::line::{MAX_LINE_CAP, MIN_LINE_CAP};
            if !(MIN_LINE_CAP..=MAX_LINE_CAP).contains(&self.max_line_bytes) {
                return Err(Error::Config {
                    name: "max_line_bytes",
                    value: self.max_line_bytes.to_string(),
                    hint: "use a size from 1KiB to 512KiB (default 256KiB); an event's JSON \
                           must stay under the indexer's 4 MiB line limit",
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
        if self.buffer_max_bytes == 0 {
            return Err(Error::Config {
                name: "buffer_max_bytes",
                value: "0".into(),
                hint: "use a size above zero, for example 1GiB",
            });
        }
        if self.buffer_spill_after.is_zero() {
            return Err(Error::Config {
                name: "buffer_spill_after",
                value: "0s".into(),
                hint: "use a duration above zero, for example 5s",
            });
        }
        if self.multiline && self.multiline_flush_timeout.is_zero() {
            return Err(Error::Config {
                name: "multiline_flush_timeout",
                value: "0s".into(),
                hint: "use a duration above zero, for example 50ms",
            });
        }
        let lists = [
            ("exclude_names", &self.exclude_names),
            ("exclude_images", &self.exclude_images),
            ("include_names", &self.include_names),
            ("include_images", &self.include_images),
        ];
        for (name, patterns) in lists {
            for pattern in patterns {
                compile_pattern(name, pattern)?;
            }
        }
        if let Some(label) = self
            .include_labels
            .iter()
            .find(|l| l.trim().is_empty() || l.starts_with('='))
        {
            return Err(Error::Config {
                name: "include_labels",
                value: format!("{label:?}"),
                hint: "write each entry as key=value or key",
            });
        }
        if let Some(pattern) = &self.multiline_start_pattern {
            compile_pattern("multiline_start_pattern", pattern)?;
        }
        for rule in &self.parse_rules {
            check_rule("parse_rules", &rule.name, &rule.pattern, &rule.containers)?;
        }
        for rule in &self.redact_rules {
            check_rule("redact_rules", &rule.name, &rule.pattern, &rule.containers)?;
            if rule.hash_key.as_deref().is_some_and(str::is_empty) {
                return Err(Error::Config {
                    name: "redact_rules.hash_key",
                    value: format!("\"\" (rule {})", rule.name),
                    hint: "give a secret key, or none to mask with ****",
                });
            }
        }
        self.predictions.validate().map_err(Error::Predictions)?;
        Ok(())
    }
}

fn check_rule(
    list: &'static str,
    name: &str,
    pattern: &str,
    containers: &ContainerMatch,
) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::Config {
            name: list,
            value: format!("a rule with pattern {pattern:?}"),
            hint: "give every rule a name",
        });
    }
    compile_pattern(list, pattern)?;
    for pattern in containers.name.iter().chain(&containers.image) {
        compile_pattern(list, pattern)?;
    }
    Ok(())
}

/// Compiles a configured regex, naming the setting when it is not one.
pub(crate) fn compile_pattern(setting: &'static str, pattern: &str) -> Result<Regex> {
    let invalid = |reason: String| Error::Pattern {
        setting,
        pattern: pattern.chars().take(200).collect(),
        reason,
    };
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(invalid(format!("longer than {MAX_PATTERN_BYTES} bytes")));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| invalid(e.to_string()))
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
        assert_eq!(config.max_line_bytes, 256 * 1024);
        for cap in [0, 1023, 512 * 1024 + 1, usize::MAX] {
            let bad = CollectorConfig {
                max_line_bytes: cap,
                ..CollectorConfig::default()
            };
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("max_line_bytes = {cap}")), "{err}");
            assert!(err.contains("1KiB to 512KiB"), "{err}");
        }
        for cap in [1024, 512 * 1024] {
            CollectorConfig {
                max_line_bytes: cap,
                ..CollectorConfig::default()
            }
            .validate()
            .unwrap();
        }
        assert!(config.multiline, "multiline is on by default");
        assert_eq!(config.multiline_flush_timeout, Duration::from_millis(50));
        assert_eq!(config.state_dir, None);
    }

    #[test]
    fn bad_patterns_and_rules_are_named() {
        let bad = CollectorConfig {
            exclude_names: vec!["ok".into(), "(unclosed".into()],
            ..CollectorConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("exclude_names") && err.contains("(unclosed"),
            "{err}"
        );

        let unnamed = CollectorConfig {
            redact_rules: vec![RedactRule {
                name: " ".into(),
                pattern: "x".into(),
                hash_key: None,
                containers: ContainerMatch::default(),
            }],
            ..CollectorConfig::default()
        };
        let err = unnamed.validate().unwrap_err().to_string();
        assert!(err.contains("redact_rules"), "{err}");

        let label = CollectorConfig {
            include_labels: vec!["=x".into()],
            ..CollectorConfig::default()
        };
        assert!(label.validate().is_err());
    }
}
