//! Bounds of `ts:` and `fields.<path>:` ranges, and how a bound is read.

use std::ops::Bound;

use crate::timestamp::{Timestamp, parse_duration_nanos};

const DAY_NANOS: i64 = 86_400 * 1_000_000_000;

/// A numeric range on a JSON value; numbers compare as 64-bit floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberRange {
    /// Lowest value accepted (finite when bounded).
    pub lower: Bound<f64>,
    /// Highest value accepted (finite when bounded).
    pub upper: Bound<f64>,
}

impl NumberRange {
    /// Whether `v` is at or above the lower bound.
    pub fn above_lower(&self, v: f64) -> bool {
        match self.lower {
            Bound::Included(l) => v >= l,
            Bound::Excluded(l) => v > l,
            Bound::Unbounded => true,
        }
    }

    /// Whether `v` is at or below the upper bound.
    pub fn below_upper(&self, v: f64) -> bool {
        match self.upper {
            Bound::Included(u) => v <= u,
            Bound::Excluded(u) => v < u,
            Bound::Unbounded => true,
        }
    }

    /// Whether `v` lies in the range.
    pub fn contains(&self, v: f64) -> bool {
        self.above_lower(v) && self.below_upper(v)
    }

    /// The integers `i` in `[min, max]` whose `i as f64` lies in the range, as an
    /// inclusive interval, or `None` when there are none. Because `i as f64` never decreases
    /// as `i` grows, they always form one interval; the index uses it to turn this range
    /// into exact ranges over its integer terms.
    pub fn integer_interval(&self, min: i128, max: i128) -> Option<(i128, i128)> {
        // First i with above_lower(i), last i with below_upper(i), by bisection.
        let first = {
            let (mut lo, mut hi) = (min, max + 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.above_lower(mid as f64) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        let last = {
            let (mut lo, mut hi) = (min - 1, max);
            while lo < hi {
                let mid = hi - (hi - lo) / 2;
                if self.below_upper(mid as f64) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            lo
        };
        (first <= last && first <= max && last >= min).then_some((first, last))
    }
}

/// A range of event times, `ts`; nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRange {
    /// Earliest time accepted.
    pub from: Bound<Timestamp>,
    /// Latest time accepted.
    pub to: Bound<Timestamp>,
}

impl TimeRange {
    /// Whether `t` lies in the range.
    pub fn contains(&self, t: Timestamp) -> bool {
        let above = match self.from {
            Bound::Included(f) => t >= f,
            Bound::Excluded(f) => t > f,
            Bound::Unbounded => true,
        };
        let below = match self.to {
            Bound::Included(u) => t <= u,
            Bound::Excluded(u) => t < u,
            Bound::Unbounded => true,
        };
        above && below
    }
}

/// Which end of a range a bound is, and whether it includes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `[x`, `>=x`
    LowerIncluded,
    /// `{x`, `>x`
    LowerExcluded,
    /// `x]`, `<=x`
    UpperIncluded,
    /// `x}`, `<x`
    UpperExcluded,
}

/// Reads a time bound: `now`, `now-15m`, `now+1h`, RFC 3339, or a date alone.
///
/// A date alone stands for the whole UTC day, so `[2026-11-01 TO 2026-11-02]` covers both
/// days entirely, `>2026-11-01` starts on the 2nd and `<2026-11-02` ends before the 2nd.
pub(crate) fn time_bound(
    text: &str,
    side: Side,
    now: Timestamp,
) -> Result<Bound<Timestamp>, String> {
    let instant = |t: Timestamp| match side {
        Side::LowerIncluded | Side::UpperIncluded => Bound::Included(t),
        Side::LowerExcluded | Side::UpperExcluded => Bound::Excluded(t),
    };
    if text == "now" {
        return Ok(instant(now));
    }
    if let Some(rest) = text.strip_prefix("now") {
        let (sign, duration) = match rest.as_bytes().first() {
            Some(b'-') => (-1, &rest[1..]),
            Some(b'+') => (1, &rest[1..]),
            _ => return Err(format!("expected '-' or '+' after 'now' in '{text}'")),
        };
        let nanos = parse_duration_nanos(duration).map_err(|e| e.reason.to_string())?;
        return Ok(instant(now.offset(sign * nanos)));
    }
    let t = Timestamp::parse_rfc3339(text).map_err(|e| {
        format!(
            "{}: use now, now-15m, 2026-11-22 or 2026-11-22T03:00:00Z",
            e.reason
        )
    })?;
    if text.len() != 10 {
        return Ok(instant(t));
    }
    let next_day = t.offset(DAY_NANOS);
    Ok(match side {
        Side::LowerIncluded => Bound::Included(t),
        Side::LowerExcluded => Bound::Included(next_day),
        Side::UpperIncluded => Bound::Excluded(next_day),
        Side::UpperExcluded => Bound::Excluded(t),
    })
}

/// Reads a numeric bound: any finite decimal number.
pub(crate) fn number_bound(text: &str, side: Side) -> Result<Bound<f64>, String> {
    let v = text
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("expected a number, found '{text}'"))?;
    Ok(match side {
        Side::LowerIncluded | Side::UpperIncluded => Bound::Included(v),
        Side::LowerExcluded | Side::UpperExcluded => Bound::Excluded(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_intervals_agree_with_float_comparison() {
        let r = NumberRange {
            lower: Bound::Excluded(250.0),
            upper: Bound::Included(299.5),
        };
        assert_eq!(r.integer_interval(-1000, 1000), Some((251, 299)));
        let r = NumberRange {
            lower: Bound::Included(2.5),
            upper: Bound::Excluded(3.0),
        };
        assert_eq!(r.integer_interval(-1000, 1000), None);
        let open = NumberRange {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        };
        let (lo, hi) = (i64::MIN as i128, i64::MAX as i128);
        assert_eq!(open.integer_interval(lo, hi), Some((lo, hi)));
        // Above 2^53 floats are coarse: 2^53 + 1 reads as 2^53, so it is in [2^53 TO 2^53].
        let p = 2f64.powi(53);
        let r = NumberRange {
            lower: Bound::Included(p),
            upper: Bound::Included(p),
        };
        let (a, b) = r.integer_interval(lo, hi).unwrap();
        for i in [a - 1, a, b, b + 1] {
            assert_eq!(r.contains(i as f64), (a..=b).contains(&i), "{i}");
        }
        let below = NumberRange {
            lower: Bound::Unbounded,
            upper: Bound::Excluded(-1e300),
        };
        assert_eq!(below.integer_interval(lo, hi), None);
    }

    #[test]
    fn dates_alone_cover_whole_days() {
        let now = Timestamp(0);
        let d1 = Timestamp::parse_rfc3339("2026-11-01").unwrap();
        let d2 = d1.offset(DAY_NANOS);
        assert_eq!(
            time_bound("2026-11-01", Side::UpperIncluded, now),
            Ok(Bound::Excluded(d2))
        );
        assert_eq!(
            time_bound("2026-11-01", Side::LowerExcluded, now),
            Ok(Bound::Included(d2))
        );
        assert_eq!(
            time_bound("now-15m", Side::LowerExcluded, Timestamp(DAY_NANOS)),
            Ok(Bound::Excluded(Timestamp(
                DAY_NANOS - 15 * 60 * 1_000_000_000
            )))
        );
        assert!(
            time_bound("now-15q", Side::LowerIncluded, now)
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(number_bound("nan", Side::LowerIncluded).is_err());
        assert!(number_bound("inf", Side::LowerIncluded).is_err());
        assert_eq!(
            number_bound("-2.5e1", Side::UpperExcluded),
            Ok(Bound::Excluded(-25.0))
        );
    }
}
