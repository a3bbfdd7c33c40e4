//! Metric roll-ups: once a day's samples are older than 24 h, they become one event per
//! container, metric and minute carrying min, max, avg, last and count; the raw samples go
//! in the same commit, so a search sees either the raw samples or the roll-ups, never both
//! and never neither.
//!
//! A roll-up event is a metric event whose `value` is the minute's average (so metric series
//! read it like a sample) with `fields.resolution = "1m"` and the statistics in `fields`.
//! Its id is derived from container, metric and minute. A day that receives late samples
//! after its roll-up is rolled up again with its earlier roll-ups folded in, and all of its
//! metric events are replaced in one commit, so a minute never appears twice.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use shiplog_core::{Event, EventId, Kind, Timestamp};

/// Samples this old (by their day's end) are rolled up.
pub const ROLL_UP_AFTER_NANOS: i64 = 24 * 3600 * 1_000_000_000;
/// Width of one roll-up bucket.
pub const BUCKET_NANOS: i64 = 60 * 1_000_000_000;
/// `fields.resolution` of roll-up events.
pub const RESOLUTION: &str = "1m";

/// One minute of one metric of one container.
#[derive(Debug, Clone)]
struct Bucket {
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
    last_ts: Timestamp,
    last: f64,
    unit: Option<String>,
}

/// Folds raw samples into per-minute buckets; memory grows with containers × metrics ×
/// minutes (about 1.2 M buckets for 100 containers × 8 metrics × a day), not with samples.
#[derive(Debug, Default)]
pub struct RollUp {
    buckets: HashMap<(String, String, i64), Bucket>,
    /// Metadata of each container, from its first sample.
    containers: HashMap<String, Event>,
    /// Samples folded in.
    pub samples: u64,
    /// Metric events that cannot be rolled up (no name or no finite value): kept as they are.
    kept: Vec<Event>,
}

impl RollUp {
    /// Adds one raw sample, or folds in an earlier roll-up (so late samples for a day that
    /// was already rolled up merge into its minutes instead of doubling them); events that
    /// are not metric samples with a name and a value are ignored.
    pub fn add(&mut self, e: &Event) {
        let (Kind::Metric, Some(name), Some(value)) = (e.kind, e.name.as_ref(), e.value) else {
            if e.kind == Kind::Metric {
                self.kept.push(e.clone());
            }
            return;
        };
        if !value.is_finite() {
            self.kept.push(e.clone());
            return;
        }
        let stat = |k: &str| e.fields.get(k).and_then(Value::as_f64);
        // A roll-up counts as `count` samples with its own min, max and last.
        let (min, max, sum, count, last) = if is_rollup(e) {
            let count = stat("count").unwrap_or(1.0).max(1.0);
            (
                stat("min").unwrap_or(value),
                stat("max").unwrap_or(value),
                value * count,
                count as u64,
                stat("last").unwrap_or(value),
            )
        } else {
            self.samples += 1;
            (value, value, value, 1, value)
        };
        let minute = e.ts.as_nanos().div_euclid(BUCKET_NANOS) * BUCKET_NANOS;
        self.containers
            .entry(e.container_id.clone())
            .or_insert_with(|| {
                let mut meta = e.clone();
                meta.fields = Map::new();
                meta
            });
        let b = self
            .buckets
            .entry((e.container_id.clone(), name.clone(), minute))
            .or_insert(Bucket {
                min,
                max,
                sum: 0.0,
                count: 0,
                last_ts: e.ts,
                last,
                unit: e.unit.clone(),
            });
        b.min = b.min.min(min);
        b.max = b.max.max(max);
        b.sum += sum;
        b.count += count;
        if e.ts >= b.last_ts {
            b.last_ts = e.ts;
            b.last = last;
        }
    }

    /// The roll-up events, oldest first, then the metric events that could not be rolled up
    /// (they are replaced like the rest, so they must be written back).
    pub fn finish(self) -> Vec<Event> {
        let mut out: Vec<Event> = self
            .buckets
            .into_iter()
            .map(|((container, name, minute), b)| {
                let meta = &self.containers[&container];
                let avg = b.sum / b.count as f64;
                let ts = Timestamp(minute);
                let mut e = Event {
                    id: EventId::for_content(&[
                        b"rollup",
                        container.as_bytes(),
                        name.as_bytes(),
                        &minute.to_le_bytes(),
                    ]),
                    ts,
                    received: Some(ts),
                    kind: Kind::Metric,
                    node: meta.node.clone(),
                    container_id: container.clone(),
                    container_name: meta.container_name.clone(),
                    image: meta.image.clone(),
                    service: meta.service.clone(),
                    name: Some(name.clone()),
                    value: Some(avg),
                    unit: b.unit.clone(),
                    ..Event::default()
                };
                let stats = json!({
                    "metric": name,
                    "resolution": RESOLUTION,
                    "min": b.min,
                    "max": b.max,
                    "avg": avg,
                    "last": b.last,
                    "count": b.count,
                });
                if let Value::Object(m) = stats {
                    e.fields = m;
                }
                e
            })
            .collect();
        out.sort_by_key(|e| (e.ts, e.id));
        out.extend(self.kept);
        out
    }
}

/// Whether an event is a roll-up rather than a raw sample.
pub fn is_rollup(e: &Event) -> bool {
    e.fields.get("resolution").and_then(Value::as_str) == Some(RESOLUTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(container: &str, name: &str, secs: i64, value: f64) -> Event {
        Event {
            ts: Timestamp(1_795_000_000_000_000_000 + secs * 1_000_000_000),
            kind: Kind::Metric,
            container_id: container.into(),
            container_name: format!("{container}-name"),
            service: "svc".into(),
            name: Some(name.into()),
            value: Some(value),
            unit: Some("percent".into()),
            ..Event::default()
        }
    }

    #[test]
    fn rolls_samples_into_minutes_with_min_max_avg_last_count() {
        let mut r = RollUp::default();
        // 1_795_000_000 s is 40 s past a minute boundary: 0..=10 s fall in one minute, 30 s in the next.
        for (secs, v) in [(0, 4.0), (10, 8.0), (5, 6.0), (30, 1.0)] {
            r.add(&sample("c1", "cpu_percent", secs, v));
        }
        r.add(&sample("c2", "cpu_percent", 0, 50.0));
        r.add(&Event::log(Timestamp(0), "not a metric"));
        let nameless = Event {
            kind: Kind::Metric,
            ..Event::log(Timestamp(0), "no name")
        };
        r.add(&nameless);
        assert_eq!(r.samples, 5);
        let mut out = r.finish();
        assert_eq!(
            out.pop().map(|e| e.message),
            Some("no name".to_string()),
            "kept as it is"
        );
        assert_eq!(out.len(), 3);
        let first = out
            .iter()
            .find(|e| e.container_id == "c1" && e.fields["count"] == 3)
            .unwrap();
        assert_eq!(first.fields["min"], 4.0);
        assert_eq!(first.fields["max"], 8.0);
        assert_eq!(first.fields["avg"], 6.0);
        assert_eq!(first.fields["last"], 8.0, "last by time, not by arrival");
        assert_eq!(first.value, Some(6.0));
        assert_eq!(first.ts.as_nanos() % BUCKET_NANOS, 0);
        assert!(is_rollup(first));
        assert_eq!(first.container_name, "c1-name");
        // Rolling the same samples again gives the same ids.
        let mut again = RollUp::default();
        for (secs, v) in [(0, 4.0), (10, 8.0), (5, 6.0), (30, 1.0)] {
            again.add(&sample("c1", "cpu_percent", secs, v));
        }
        let ids: Vec<_> = again.finish().iter().map(|e| e.id).collect();
        assert!(ids.iter().all(|id| out.iter().any(|e| e.id == *id)));
        // A late sample merges into the earlier roll-up of its minute.
        let mut late = RollUp::default();
        for e in &out {
            late.add(e);
        }
        late.add(&sample("c1", "cpu_percent", 12, 20.0));
        assert_eq!(late.samples, 1);
        let merged = late.finish();
        assert_eq!(merged.len(), 3);
        let m = merged.iter().find(|e| e.id == first.id).unwrap();
        assert_eq!(
            (
                m.fields["count"].as_u64(),
                m.fields["max"].as_f64(),
                m.fields["last"].as_f64()
            ),
            (Some(4), Some(20.0), Some(20.0))
        );
        assert_eq!(m.value, Some(9.5));
    }
}
