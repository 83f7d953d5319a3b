//! Jurisdiction codes and the groups they belong to.
//!
//! A record's jurisdiction is an ISO 3166 code: a country ("DE") or a subdivision
//! ("US-CA"). Policies may also name the groups `EU` (the 27 member states) and `EEA`
//! (EU plus Iceland, Liechtenstein and Norway). The chain of a code runs from the most
//! specific to the least: `US-CA` → `US`; `DE` → `EU` → `EEA`.

use std::borrow::Cow;

const EU: [&str; 27] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];
const EEA_EXTRA: [&str; 3] = ["IS", "LI", "NO"];

/// The codes a jurisdiction's rules are looked up under, most specific first.
#[must_use]
pub fn jurisdiction_chain(code: &str) -> Vec<&str> {
    let mut chain = vec![code];
    if code == "EU" {
        chain.push("EEA");
        return chain;
    }
    let country = code.split_once('-').map_or(code, |(c, _)| c);
    if country != code {
        chain.push(country);
    }
    if EU.contains(&country) {
        chain.extend(["EU", "EEA"]);
    } else if EEA_EXTRA.contains(&country) {
        chain.push("EEA");
    }
    chain
}

/// A record's jurisdiction as a code its rules are looked up under: surrounding
/// whitespace dropped and letters upper-cased (`" fr "` is `FR`, `us-ca` is `US-CA`), since
/// stores write codes in either case. `None` when what remains is not a code (empty,
/// `France`, `FRA`): the caller must not fall back to the rules of no jurisdiction, which
/// would skip the overrides the record may be subject to.
#[must_use]
pub fn normalize_code(raw: &str) -> Option<Cow<'_, str>> {
    let trimmed = raw.trim_ascii();
    if valid_code(trimmed) {
        return Some(Cow::Borrowed(trimmed));
    }
    let upper = trimmed.to_ascii_uppercase();
    valid_code(&upper).then_some(Cow::Owned(upper))
}

/// Whether `code` looks like something a policy may name.
pub(crate) fn valid_code(code: &str) -> bool {
    if code == "EU" || code == "EEA" {
        return true;
    }
    let (country, sub) = code
        .split_once('-')
        .map_or((code, None), |(c, s)| (c, Some(s)));
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    let sub_ok = sub.is_none_or(|s| {
        (1..=3).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    country_ok && sub_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains() {
        assert_eq!(jurisdiction_chain("US-CA"), vec!["US-CA", "US"]);
        assert_eq!(jurisdiction_chain("DE"), vec!["DE", "EU", "EEA"]);
        assert_eq!(jurisdiction_chain("NO"), vec!["NO", "EEA"]);
        assert_eq!(jurisdiction_chain("EU"), vec!["EU", "EEA"]);
        assert!(valid_code("US-CA") && valid_code("DE") && valid_code("EU"));
        assert!(!valid_code("germany") && !valid_code("de") && !valid_code("US-CALIF"));
    }

    #[test]
    fn record_codes_are_normalized_or_refused() {
        assert_eq!(normalize_code("FR").as_deref(), Some("FR"));
        assert!(matches!(normalize_code("FR"), Some(Cow::Borrowed(_))));
        assert_eq!(normalize_code(" fr\n").as_deref(), Some("FR"));
        assert_eq!(normalize_code("us-ca").as_deref(), Some("US-CA"));
        assert_eq!(normalize_code("eu").as_deref(), Some("EU"));
        for unknown in ["", "  ", "France", "FRA", "US_CA", "US-", "F"] {
            assert_eq!(normalize_code(unknown), None, "{unknown:?}");
        }
    }
}
