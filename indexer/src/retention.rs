//! Retention: old data goes away on schedule, oldest day first.
//!
//! Each kind keeps its own age (logs 7 d, metrics 30 d, predictions 400 d by default;
//! registrations follow logs). A day whose every kind has expired is dropped as a whole
//! directory; a day where only some kinds have expired has those kinds deleted (tantivy
//! deletes apply atomically at commit, and merges reclaim the space). When the total size is
//! over `max_total_bytes`, whole days are dropped oldest first until it fits, whatever they
//! hold: size pressure wins over ages.
//!
//! A day under legal hold (`<data_dir>/audit/holds.json`, see [`crate::audit::holds`]) is
//! never touched: where retention would drop, delete from or roll up a held day, the plan
//! says `held` instead, and the size cap passes over it to the next day (its bytes still
//! count, since they stay on disk).
//!
//! A dropped day leaves the store's map before its files are removed; searches already
//! running keep the day's open readers (the files stay readable until closed), so a search
//! sees a day whole or not at all.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shiplog_core::{Kind, Timestamp};

/// How long each kind is kept, and the size cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Logs and registrations.
    #[serde(with = "crate::config::duration_ms")]
    pub logs: Duration,
    /// Metric samples.
    #[serde(with = "crate::config::duration_ms")]
    pub metrics: Duration,
    /// Predictions.
    #[serde(with = "crate::config::duration_ms")]
    pub predictions: Duration,
    /// Largest total size of all day indexes; `None`: no cap.
    pub max_total_bytes: Option<u64>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        RetentionPolicy {
            logs: Duration::from_secs(7 * DAY),
            metrics: Duration::from_secs(30 * DAY),
            predictions: Duration::from_secs(400 * DAY),
            max_total_bytes: None,
        }
    }
}

impl RetentionPolicy {
    /// How long events of a kind are kept.
    pub fn keep(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Log | Kind::Registration => self.logs,
            Kind::Metric => self.metrics,
            Kind::Prediction => self.predictions,
        }
    }
}

/// One thing retention will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RetentionStep {
    /// Remove a whole day.
    DropDay {
        /// `yyyy-mm-dd`
        day: String,
        /// Bytes it takes on disk.
        bytes: u64,
        /// Events in it.
        events: u64,
        /// Why: `age` or `size`.
        reason: &'static str,
    },
    /// Replace a day's raw metric samples with per-minute roll-ups.
    RollUpMetrics {
        /// `yyyy-mm-dd`
        day: String,
        /// Raw samples to roll up.
        samples: u64,
    },
    /// Leave a day alone that retention would otherwise change: it is under legal hold.
    Held {
        /// `yyyy-mm-dd`
        day: String,
        /// Bytes it takes on disk.
        bytes: u64,
        /// Events in it.
        events: u64,
    },
    /// Delete one kind of events from a day.
    DeleteKind {
        /// `yyyy-mm-dd`
        day: String,
        /// The kind.
        kind: Kind,
        /// How many events.
        events: u64,
    },
}

/// Every step, in the order they are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    /// The steps.
    pub steps: Vec<RetentionStep>,
}

/// What a day holds, for planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFacts {
    /// `yyyy-mm-dd`
    pub day: String,
    /// Bytes on disk.
    pub bytes: u64,
    /// Events per kind.
    pub counts: Vec<(Kind, u64)>,
    /// Metric samples not rolled up yet.
    pub raw_metrics: u64,
}

const KINDS: [Kind; 4] = [
    Kind::Log,
    Kind::Registration,
    Kind::Metric,
    Kind::Prediction,
];

/// Decides what goes. `days` oldest first. A day's events are all older than the end of
/// the day, so a kind expires for a day once the day's end is older than its keep time.
pub fn plan(days: &[DayFacts], policy: &RetentionPolicy, now: Timestamp) -> RetentionPlan {
    plan_with_holds(days, policy, now, &|_| false)
}

/// Like [`plan`], leaving every day for which `held` is true as it is (a `Held` step says
/// so when retention would otherwise have changed it).
pub fn plan_with_holds(
    days: &[DayFacts],
    policy: &RetentionPolicy,
    now: Timestamp,
    held: &dyn Fn(&str) -> bool,
) -> RetentionPlan {
    let mut steps = Vec::new();
    let mut kept: Vec<&DayFacts> = Vec::new();
    let held_step = |d: &DayFacts| RetentionStep::Held {
        day: d.day.clone(),
        bytes: d.bytes,
        events: d.counts.iter().map(|(_, n)| n).sum(),
    };
    for d in days {
        let Ok(start) = Timestamp::parse_rfc3339(&d.day) else {
            continue;
        };
        let end = start.offset(86_400 * 1_000_000_000);
        let expired = |k: Kind| {
            let keep = i64::try_from(policy.keep(k).as_nanos()).unwrap_or(i64::MAX);
            end.as_nanos() <= now.as_nanos().saturating_sub(keep)
        };
        let mut day_steps = Vec::new();
        let present: Vec<(Kind, u64)> = d.counts.iter().copied().filter(|(_, n)| *n > 0).collect();
        let dropped = present.iter().all(|(k, _)| expired(*k));
        if dropped {
            let events = present.iter().map(|(_, n)| n).sum();
            day_steps.push(RetentionStep::DropDay {
                day: d.day.clone(),
                bytes: d.bytes,
                events,
                reason: "age",
            });
        } else {
            for k in KINDS {
                if let Some((_, n)) = present.iter().find(|(pk, _)| *pk == k)
                    && expired(k)
                {
                    day_steps.push(RetentionStep::DeleteKind {
                        day: d.day.clone(),
                        kind: k,
                        events: *n,
                    });
                }
            }
            let roll_up_before = now
                .as_nanos()
                .saturating_sub(crate::rollup::ROLL_UP_AFTER_NANOS);
            if end.as_nanos() <= roll_up_before && d.raw_metrics > 0 && !expired(Kind::Metric) {
                day_steps.push(RetentionStep::RollUpMetrics {
                    day: d.day.clone(),
                    samples: d.raw_metrics,
                });
            }
        }
        if held(&d.day) {
            if !day_steps.is_empty() {
                steps.push(held_step(d));
            }
            kept.push(d);
            continue;
        }
        steps.extend(day_steps);
        if !dropped {
            kept.push(d);
        }
    }
    if let Some(max) = policy.max_total_bytes {
        let mut total: u64 = kept.iter().map(|d| d.bytes).sum();
        for d in kept {
            if total <= max {
                break;
            }
            if held(&d.day) {
                let noted = steps
                    .iter()
                    .any(|s| matches!(s, RetentionStep::Held { day, .. } if *day == d.day));
                if !noted {
                    steps.push(held_step(d));
                }
                continue;
            }
            // The size cap drops whole days; any kind deletions planned for it are moot.
            steps.retain(|s| {
                !matches!(s, RetentionStep::DeleteKind { day, .. } | RetentionStep::RollUpMetrics { day, .. } if *day == d.day)
            });
            let events = d.counts.iter().map(|(_, n)| n).sum();
            steps.push(RetentionStep::DropDay {
                day: d.day.clone(),
                bytes: d.bytes,
                events,
                reason: "size",
            });
            total -= d.bytes;
        }
    }
    RetentionPlan { steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(day: &str, bytes: u64, counts: &[(Kind, u64)]) -> DayFacts {
        DayFacts {
            day: day.into(),
            bytes,
            counts: counts.to_vec(),
            raw_metrics: 0,
        }
    }

    #[test]
    fn drops_expired_days_and_deletes_expired_kinds_only() {
        let now = Timestamp::parse_rfc3339("2026-11-22T12:00:00Z").unwrap();
        let days = [
            facts("2026-10-01", 100, &[(Kind::Log, 5), (Kind::Metric, 5)]),
            facts(
                "2026-11-01",
                100,
                &[(Kind::Log, 5), (Kind::Metric, 5), (Kind::Prediction, 1)],
            ),
            facts("2026-11-14", 100, &[(Kind::Log, 5)]),
            facts("2026-11-15", 100, &[(Kind::Log, 5)]),
            facts("2026-11-16", 100, &[(Kind::Log, 5)]),
        ];
        let p = plan(&days, &RetentionPolicy::default(), now);
        assert_eq!(
            p.steps,
            vec![
                RetentionStep::DropDay {
                    day: "2026-10-01".into(),
                    bytes: 100,
                    events: 10,
                    reason: "age"
                },
                RetentionStep::DeleteKind {
                    day: "2026-11-01".into(),
                    kind: Kind::Log,
                    events: 5
                },
                RetentionStep::DropDay {
                    day: "2026-11-14".into(),
                    bytes: 100,
                    events: 5,
                    reason: "age"
                },
            ],
            "2026-11-15 ends on the 16th at 00:00, less than 7 days before the 22nd at noon: kept"
        );
    }

    #[test]
    fn metric_samples_past_a_day_are_rolled_up_once() {
        let now = Timestamp::parse_rfc3339("2026-11-22T12:00:00Z").unwrap();
        let mut old = facts("2026-11-20", 100, &[(Kind::Metric, 50)]);
        old.raw_metrics = 50;
        let mut yesterday = facts("2026-11-21", 100, &[(Kind::Metric, 50)]);
        yesterday.raw_metrics = 50;
        let done = facts("2026-11-19", 100, &[(Kind::Metric, 5)]);
        let p = plan(&[done, old, yesterday], &RetentionPolicy::default(), now);
        assert_eq!(
            p.steps,
            vec![RetentionStep::RollUpMetrics {
                day: "2026-11-20".into(),
                samples: 50
            }]
        );
    }

    #[test]
    fn the_size_cap_drops_whole_days_oldest_first() {
        let now = Timestamp::parse_rfc3339("2026-11-22T12:00:00Z").unwrap();
        let days = [
            facts("2026-11-20", 300, &[(Kind::Log, 3)]),
            facts("2026-11-21", 300, &[(Kind::Log, 3)]),
            facts("2026-11-22", 300, &[(Kind::Log, 3)]),
        ];
        let policy = RetentionPolicy {
            max_total_bytes: Some(550),
            ..RetentionPolicy::default()
        };
        let p = plan(&days, &policy, now);
        assert_eq!(
            p.steps,
            vec![
                RetentionStep::DropDay {
                    day: "2026-11-20".into(),
                    bytes: 300,
                    events: 3,
                    reason: "size"
                },
                RetentionStep::DropDay {
                    day: "2026-11-21".into(),
                    bytes: 300,
                    events: 3,
                    reason: "size"
                },
            ]
        );
        assert!(
            plan(&days, &RetentionPolicy::default(), now)
                .steps
                .is_empty()
        );
    }

    #[test]
    fn held_days_are_never_dropped_deleted_from_or_rolled_up() {
        let now = Timestamp::parse_rfc3339("2026-11-22T12:00:00Z").unwrap();
        let mut metrics = facts("2026-11-20", 100, &[(Kind::Metric, 50)]);
        metrics.raw_metrics = 50;
        let days = [
            facts("2026-10-01", 100, &[(Kind::Log, 5)]),
            facts("2026-11-01", 100, &[(Kind::Log, 5), (Kind::Prediction, 1)]),
            facts("2026-11-10", 300, &[(Kind::Prediction, 3)]),
            metrics,
            facts("2026-11-21", 300, &[(Kind::Prediction, 3)]),
        ];
        let held = |d: &str| d != "2026-11-21";
        let policy = RetentionPolicy {
            max_total_bytes: Some(100),
            ..RetentionPolicy::default()
        };
        let p = plan_with_holds(&days, &policy, now, &held);
        let held_days: Vec<&str> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                RetentionStep::Held { day, .. } => Some(day.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            held_days,
            ["2026-10-01", "2026-11-01", "2026-11-20", "2026-11-10"],
            "age, kind, roll-up, then size: every change to a held day is held instead"
        );
        assert_eq!(
            p.steps.last(),
            Some(&RetentionStep::DropDay {
                day: "2026-11-21".into(),
                bytes: 300,
                events: 3,
                reason: "size"
            }),
            "the size cap passes over held days to the next one"
        );
        assert_eq!(p.steps.len(), 5);
    }
}
