//! Durations as written in the configuration file: `250ms`, `2s`, `5m`, `1h`, or a bare
//! number of seconds. The same grammar as the consent section, parsed by the same function
//! (`discreet_consent::parse_duration`), so one file never mixes two spellings of time.

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};

/// What the error message says a duration must look like.
const EXPECTED: &str = "a duration such as 250ms, 2s, 5m or 1h";

/// Parses `250ms`, `2s`, `5m`, `1h` or a bare number of seconds; `None` for anything else,
/// including values that overflow.
pub(crate) fn parse(text: &str) -> Option<Duration> {
    discreet_consent::parse_duration(text)
}

/// Writes a duration back in the file's grammar, for error messages.
pub(crate) fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || d.is_zero() {
        format!("{}ms", d.as_millis())
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// `#[serde(deserialize_with = "crate::duration::deserialize")]`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: Error>(self, secs: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(secs))
    }

    fn visit_i64<E: Error>(self, secs: i64) -> Result<Duration, E> {
        u64::try_from(secs)
            .map(Duration::from_secs)
            .map_err(|_| E::invalid_value(Unexpected::Signed(secs), &self))
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse("2 s"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1d"), None);
        assert_eq!(parse("-1s"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("99999999999999999999h"), None);
    }

    #[test]
    fn shown_in_file_grammar() {
        assert_eq!(show(Duration::from_secs(10)), "10s");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::ZERO), "0ms");
        assert_eq!(show(Duration::from_secs(120)), "2m");
        assert_eq!(show(Duration::from_secs(7200)), "2h");
    }
}
