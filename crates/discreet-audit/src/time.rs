//! RFC 3339 timestamps to and from Unix nanoseconds. The calendar arithmetic is the
//! project's one civil-date type (`discreet_redact::date::CivilDate`), not a date crate.

use discreet_redact::date::CivilDate;

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Which end of a window a date-only bound stands for: `--since 2026-11-23` starts at that
/// midnight, `--until 2026-11-23` ends at the next one, so the whole day is included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The first instant of the window (inclusive).
    Since,
    /// The end of the window (exclusive).
    Until,
}

/// A time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a time: {why} (expected RFC 3339 such as 2026-11-23T10:00:00Z, \
     or a date such as 2026-11-23)"
)]
pub struct TimeError {
    input: String,
    why: &'static str,
}

/// Unix nanoseconds of an RFC 3339 timestamp (`2026-11-23T10:00:00Z`, fractions and
/// `+01:00` offsets allowed) or of a date (`2026-11-23`, read per `bound`).
pub fn parse_time(input: &str, bound: Bound) -> Result<u64, TimeError> {
    let fail = |why| TimeError {
        input: input.to_owned(),
        why,
    };
    let b = input.trim().as_bytes();
    let year = digits(b, 0, 4).ok_or(fail("the date must be YYYY-MM-DD"))?;
    let month = digits(b, 5, 2).ok_or(fail("the date must be YYYY-MM-DD"))?;
    let day = digits(b, 8, 2).ok_or(fail("the date must be YYYY-MM-DD"))?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err(fail("the date must be YYYY-MM-DD"));
    }
    let date = match (
        i32::try_from(year),
        u32::try_from(month),
        u32::try_from(day),
    ) {
        (Ok(y), Ok(m), Ok(d)) => CivilDate::new(y, m, d),
        _ => None,
    }
    .ok_or(fail("no such day"))?;
    let mut secs = date.to_unix();
    let mut nanos = 0;
    if b.len() == 10 {
        if bound == Bound::Until {
            secs += SECS_PER_DAY;
        }
    } else {
        if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
            return Err(fail("the time must follow a T"));
        }
        let (h, m, s) = (digits(b, 11, 2), digits(b, 14, 2), digits(b, 17, 2));
        let (Some(h), Some(m), Some(s)) = (h, m, s) else {
            return Err(fail("the time must be HH:MM:SS"));
        };
        if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || h > 23 || m > 59 || s > 60 {
            return Err(fail("the time must be HH:MM:SS"));
        }
        secs += h * 3600 + m * 60 + s;
        let mut at = 19;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                if at - start < 9 {
                    nanos += u64::from(b[at] - b'0') * 10u64.pow(8 - (at - start) as u32);
                }
                at += 1;
            }
            if at == start {
                return Err(fail("a fraction of a second needs digits"));
            }
        }
        secs -= match &b[at..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), ..] if b.len() == at + 6 && b[at + 3] == b':' => {
                let (oh, om) = (digits(b, at + 1, 2), digits(b, at + 4, 2));
                let (Some(oh), Some(om)) = (oh, om) else {
                    return Err(fail("the offset must be Z or +HH:MM"));
                };
                let offset = oh * 3600 + om * 60;
                if *sign == b'-' { -offset } else { offset }
            }
            _ => return Err(fail("the offset must be Z or +HH:MM")),
        };
    }
    u64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(NANOS_PER_SEC))
        .and_then(|n| n.checked_add(nanos))
        .ok_or(fail("outside 1970 to 2554"))
}

/// `2026-11-23T10:00:00Z`: whole seconds, for tables and machine output.
#[must_use]
pub fn format_time(unix_nanos: u64) -> String {
    let (date, secs) = split(unix_nanos);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2026-11-23 10:00 UTC`: minutes, for sentences a person reads.
#[must_use]
pub fn format_time_readable(unix_nanos: u64) -> String {
    let (date, secs) = split(unix_nanos);
    format!("{date} {:02}:{:02} UTC", secs / 3600, secs / 60 % 60)
}

/// The date (`YYYY-MM-DD`) and the seconds into that day.
fn split(unix_nanos: u64) -> (String, u64) {
    let secs = unix_nanos / NANOS_PER_SEC;
    let date = CivilDate::from_unix(i64::try_from(secs).unwrap_or(i64::MAX));
    (
        format!("{:04}-{:02}-{:02}", date.year, date.month, date.day),
        secs % SECS_PER_DAY as u64,
    )
}

/// The `len` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let run = b.get(at..at + len)?;
    run.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const DAY_2026_11_23: u64 = 1_795_392_000 * NANOS_PER_SEC;

    #[test]
    fn timestamps_and_dates_parse_to_unix_nanos() {
        let at = |s| parse_time(s, Bound::Since).unwrap();
        assert_eq!(at("2026-11-23"), DAY_2026_11_23);
        assert_eq!(at("2026-11-23T00:00:00Z"), DAY_2026_11_23);
        assert_eq!(
            at("2026-11-23T10:00:00Z"),
            DAY_2026_11_23 + 36_000 * NANOS_PER_SEC
        );
        assert_eq!(
            at("2026-11-23t10:00:00.5z"),
            at("2026-11-23T10:00:00Z") + 500_000_000
        );
        assert_eq!(at("2026-11-23T11:00:00+01:00"), at("2026-11-23T10:00:00Z"));
        assert_eq!(at("2026-11-23T09:30:00-00:30"), at("2026-11-23T10:00:00Z"));
        assert_eq!(at("1970-01-01T00:00:00.000000001Z"), 1);
        assert_eq!(at("2000-02-29"), 951_782_400 * NANOS_PER_SEC);
    }

    #[test]
    fn a_date_as_the_end_of_a_window_covers_the_whole_day() {
        assert_eq!(
            parse_time("2026-11-23", Bound::Until).unwrap(),
            DAY_2026_11_23 + 86_400 * NANOS_PER_SEC
        );
        assert_eq!(
            parse_time("2026-11-23T10:00:00Z", Bound::Until).unwrap(),
            parse_time("2026-11-23T10:00:00Z", Bound::Since).unwrap()
        );
    }

    #[test]
    fn nonsense_is_refused_with_the_input_named() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-29",
            "2026-11-23T25:00:00Z",
            "2026-11-23T10:00:00",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00Z",
            "2026-11-23T10:00:00+0100",
            "1969-12-31",
            "2026-11-23T10:00:00Z trailing",
            "९९९९-11-23",
        ] {
            let e = parse_time(bad, Bound::Since).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-11-23T10:05:09Z",
            "2400-02-29T23:59:59Z",
        ] {
            assert_eq!(format_time(parse_time(s, Bound::Since).unwrap()), s);
        }
        assert_eq!(
            format_time_readable(DAY_2026_11_23 + 36_059 * NANOS_PER_SEC),
            "2026-11-23 10:00 UTC"
        );
        assert_eq!(format_time(u64::MAX), "2554-07-21T23:34:33Z");
    }
}
