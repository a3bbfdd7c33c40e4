//! Metric series: container metric samples read back from the index and averaged into
//! time buckets, for charts.
//!
//! Samples are ordinary events of kind `metric` (see `shiplog_core::Event`): the query is
//! `kind:metric` plus keyword filters on the container and service and `fields.metric` for
//! the metric's name, run through [`search`](crate::search) page by page, newest first. At
//! most [`MetricsRequest::max_samples`] samples are read; past that the answer says
//! `truncated` and covers the newest part of the window.

use std::collections::BTreeMap;

use serde::Serialize;
use shiplog_core::query::{KeywordField, Query};
use shiplog_core::{Kind, Timestamp};

use crate::error::Result;
use crate::search::{self, MAX_LIMIT, SearchRequest};
use crate::store::Store;

/// Default cap on samples read by one request.
pub const DEFAULT_MAX_SAMPLES: usize = 200_000;
/// The default step keeps a series at most this many points long.
pub const MAX_POINTS: i64 = 300;
const SECOND: i64 = 1_000_000_000;

/// Which samples to read and how to bucket them.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRequest {
    /// Container name or full id.
    pub container: Option<String>,
    /// Service name.
    pub service: Option<String>,
    /// Metric name (`cpu_percent`, `mem_bytes`, ...).
    pub name: Option<String>,
    /// Start of the window.
    pub since: Timestamp,
    /// End of the window.
    pub until: Timestamp,
    /// Bucket width in nanoseconds; `None` picks one giving at most [`MAX_POINTS`] points.
    pub step_nanos: Option<i64>,
    /// Most samples read.
    pub max_samples: usize,
}

/// One series: one metric of one container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Container name.
    pub container_name: String,
    /// Full container id.
    pub container_id: String,
    /// Service.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Unit of the values.
    pub unit: String,
    /// `[bucket start, average]`, oldest first.
    pub points: Vec<(Timestamp, f64)>,
}

/// The answer to a [`MetricsRequest`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsResponse {
    /// Series by service, container and metric name.
    pub series: Vec<Series>,
    /// Bucket width used, in milliseconds.
    pub step_ms: i64,
    /// Samples read.
    pub samples: usize,
    /// Whether the sample cap was reached (older samples of the window were not read).
    pub truncated: bool,
}

impl MetricsRequest {
    /// The bucket width: the requested one (at least a millisecond), else the smallest
    /// whole number of seconds that keeps a series within [`MAX_POINTS`] points.
    pub fn step(&self) -> i64 {
        if let Some(step) = self.step_nanos {
            return step.max(1_000_000);
        }
        let span = (self.until.as_nanos() - self.since.as_nanos()).max(1);
        let ceil = |a: i64, b: i64| (a + b - 1) / b;
        let raw = ceil(span, MAX_POINTS);
        ceil(raw, SECOND).max(1) * SECOND
    }

    /// The search query for these filters.
    pub fn query(&self) -> Query {
        let keyword = |field, value: &str| Query::Keyword {
            field,
            value: value.to_string(),
        };
        let mut clauses = vec![keyword(KeywordField::Kind, Kind::Metric.as_str())];
        if let Some(container) = self.container.as_deref().filter(|c| !c.is_empty()) {
            clauses.push(Query::Or(vec![
                keyword(KeywordField::ContainerName, container),
                keyword(KeywordField::ContainerId, container),
            ]));
        }
        if let Some(service) = self.service.as_deref().filter(|s| !s.is_empty()) {
            clauses.push(keyword(KeywordField::Service, service));
        }
        if let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) {
            clauses.push(Query::Json {
                root: shiplog_core::query::JsonRoot::Fields,
                path: "metric".into(),
                value: name.to_string(),
            });
        }
        Query::And(clauses)
    }
}

#[derive(Default)]
struct Buckets {
    container_name: String,
    service: String,
    unit: String,
    /// Bucket index → (sum, count).
    sums: BTreeMap<i64, (f64, u32)>,
}

/// Reads and buckets the samples. Blocking (disk reads).
pub fn series(store: &Store, req: &MetricsRequest) -> Result<MetricsResponse> {
    let step = req.step();
    let mut request = SearchRequest {
        query: req.query(),
        since: Some(req.since),
        until: Some(req.until),
        limit: MAX_LIMIT.min(req.max_samples.max(1)),
        cursor: None,
    };
    let mut grouped: BTreeMap<(String, String), Buckets> = BTreeMap::new();
    let mut samples = 0usize;
    let mut truncated = false;
    loop {
        let page = search::search(store, &request)?;
        for event in &page.hits {
            let (Some(name), Some(value)) = (event.name.as_deref(), event.value) else {
                continue;
            };
            if req
                .name
                .as_deref()
                .is_some_and(|n| !n.is_empty() && n != name)
            {
                continue;
            }
            if samples == req.max_samples {
                truncated = true;
                break;
            }
            samples += 1;
            let bucket = (event.ts.as_nanos() - req.since.as_nanos()).div_euclid(step);
            let series = grouped
                .entry((event.container_id.clone(), name.to_string()))
                .or_default();
            if series.container_name.is_empty() {
                series.container_name = event.container_name.clone();
                series.service = event.service.clone();
                series.unit = event.unit.clone().unwrap_or_default();
            }
            let slot = series.sums.entry(bucket).or_insert((0.0, 0));
            slot.0 += value;
            slot.1 += 1;
        }
        match page.next_cursor {
            Some(cursor) if !truncated => request.cursor = Some(cursor),
            _ => break,
        }
    }
    let mut series: Vec<Series> = grouped
        .into_iter()
        .map(|((container_id, name), buckets)| Series {
            container_name: buckets.container_name,
            container_id,
            service: buckets.service,
            name,
            unit: buckets.unit,
            points: buckets
                .sums
                .into_iter()
                .map(|(bucket, (sum, count))| {
                    (
                        Timestamp(req.since.as_nanos() + bucket * step),
                        sum / f64::from(count),
                    )
                })
                .collect(),
        })
        .collect();
    series.sort_by(|a, b| {
        (&a.service, &a.container_name, &a.name).cmp(&(&b.service, &b.container_name, &b.name))
    });
    Ok(MetricsResponse {
        series,
        step_ms: step / 1_000_000,
        samples,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_step_keeps_series_short_and_whole_seconds() {
        let req = |span_secs: i64, step_nanos| MetricsRequest {
            container: None,
            service: None,
            name: None,
            since: Timestamp(0),
            until: Timestamp(span_secs * SECOND),
            step_nanos,
            max_samples: 10,
        };
        assert_eq!(req(60, None).step(), SECOND);
        assert_eq!(req(3600, None).step(), 12 * SECOND);
        assert_eq!(req(3601, None).step(), 13 * SECOND);
        assert_eq!(
            req(3600, Some(5)).step(),
            1_000_000,
            "at least a millisecond"
        );
        let q = MetricsRequest {
            container: Some("web-1".into()),
            name: Some("cpu_percent".into()),
            ..req(1, None)
        }
        .query();
        let Query::And(clauses) = q else {
            panic!("{q:?}")
        };
        assert_eq!(clauses.len(), 3);
    }
}
