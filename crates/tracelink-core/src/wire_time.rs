//! Time formats of the envelope: durations `d.hh:mm:ss.fffffff` (SPEC 7.2) and RFC 3339 UTC
//! timestamps (SPEC 7.1), both ways, without a date-time dependency.
//!
//! ```
//! use std::time::Duration;
//! use tracelink_core::wire_time::{format_duration, parse_duration};
//!
//! assert_eq!(format_duration(Duration::from_millis(1500)), "00:00:01.5000000");
//! assert_eq!(parse_duration("0.00:00:00.003"), Some(Duration::from_millis(3)));
//! assert_eq!(parse_duration("1.02:03:04.5"), Some(Duration::from_millis(93_784_500)));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest duration the format can carry: just under 1000 days (SPEC 7.2).
pub const MAX_DURATION: Duration = Duration::from_secs(1000 * 86_400 - 1);

/// Formats a duration as `[d.]hh:mm:ss.fffffff` (days only when > 0, 7 fraction digits),
/// capped at [`MAX_DURATION`].
pub fn format_duration(d: Duration) -> String {
    let mut out = Vec::with_capacity(20);
    write_duration(&mut out, d);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the duration format to `out`.
pub fn write_duration(out: &mut Vec<u8>, d: Duration) {
    let d = d.min(MAX_DURATION + Duration::from_nanos(999_999_900));
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    if days > 0 {
        write_u64(out, days);
        out.push(b'.');
    }
    write_hms(out, rem, d.subsec_nanos());
}

/// `hh:mm:ss.fffffff` of the seconds of a day and their nanoseconds.
fn write_hms(out: &mut Vec<u8>, secs_of_day: u64, nanos: u32) {
    let mut buf = [0u8; 16];
    hms_into(&mut buf, secs_of_day, nanos);
    out.extend_from_slice(&buf);
}

/// `hh:mm:ss.fffffff` into `buf` (filled on the stack and appended once: the hot path
/// writes one per item).
fn hms_into(buf: &mut [u8; 16], secs_of_day: u64, nanos: u32) {
    fixed_into(&mut buf[0..2], secs_of_day / 3600);
    buf[2] = b':';
    fixed_into(&mut buf[3..5], secs_of_day / 60 % 60);
    buf[5] = b':';
    fixed_into(&mut buf[6..8], secs_of_day % 60);
    buf[8] = b'.';
    fixed_into(&mut buf[9..16], u64::from(nanos / 100));
}

/// `value` as exactly `slot.len()` decimal digits (its last ones).
fn fixed_into(slot: &mut [u8], mut value: u64) {
    for d in slot.iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `value` in decimal.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `[d.]hh:mm:ss[.f…]` as the SDKs write it (`00:00:01`, `00:00:00.123`,
/// `0.00:00:00.123`, `1.02:03:04.5000000`). Fractions past 100 ns are dropped.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut parts = s.trim().splitn(3, ':');
    let (h, m, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let (days, hours) = match h.split_once('.') {
        Some((d, h)) => (digits(d)?, digits(h)?),
        None => (0, digits(h)?),
    };
    let (sec, frac) = match rest.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (rest, None),
    };
    let (minutes, seconds) = (digits(m)?, digits(sec)?);
    if hours > 23 || minutes > 59 || seconds > 59 || h.len() > 16 {
        return None;
    }
    let mut nanos = 0u32;
    if let Some(f) = frac {
        if f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        for (i, c) in f.bytes().take(9).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
    }
    let total = days
        .checked_mul(86_400)?
        .checked_add(hours * 3600 + minutes * 60 + seconds)?;
    Some(Duration::new(total, nanos))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats a time as RFC 3339 UTC with 7 fraction digits, e.g.
/// `2026-11-21T05:46:41.6220000Z`. Times before 1970 are written as 1970-01-01.
pub fn format_time(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(28);
    write_time(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the RFC 3339 form of `t` to `out`.
pub fn write_time(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let mut buf = [0u8; 28];
    fixed_into(&mut buf[0..4], y.max(0) as u64);
    buf[4] = b'-';
    fixed_into(&mut buf[5..7], u64::from(m));
    buf[7] = b'-';
    fixed_into(&mut buf[8..10], u64::from(day));
    buf[10] = b'T';
    let mut hms = [0u8; 16];
    hms_into(&mut hms, secs % 86_400, d.subsec_nanos());
    buf[11..27].copy_from_slice(&hms);
    buf[27] = b'Z';
    out.extend_from_slice(&buf);
}

/// Parses an RFC 3339 timestamp (`Z` or `±hh:mm` offset, any number of fraction digits).
///
/// ```
/// use tracelink_core::wire_time::{format_time, parse_time};
///
/// let t = parse_time("2026-11-21T05:46:41.511120Z").unwrap();
/// assert_eq!(format_time(t), "2026-11-21T05:46:41.5111200Z");
/// assert_eq!(parse_time("2026-11-21T07:46:41.5111200+02:00"), Some(t));
/// ```
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let b = s.trim().as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: core::ops::Range<usize>| -> Option<u32> {
        let s = core::str::from_utf8(b.get(r)?).ok()?;
        digits(s).map(|v| v as u32)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos += u32::from(b[i] - b'0') * 10u32.pow(8 - (i - start) as u32);
            }
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hh = i64::from(num(i + 1..i + 3)?);
            let mm = i64::from(num(i + 4..i + 6)?);
            let o = hh * 3600 + mm * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec.min(59)) - offset;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Parses an HTTP date in the IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110),
/// as `Retry-After` carries it.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = tracelink_core::wire_time::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
/// assert_eq!(t, UNIX_EPOCH + Duration::from_secs(784_111_777));
/// ```
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let mut it = s.trim().split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    if zone != "GMT" || it.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| *x == month)? as u32 + 1;
    // IMF-fixdate: a two-digit day and a four-digit year (longer ones would overflow).
    if day.len() != 2 || year.len() != 4 {
        return None;
    }
    let (d, y) = (digits(day)? as u32, digits(year)? as i64);
    let mut hms = time.split(':').map(digits);
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 || hms.next().is_some() {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + (h * 3600 + mi * 60 + sec.min(59)) as i64;
    UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn http_dates_with_huge_fields_are_rejected() {
        for bad in [
            "Sun, 06 Nov 999999999999 08:49:37 GMT",
            "Sun, 4294967297 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn spec_7_2_duration_format() {
        assert_eq!(format_duration(Duration::ZERO), "00:00:00.0000000");
        assert_eq!(
            format_duration(Duration::from_nanos(3_723_000_000_123)),
            "01:02:03.0000001"
        );
        assert_eq!(
            format_duration(Duration::from_secs(86_400 * 2 + 5)),
            "2.00:00:05.0000000"
        );
        // Capped below 1000 days.
        assert_eq!(
            format_duration(Duration::from_secs(86_400 * 5000)),
            "999.23:59:59.9999999"
        );
    }

    #[test]
    fn spec_7_2_durations_real_sdks_send() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("00:00:01"), Some(ms(1000)));
        assert_eq!(parse_duration("00:00:00.009"), Some(ms(9)));
        assert_eq!(parse_duration("0.00:00:00.003"), Some(ms(3)));
        assert_eq!(
            parse_duration("1.02:03:04.5000000"),
            Some(Duration::from_secs(86_400 + 7384) + ms(500))
        );
        for bad in [
            "",
            "1",
            "00:00",
            "00:60:00",
            "aa:00:00",
            "00:00:00.",
            "-1:00:00",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sat, 21 Nov 2026 05:46:41 GMT").unwrap();
        assert_eq!(format_time(t), "2026-11-21T05:46:41.0000000Z");
        for bad in [
            "",
            "Sat, 21 Nov 2026 05:46:41 UTC",
            "Sat, 32 Nov 2026 05:46:41 GMT",
            "Sat, 21 Foo 2026 05:46:41 GMT",
            "Sat, 21 Nov 2026 05:46 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn time_formats() {
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01T00:00:00.0000000Z");
        let t = parse_time("2000-02-29T23:59:59Z").unwrap();
        assert_eq!(format_time(t), "2000-02-29T23:59:59.0000000Z");
        assert_eq!(
            parse_time("2026-11-21T05:46:41.619Z")
                .map(format_time)
                .as_deref(),
            Some("2026-11-21T05:46:41.6190000Z")
        );
        for bad in [
            "",
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-11-21T00:00:00",
            "2026-11-21T00:00:00.Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn duration_round_trips(ticks in 0u64..(999 * 86_400 * 10_000_000)) {
            let d = Duration::from_nanos(ticks * 100);
            prop_assert_eq!(parse_duration(&format_duration(d)), Some(d));
        }

        #[test]
        fn time_round_trips(secs in 0u64..8_000_000_000, ticks in 0u32..10_000_000) {
            let t = UNIX_EPOCH + Duration::new(secs, ticks * 100);
            prop_assert_eq!(parse_time(&format_time(t)), Some(t));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_duration(&s);
            let _ = parse_time(&s);
            let _ = parse_http_date(&s);
        }
    }
}
