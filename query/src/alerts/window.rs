//! Sliding windows of time buckets per rule and group, filled one event at a time and read
//! once per evaluation tick.
//!
//! A window of length `W` is cut into buckets of `max(1s, W / BUCKETS)`; an event lands in
//! the bucket of its source time (clamped to now, so a clock ahead of ours cannot keep an
//! alert up) and buckets older than the window are dropped as time moves. The value is
//! therefore exact up to one bucket at the old edge of the window.

use std::collections::{BTreeMap, VecDeque};

/// Buckets a window is cut into (at least one second each).
pub const BUCKETS: i64 = 120;

const SEC: i64 = 1_000_000_000;

/// Relative accuracy of the percentile histogram: values within 1% share a bin.
const GAMMA_LN: f64 = 0.019_802_627_296_179_712; // ln(1.02)

/// What one bucket holds.
#[derive(Debug, Default, Clone)]
pub struct Bucket {
    /// Matching events (numerator).
    pub hits: u64,
    /// Events of the denominator (ratio rules).
    pub total: u64,
    /// Sum of sampled values.
    pub sum: f64,
    /// Number of sampled values.
    pub samples: u64,
    /// Smallest sampled value.
    pub min: f64,
    /// Largest sampled value.
    pub max: f64,
    /// Newest sample and its time.
    pub last: Option<(i64, f64)>,
    /// Percentile rules: log-scale bins of the values.
    pub bins: Vec<(i32, u32)>,
}

/// The buckets of one group's window, oldest first.
#[derive(Debug, Clone)]
pub struct Window {
    bucket_ns: i64,
    len_ns: i64,
    buckets: VecDeque<(i64, Bucket)>,
    /// Newest event time seen (nanoseconds), for absence rules.
    pub last_seen: Option<i64>,
}

impl Window {
    /// An empty window of `len_ns`.
    pub fn new(len_ns: i64) -> Self {
        Window {
            bucket_ns: (len_ns / BUCKETS).max(SEC),
            len_ns,
            buckets: VecDeque::new(),
            last_seen: None,
        }
    }

    /// The bucket for an event at `ts`, or `None` when it is already outside the window.
    pub fn bucket(&mut self, ts: i64, now: i64) -> Option<&mut Bucket> {
        let ts = ts.min(now);
        if ts <= now - self.len_ns {
            return None;
        }
        self.last_seen = Some(self.last_seen.map_or(ts, |l| l.max(ts)));
        let idx = ts.div_euclid(self.bucket_ns);
        let pos = match self.buckets.back() {
            Some((last, _)) if *last == idx => self.buckets.len() - 1,
            Some((last, _)) if *last < idx => {
                self.buckets.push_back((idx, Bucket::default()));
                self.buckets.len() - 1
            }
            None => {
                self.buckets.push_back((idx, Bucket::default()));
                0
            }
            Some(_) => match self.buckets.binary_search_by_key(&idx, |(i, _)| *i) {
                Ok(p) => p,
                Err(p) => {
                    self.buckets.insert(p, (idx, Bucket::default()));
                    p
                }
            },
        };
        Some(&mut self.buckets[pos].1)
    }

    /// Marks that an event was seen at `ts` without counting it (absence rules).
    pub fn seen(&mut self, ts: i64, now: i64) {
        let ts = ts.min(now);
        self.last_seen = Some(self.last_seen.map_or(ts, |l| l.max(ts)));
    }

    /// Drops buckets that left the window by `now`.
    pub fn expire(&mut self, now: i64) {
        // A bucket starting at or before the window's start leaves whole (one bucket of
        // accuracy at the old edge, never counting beyond the window).
        let start = now - self.len_ns;
        while self
            .buckets
            .front()
            .is_some_and(|(i, _)| i.saturating_mul(self.bucket_ns) <= start)
        {
            self.buckets.pop_front();
        }
    }

    /// Whether the window holds nothing.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Sums of hits and totals over the window.
    pub fn counts(&self) -> (u64, u64) {
        self.buckets
            .iter()
            .fold((0, 0), |(h, t), (_, b)| (h + b.hits, t + b.total))
    }

    /// Samples folded over the window: (sum, count, min, max, newest).
    pub fn samples(&self) -> Option<(f64, u64, f64, f64, f64)> {
        type Fold = (f64, u64, f64, f64, (i64, f64));
        let mut out: Option<Fold> = None;
        for (_, b) in &self.buckets {
            if b.samples == 0 {
                continue;
            }
            let last = b.last.unwrap_or((0, b.max));
            out = Some(match out {
                None => (b.sum, b.samples, b.min, b.max, last),
                Some((s, n, lo, hi, l)) => (
                    s + b.sum,
                    n + b.samples,
                    lo.min(b.min),
                    hi.max(b.max),
                    if last.0 >= l.0 { last } else { l },
                ),
            });
        }
        out.map(|(s, n, lo, hi, l)| (s, n, lo, hi, l.1))
    }

    /// The `p`th percentile (0..=100) of the values in the window, within 1%.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let mut merged: BTreeMap<i32, u64> = BTreeMap::new();
        let mut n = 0u64;
        for (_, b) in &self.buckets {
            for (bin, c) in &b.bins {
                *merged.entry(*bin).or_default() += u64::from(*c);
                n += u64::from(*c);
            }
        }
        if n == 0 {
            return None;
        }
        // Nearest rank, as Prometheus' histogram_quantile and most dashboards read it.
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bin, c) in merged {
            seen += c;
            if seen >= rank {
                return Some(bin_value(bin));
            }
        }
        None
    }
}

impl Bucket {
    /// Adds one sampled value.
    pub fn sample(&mut self, ts: i64, v: f64) {
        if self.samples == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.samples += 1;
        self.sum += v;
        if self.last.is_none_or(|(t, _)| ts >= t) {
            self.last = Some((ts, v));
        }
    }

    /// Adds one value to the percentile bins.
    pub fn bin(&mut self, v: f64) {
        let bin = value_bin(v);
        match self.bins.iter_mut().find(|(b, _)| *b == bin) {
            Some((_, c)) => *c = c.saturating_add(1),
            None => self.bins.push((bin, 1)),
        }
    }
}

/// Bins: 0 and below share one bin; positive values fall in bins 2% wide.
fn value_bin(v: f64) -> i32 {
    if v <= 0.0 || !v.is_finite() {
        return i32::MIN;
    }
    (v.ln() / GAMMA_LN).round() as i32
}

fn bin_value(bin: i32) -> f64 {
    if bin == i32::MIN {
        return 0.0;
    }
    (f64::from(bin) * GAMMA_LN).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_slide_out_of_the_window() {
        let mut w = Window::new(10 * SEC);
        let now = 1000 * SEC;
        for i in 0..10 {
            let b = w.bucket(now - i * SEC, now).unwrap();
            b.hits += 1;
            b.total += 2;
        }
        assert_eq!(w.counts(), (10, 20));
        assert!(w.bucket(now - 10 * SEC, now).is_none());
        w.expire(now + 5 * SEC);
        assert_eq!(w.counts(), (5, 10));
        w.expire(now + 11 * SEC);
        assert!(w.is_empty());
    }

    #[test]
    fn late_and_future_events_land_in_order() {
        let mut w = Window::new(60 * SEC);
        let now = 1000 * SEC;
        w.bucket(now - 5 * SEC, now).unwrap().hits += 1;
        w.bucket(now - 30 * SEC, now).unwrap().hits += 1;
        w.bucket(now + 3600 * SEC, now).unwrap().hits += 1;
        assert_eq!(w.counts().0, 3);
        assert_eq!(w.last_seen, Some(now));
        w.expire(now + 40 * SEC);
        assert_eq!(w.counts().0, 2);
    }

    #[test]
    fn percentiles_are_within_two_percent() {
        let mut w = Window::new(60 * SEC);
        let now = 1000 * SEC;
        for v in 1..=1000 {
            w.bucket(now, now).unwrap().bin(f64::from(v));
        }
        for (p, want) in [(50.0, 500.0), (99.0, 990.0), (100.0, 1000.0)] {
            let got = w.percentile(p).unwrap();
            assert!((got - want).abs() / want < 0.02, "p{p}: {got} vs {want}");
        }
        assert_eq!(Window::new(SEC).percentile(99.0), None);
    }

    #[test]
    fn samples_fold_min_max_avg_and_newest() {
        let mut w = Window::new(60 * SEC);
        let now = 1000 * SEC;
        w.bucket(now - 20 * SEC, now)
            .unwrap()
            .sample(now - 20 * SEC, 10.0);
        w.bucket(now - 2 * SEC, now)
            .unwrap()
            .sample(now - 2 * SEC, 30.0);
        w.bucket(now - 10 * SEC, now)
            .unwrap()
            .sample(now - 10 * SEC, 50.0);
        let (sum, n, lo, hi, last) = w.samples().unwrap();
        assert_eq!((sum, n, lo, hi, last), (90.0, 3, 10.0, 50.0, 30.0));
    }
}
