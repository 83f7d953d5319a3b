/// Parses a duration such as `90d`, `12h`, `30m`, `45s` or `2w` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a duration like 90d, 12h or 30m, found {s:?}"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} in {s:?}: use s, m, h, d, w or y"
            ));
        }
    };
    if n == 0 {
        return Err("a duration must be greater than zero".to_owned());
    }
    n.checked_mul(unit_secs)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("ten days").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }
}
