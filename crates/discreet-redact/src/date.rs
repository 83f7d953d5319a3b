//! Civil dates without a time-zone library: what the age guard and the date transforms
//! need, and nothing more. Days are counted with Howard Hinnant's `days_from_civil`.

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl CivilDate {
    /// Parses `YYYY-MM-DD` (an ISO 8601 calendar date; a time part after `T` is ignored).
    #[must_use]
    pub fn parse(s: &str) -> Option<CivilDate> {
        let date = s.split('T').next()?;
        let mut parts = date.splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        CivilDate::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }

    /// A date if the parts make one.
    #[must_use]
    pub fn new(year: i32, month: u32, day: u32) -> Option<CivilDate> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (day >= 1 && day <= days_in_month && (1..=9999).contains(&year)).then_some(CivilDate {
            year,
            month,
            day,
        })
    }

    /// The UTC date of a Unix time.
    #[must_use]
    pub fn from_unix(secs: i64) -> CivilDate {
        let z = secs.div_euclid(86_400) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        CivilDate {
            year: year as i32,
            month: month as u32,
            day: day as u32,
        }
    }

    /// Midnight UTC of this date as a Unix time (the inverse of [`CivilDate::from_unix`]).
    #[must_use]
    pub fn to_unix(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400
    }

    /// Whole years from `self` (a birth date) to `today`.
    #[must_use]
    pub fn age_on(self, today: CivilDate) -> i32 {
        let mut age = today.year - self.year;
        if (today.month, today.day) < (self.month, self.day) {
            age -= 1;
        }
        age
    }
}

/// The marketing-standard age band of an age.
#[must_use]
pub fn age_band(age: i32) -> &'static str {
    match age {
        i32::MIN..=12 => "0-12",
        13..=15 => "13-15",
        16..=17 => "16-17",
        18..=24 => "18-24",
        25..=34 => "25-34",
        35..=44 => "35-44",
        45..=54 => "45-54",
        55..=64 => "55-64",
        _ => "65+",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_refuses_dates() {
        assert_eq!(CivilDate::parse("1990-04-12"), CivilDate::new(1990, 4, 12));
        assert_eq!(
            CivilDate::parse("2000-02-29T10:00:00Z").map(|d| d.day),
            Some(29)
        );
        for bad in [
            "1990-02-30",
            "1990-4-12",
            "",
            "abcd-ef-gh",
            "2001-02-29",
            "1990-13-01",
        ] {
            assert_eq!(CivilDate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn unix_round_trips() {
        for secs in [
            0i64,
            951_782_400,
            1_795_000_000 / 86_400 * 86_400,
            -86_400 * 400,
        ] {
            assert_eq!(CivilDate::from_unix(secs).to_unix(), secs);
        }
        assert_eq!(
            CivilDate::parse("2000-02-29").map(CivilDate::to_unix),
            Some(951_782_400)
        );
    }

    #[test]
    fn unix_days_and_ages() {
        assert_eq!(CivilDate::from_unix(0), CivilDate::new(1970, 1, 1).unwrap());
        assert_eq!(
            CivilDate::from_unix(951_782_400),
            CivilDate::new(2000, 2, 29).unwrap()
        );
        assert_eq!(
            CivilDate::from_unix(-86_400),
            CivilDate::new(1969, 12, 31).unwrap()
        );
        let birth = CivilDate::new(2010, 6, 15).unwrap();
        assert_eq!(birth.age_on(CivilDate::new(2026, 6, 14).unwrap()), 15);
        assert_eq!(birth.age_on(CivilDate::new(2026, 6, 15).unwrap()), 16);
        assert_eq!(age_band(15), "13-15");
        assert_eq!(age_band(40), "35-44");
    }
}
