//! The CRI log format, one record per line:
//! `<RFC 3339 time with nanoseconds> <stdout|stderr> <F|P> <content>`.
//!
//! `F` ends a line of the container's output; `P` is a part of a line whose
//! rest follows in later records of the same stream (a line longer than a
//! record, or one the container had not finished when it was read).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::LogStream;

/// The most content one record carries: longer lines are split into `P`
/// records (containerd's default maximum line size).
pub(crate) const MAX_CONTENT: usize = 16 * 1024;

/// One parsed record, borrowing its content.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub time: SystemTime,
    pub stream: LogStream,
    /// `P`: the line continues in the next record of this stream.
    pub partial: bool,
    pub content: &'a [u8],
}

/// Appends one record (with its newline) to `out`.
pub(crate) fn push_record(
    out: &mut Vec<u8>,
    time: &str,
    stream: LogStream,
    partial: bool,
    content: &[u8],
) {
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// `time` as RFC 3339 UTC with nine fraction digits
/// (`2026-12-05T08:22:11.000123456Z`): fixed width, as containerd writes it.
pub fn format_time(time: SystemTime) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Howard Hinnant's civil-from-days: (year, month, day) of a day count.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The inverse: days since the epoch of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, a
/// fraction of 1 to 9 digits. `None` for anything else.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let digits = end - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start..end)? * 10u32.pow((9 - digits) as u32);
        i = end;
    }
    let offset: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Parses one record (without its newline). `None` if it is not one.
pub(crate) fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |&c| c == b' ');
    let time = parse_time(std::str::from_utf8(parts.next()?).ok()?)?;
    let stream = match parts.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let content = parts.next()?;
    Some(Record {
        time,
        stream,
        partial,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_795_950_466, 123_456_789);
        let s = format_time(t);
        assert_eq!(s, "2026-11-29T11:07:46.123456789Z");
        assert_eq!(parse_time(&s), Some(t));
        assert_eq!(
            parse_time("2026-11-29T12:07:46.5+01:00"),
            Some(UNIX_EPOCH + Duration::new(1_795_950_466, 500_000_000))
        );
        assert_eq!(
            parse_time("2000-02-29T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        for bad in [
            "2026-11-29 11:07:46Z",
            "2026-13-29T11:07:46Z",
            "2026-11-29T11:07:46",
            "2026-11-29T11:07:46.Z",
            "2026-11-29T11:07:46.1234567890Z",
            "2026-11-29T11:07:46Zjunk",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        let t = UNIX_EPOCH + Duration::new(5, 7);
        push_record(&mut out, &format_time(t), LogStream::Stderr, true, b"a b c");
        assert_eq!(out, b"1970-01-01T00:00:05.000000007Z stderr P a b c\n");
        let r = parse_record(&out[..out.len() - 1]).unwrap();
        assert_eq!(
            r,
            Record {
                time: t,
                stream: LogStream::Stderr,
                partial: true,
                content: b"a b c"
            }
        );
        assert!(parse_record(b"1970-01-01T00:00:05Z stdin F x").is_none());
        assert!(parse_record(b"1970-01-01T00:00:05Z stdout X x").is_none());
        // Empty content is a record (an empty line).
        assert_eq!(
            parse_record(b"1970-01-01T00:00:05Z stdout F ")
                .unwrap()
                .content,
            b""
        );
    }
}
