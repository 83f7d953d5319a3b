//! Durations as written in the configuration file: a whole number and its unit, `250ms`,
//! `2s`, `5m`, `1h` or `1d` (as the policy has it, `365d`), parsed by the consent
//! section's parser (`discreet_consent::parse_duration`) so that every section agrees. A
//! bare number is refused: `timeout: 500` could mean milliseconds as well as seconds, and
//! taking it for seconds would be a silent surprise.

use std::time::Duration;

use serde::Deserializer;

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

/// `#[serde(deserialize_with = "crate::duration::deserialize")]`: a string [`parse`]
/// accepts; a YAML number (no unit) is refused, see the module's comment.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    discreet_consent::deserialize_duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use discreet_consent::parse_duration as parse;

    #[test]
    fn grammar() {
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse("365d"), Some(Duration::from_secs(365 * 86_400)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
        assert_eq!(parse("2 s"), Some(Duration::from_secs(2)));
        assert_eq!(parse("2 d"), Some(Duration::from_secs(2 * 86_400)));
        // No unit: seconds or milliseconds? Refused.
        assert_eq!(parse("7"), None);
        assert_eq!(parse(" 30 "), None);
        assert_eq!(parse("d"), None);
        assert_eq!(parse("+1d"), None);
        assert_eq!(parse("1.5d"), None);
        assert_eq!(parse("1w"), None);
        assert_eq!(parse("-1s"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("99999999999999999999h"), None);
        assert_eq!(parse("999999999999999999d"), None);
    }

    /// What a file's value gives, as the configuration reads it.
    fn read(yaml: &str) -> Result<Duration, String> {
        #[derive(Debug, serde::Deserialize)]
        struct One {
            #[serde(deserialize_with = "deserialize")]
            d: Duration,
        }
        serde_saphyr::from_str::<One>(&format!("d: {yaml}"))
            .map(|o| o.d)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn file_values_need_a_unit_and_the_error_lists_the_units() {
        assert_eq!(read("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(read("1d"), Ok(Duration::from_secs(86_400)));
        for bare in ["30", "\"30\"", "-1"] {
            let Err(e) = read(bare) else {
                unreachable!("{bare} was accepted");
            };
            assert!(e.contains("250ms, 2s, 5m, 1h or 1d"), "{bare}: {e}");
            assert!(e.contains("write 30s, not 30"), "{bare}: {e}");
        }
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
