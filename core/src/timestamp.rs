//! Nanosecond UTC timestamps, RFC 3339 formatting and parsing, and relative durations.
//!
//! Formatting and parsing are hand-written because they sit on the hot path of every event
//! (the wire codec and Docker's log prefixes) and must never allocate more than the output.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// A point in time as nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// Why a timestamp or duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time '{input}': {reason}")]
pub struct TimeError {
    /// The text that was given (cut to 64 bytes).
    pub input: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

fn time_error(input: &str, reason: &'static str) -> TimeError {
    let mut end = input.len().min(64);
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    TimeError {
        input: input[..end].to_string(),
        reason,
    }
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// A system time (a file's modification time, say); times before the epoch give the
    /// epoch.
    pub fn from_system_time(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_nanos().min(i64::MAX as u128) as i64)
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    /// Whole UTC days since the epoch (floor): the number behind [`Timestamp::day_string`].
    pub fn day_number(self) -> i64 {
        self.as_secs().div_euclid(SECS_PER_DAY)
    }

    /// The UTC calendar day as `yyyy-mm-dd`, used to name daily index directories.
    pub fn day_string(self) -> String {
        let (y, m, d) = civil_from_days(self.day_number());
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// This timestamp moved by a signed number of nanoseconds, saturating.
    pub fn offset(self, nanos: i64) -> Self {
        Timestamp(self.0.saturating_add(nanos))
    }

    /// Reads a JSON time value: an RFC 3339 string or a number of epoch seconds,
    /// milliseconds, microseconds or nanoseconds (told apart by magnitude, as Vector does).
    pub fn from_json(value: &serde_json::Value) -> Option<Timestamp> {
        use serde_json::Value;
        match value {
            Value::String(s) => Timestamp::parse_rfc3339(s).ok(),
            Value::Number(n) => {
                // Integers exactly (an f64 cannot hold nanoseconds of today), fractions as f64.
                if let Some(v) = n.as_i64() {
                    let per_unit: i64 = if v < 100_000_000_000 {
                        1_000_000_000
                    } else if v < 100_000_000_000_000 {
                        1_000_000
                    } else if v < 100_000_000_000_000_000 {
                        1_000
                    } else {
                        1
                    };
                    return (v >= 0)
                        .then(|| v.checked_mul(per_unit))
                        .flatten()
                        .map(Timestamp);
                }
                let v = n.as_f64()?;
                if !v.is_finite() || v < 0.0 {
                    return None;
                }
                // Seconds up to year 5138, then milliseconds, microseconds, nanoseconds.
                let nanos = if v < 1e11 {
                    v * 1e9
                } else if v < 1e14 {
                    v * 1e6
                } else if v < 1e17 {
                    v * 1e3
                } else {
                    v
                };
                (nanos < i64::MAX as f64).then_some(Timestamp(nanos as i64))
            }
            _ => None,
        }
    }

    /// Parses RFC 3339 (`2026-11-22T03:09:44.123456789Z`, any fraction length, `Z` or an
    /// offset; a space is accepted in place of `T`), or a date alone (`2026-11-22`, midnight UTC).
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeError> {
        let b = s.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimeError> {
            let part = b.get(range).ok_or_else(|| time_error(s, "too short"))?;
            let mut v = 0i64;
            for &c in part {
                if !c.is_ascii_digit() {
                    return Err(time_error(s, "expected a digit"));
                }
                v = v * 10 + i64::from(c - b'0');
            }
            Ok(v)
        };
        let year = num(0..4)?;
        if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
            return Err(time_error(s, "expected yyyy-mm-dd"));
        }
        let month = num(5..7)?;
        let day = num(8..10)?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(time_error(s, "date out of range"));
        }
        let days = days_from_civil(year, month, day);
        if b.len() == 10 {
            return Ok(Timestamp(days * SECS_PER_DAY * NANOS_PER_SEC));
        }
        if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
            return Err(time_error(s, "expected 'T' between date and time"));
        }
        let hour = num(11..13)?;
        let minute = num(14..16)?;
        let second = num(17..19)?;
        if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
            return Err(time_error(s, "expected hh:mm:ss"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(time_error(s, "time of day out of range"));
        }
        let mut i = 19;
        let mut nanos = 0i64;
        if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return Err(time_error(s, "expected digits after the decimal point"));
            }
            for _ in (i - start)..9 {
                nanos *= 10;
            }
        }
        let offset_secs = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                if oh > 23 || om > 59 {
                    return Err(time_error(s, "offset out of range"));
                }
                let o = oh * 3600 + om * 60;
                if *sign == b'+' { o } else { -o }
            }
            _ => {
                return Err(time_error(
                    s,
                    "expected 'Z' or an offset like +02:00 at the end",
                ));
            }
        };
        let secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset_secs;
        secs.checked_mul(NANOS_PER_SEC)
            .and_then(|n| n.checked_add(nanos))
            .map(Timestamp)
            .ok_or_else(|| time_error(s, "outside the years 1677 to 2262"))
    }

    /// Reads a time bound as the API accepts it: `now`, `now-5m`, a bare duration meaning
    /// that long ago (`15m`), or RFC 3339.
    pub fn parse_bound(s: &str, now: Timestamp) -> Result<Self, TimeError> {
        let t = s.trim();
        if t == "now" {
            return Ok(now);
        }
        if let Some(rest) = t.strip_prefix("now-") {
            return Ok(now.offset(-parse_duration_nanos(rest)?));
        }
        if t.as_bytes().first().is_some_and(|c| c.is_ascii_digit()) && t.len() < 10 {
            return Ok(now.offset(-parse_duration_nanos(t)?));
        }
        Self::parse_rfc3339(t)
    }

    /// Writes RFC 3339 with nine fractional digits and `Z` into `out`.
    pub fn write_rfc3339(self, out: &mut String) {
        out.push_str(self.rfc3339_buf().as_str());
    }

    /// RFC 3339 with nine fractional digits and `Z`, on the stack: serialising an event
    /// writes two times, and a `String` each would be two allocations per event.
    fn rfc3339_buf(self) -> Rfc3339 {
        let secs = self.as_secs();
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let mut buf = [0u8; 30];
        let put = |buf: &mut [u8], at: usize, v: i64, width: usize| {
            let mut v = v;
            for k in (0..width).rev() {
                buf[at + k] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(&mut buf, 0, y.rem_euclid(10_000), 4);
        buf[4] = b'-';
        put(&mut buf, 5, m, 2);
        buf[7] = b'-';
        put(&mut buf, 8, d, 2);
        buf[10] = b'T';
        put(&mut buf, 11, sod / 3600, 2);
        buf[13] = b':';
        put(&mut buf, 14, (sod / 60) % 60, 2);
        buf[16] = b':';
        put(&mut buf, 17, sod % 60, 2);
        buf[19] = b'.';
        put(&mut buf, 20, nanos, 9);
        buf[29] = b'Z';
        Rfc3339(buf)
    }

    /// RFC 3339 with nine fractional digits and `Z`.
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(30);
        self.write_rfc3339(&mut s);
        s
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.rfc3339_buf().as_str())
    }
}

/// A formatted time: ASCII digits and separators only.
struct Rfc3339([u8; 30]);

impl Rfc3339 {
    fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or integer nanoseconds since the epoch")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            // `"ts": null` is a time left out: the receiver fills it in.
            fn visit_unit<E: serde::de::Error>(self) -> Result<Timestamp, E> {
                Ok(Timestamp(0))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Parses a duration such as `500ms`, `30s`, `15m`, `2h`, `7d`, `1w` into nanoseconds.
pub fn parse_duration_nanos(s: &str) -> Result<i64, TimeError> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(time_error(
            s,
            "expected a number followed by a unit (ms, s, m, h, d, w)",
        ));
    }
    let n: i64 = t[..digits]
        .parse()
        .map_err(|_| time_error(s, "number too large"))?;
    let unit: i64 = match &t[digits..] {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        "d" => SECS_PER_DAY * NANOS_PER_SEC,
        "w" => 7 * SECS_PER_DAY * NANOS_PER_SEC,
        _ => return Err(time_error(s, "unknown unit: use ms, s, m, h, d or w")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| time_error(s, "duration too large"))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar date for a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_and_parses_known_instants() {
        let t = Timestamp::parse_rfc3339("2026-11-22T03:09:44.123456789Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T03:09:44.123456789Z");
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000000Z");
        let offset = Timestamp::parse_rfc3339("2026-11-22T05:09:44.5+02:00").unwrap();
        assert_eq!(offset.to_rfc3339(), "2026-11-22T03:09:44.500000000Z");
        assert_eq!(t.day_string(), "2026-11-22");
        let day = Timestamp::parse_rfc3339("2024-02-29").unwrap();
        assert_eq!(day.to_rfc3339(), "2024-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn rejects_malformed_times_with_a_reason() {
        for bad in [
            "",
            "2026",
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "2026-11-22T25:00:00Z",
            "2026-11-22T03:09:44",
            "2026-11-22T03:09:44.Z",
            "2026-11-22T03:09:44Zjunk",
            "99999-01-01",
            "2026-11-22T03:09:44+2:00",
            "\u{1F600}\u{1F600}",
        ] {
            let err = Timestamp::parse_rfc3339(bad).unwrap_err();
            assert!(!err.reason.is_empty(), "{bad}");
        }
    }

    #[test]
    fn reads_relative_bounds() {
        let now = Timestamp(1_000 * NANOS_PER_SEC);
        assert_eq!(Timestamp::parse_bound("now", now).unwrap(), now);
        assert_eq!(
            Timestamp::parse_bound("15m", now).unwrap(),
            Timestamp(100 * NANOS_PER_SEC)
        );
        assert_eq!(
            Timestamp::parse_bound("now-10s", now).unwrap(),
            Timestamp(990 * NANOS_PER_SEC)
        );
        assert!(Timestamp::parse_bound("15x", now).is_err());
        assert!(Timestamp::parse_bound("now-", now).is_err());
        assert!(parse_duration_nanos("99999999999999999999d").is_err());
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(n in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000i64) {
            let t = Timestamp(n);
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,40}") {
            let _ = Timestamp::parse_rfc3339(&s);
            let _ = Timestamp::parse_bound(&s, Timestamp(0));
        }

        #[test]
        fn parser_never_panics_on_near_misses(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.,+Zz-]{0,20}") {
            let _ = Timestamp::parse_rfc3339(&s);
        }
    }
}
