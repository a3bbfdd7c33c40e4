//! How times are shown: UTC or the local offset read once at start-up, and ages ("3m").

use shiplog_core::Timestamp;

/// The current time and how to print times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Now, as of the last tick (fixed in tests so screens are reproducible).
    pub now: Timestamp,
    /// Print in UTC (true) or in local time.
    pub utc: bool,
    /// The local offset from UTC, in seconds.
    pub local_offset_secs: i32,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(Timestamp(0), 0)
    }
}

impl Clock {
    /// UTC at `now`, with a local offset for the toggle.
    pub fn new(now: Timestamp, local_offset_secs: i32) -> Self {
        Clock {
            now,
            utc: true,
            local_offset_secs,
        }
    }

    /// The local offset from UTC, read from the system. It must be read before any other
    /// thread starts (the `time` crate refuses otherwise); UTC when it cannot be read.
    pub fn system_offset_secs() -> i32 {
        time::UtcOffset::current_local_offset().map_or(0, time::UtcOffset::whole_seconds)
    }

    fn shifted_secs(&self, ts: Timestamp) -> (i64, i64) {
        let offset = if self.utc {
            0
        } else {
            i64::from(self.local_offset_secs)
        };
        let nanos = ts.as_nanos();
        (
            nanos.div_euclid(1_000_000_000) + offset,
            nanos.rem_euclid(1_000_000_000),
        )
    }

    /// The zone label for column titles: `UTC` or `local` with its offset.
    pub fn zone(&self) -> String {
        if self.utc {
            return "UTC".into();
        }
        let o = self.local_offset_secs;
        let sign = if o < 0 { '-' } else { '+' };
        let o = o.unsigned_abs();
        format!("{sign}{:02}:{:02}", o / 3600, (o / 60) % 60)
    }

    /// `HH:MM:SS.mmm`.
    pub fn hms_millis(&self, ts: Timestamp) -> String {
        let (secs, nanos) = self.shifted_secs(ts);
        let s = secs.rem_euclid(86_400);
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            s / 3600,
            (s / 60) % 60,
            s % 60,
            nanos / 1_000_000
        )
    }

    /// `MM-DD HH:MM:SS`.
    pub fn date_time(&self, ts: Timestamp) -> String {
        let (secs, _) = self.shifted_secs(ts);
        let days = secs.div_euclid(86_400);
        let s = secs.rem_euclid(86_400);
        let (_, month, day) = civil_from_days(days);
        format!(
            "{month:02}-{day:02} {:02}:{:02}:{:02}",
            s / 3600,
            (s / 60) % 60,
            s % 60
        )
    }

    /// `HH:MM`.
    pub fn hm(&self, ts: Timestamp) -> String {
        let (secs, _) = self.shifted_secs(ts);
        let s = secs.rem_euclid(86_400);
        format!("{:02}:{:02}", s / 3600, (s / 60) % 60)
    }

    /// How long ago `ts` was, in the largest whole unit (`45s`, `12m`, `3h`, `2d`).
    pub fn age(&self, ts: Timestamp) -> String {
        age(self.now.as_nanos().saturating_sub(ts.as_nanos()))
    }
}

/// A duration in nanoseconds in its largest whole unit.
pub fn age(nanos: i64) -> String {
    let secs = nanos.max(0) / 1_000_000_000;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
        s => format!("{}d{:02}h", s / 86_400, (s / 3600) % 24),
    }
}

/// Year, month, day of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_323_045_123_000_000; // 2026-01-02T03:04:05.123Z

    #[test]
    fn prints_utc_and_local_times() {
        let mut c = Clock::new(Timestamp(T0), 2 * 3600 + 1800);
        assert_eq!(c.hms_millis(Timestamp(T0)), "03:04:05.123");
        assert_eq!(c.date_time(Timestamp(T0)), "01-02 03:04:05");
        assert_eq!(c.zone(), "UTC");
        c.utc = false;
        assert_eq!(c.hms_millis(Timestamp(T0)), "05:34:05.123");
        assert_eq!(c.zone(), "+02:30");
        c.local_offset_secs = -4 * 3600;
        assert_eq!(c.date_time(Timestamp(T0)), "01-01 23:04:05");
        assert_eq!(c.hms_millis(Timestamp(-1)), "19:59:59.999");
    }

    #[test]
    fn ages_use_the_largest_unit() {
        assert_eq!(age(5_000_000_000), "5s");
        assert_eq!(age(125 * 1_000_000_000), "2m");
        assert_eq!(age(3 * 3600 * 1_000_000_000 + 60_000_000_000), "3h01m");
        assert_eq!(age(2 * 86_400 * 1_000_000_000), "2d00h");
        assert_eq!(age(-5), "0s");
    }
}
