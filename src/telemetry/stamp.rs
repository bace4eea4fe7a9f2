//! The two timestamps Gunicorn prints, formatted by hand instead of through strftime parsing on
//! every line.
//!
//! Owns: `[%Y-%m-%d %H:%M:%S %z]` (error log) and `[%d/%b/%Y:%H:%M:%S %z]` (the access `t`
//! atom), always with English month names as Python's C locale gives. Must not touch: where
//! the current time comes from (callers pass it, so tests can pin it).

use std::fmt::Write;

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `%z`: the UTC offset as `+HHMM`; seconds of historical offsets are dropped like C strftime.
fn push_offset(out: &mut String, seconds: i32) {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let _ = write!(out, "{sign}{:02}{:02}", abs / 3600, (abs % 3600) / 60);
}

/// `[2026-11-22 02:53:39 +0000]`, the error log's `asctime` with Gunicorn's datefmt.
pub(crate) fn error_stamp<Tz: TimeZone>(now: &DateTime<Tz>, out: &mut String) {
    let _ = write!(
        out,
        "[{:04}-{:02}-{:02} {:02}:{:02}:{:02} ",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    push_offset(out, now.offset().fix().local_minus_utc());
    out.push(']');
}

/// `[22/Nov/2026:02:55:45 +0000]`, the Common Log Format time of the access `t` atom.
pub(crate) fn clf_stamp<Tz: TimeZone>(now: &DateTime<Tz>, out: &mut String) {
    let _ = write!(
        out,
        "[{:02}/{}/{:04}:{:02}:{:02}:{:02} ",
        now.day(),
        MONTHS[now.month0() as usize],
        now.year(),
        now.hour(),
        now.minute(),
        now.second()
    );
    push_offset(out, now.offset().fix().local_minus_utc());
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Local};

    #[test]
    fn error_stamp_shape() {
        let t = FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2026, 11, 22, 2, 53, 39)
            .unwrap();
        let mut s = String::new();
        error_stamp(&t, &mut s);
        assert_eq!(s, "[2026-11-22 02:53:39 +0000]");
    }

    #[test]
    fn clf_stamp_shape_and_negative_offset() {
        let t = FixedOffset::west_opt(3 * 3600 + 30 * 60)
            .unwrap()
            .with_ymd_and_hms(2026, 1, 5, 7, 8, 9)
            .unwrap();
        let mut s = String::new();
        clf_stamp(&t, &mut s);
        assert_eq!(s, "[05/Jan/2026:07:08:09 -0330]");
    }

    #[test]
    fn matches_chrono_strftime_for_local_time() {
        let now = Local::now();
        let mut a = String::new();
        error_stamp(&now, &mut a);
        assert_eq!(a, now.format("[%Y-%m-%d %H:%M:%S %z]").to_string());
        let mut b = String::new();
        clf_stamp(&now, &mut b);
        assert_eq!(b, now.format("[%d/%b/%Y:%H:%M:%S %z]").to_string());
    }
}
