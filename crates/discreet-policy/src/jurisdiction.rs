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

/// The assigned ISO 3166-1 alpha-2 codes, sorted (as Debian's iso-codes lists them). A
/// code of the right shape that is not one (`XX`; `EL`, `UK` without their aliases
/// below) names no jurisdiction: a record carrying one is refused like one with none,
/// since no override could be known to apply.
const ASSIGNED: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Codes in common use that ISO 3166-1 assigns to no one, and the country they mean:
/// the EU writes Greece `EL`, and the United Kingdom is often written `UK`.
const ALIASES: [(&str, &str); 2] = [("EL", "GR"), ("UK", "GB")];

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
    let mut upper = trimmed.to_ascii_uppercase();
    let country = upper.split_once('-').map_or(upper.as_str(), |(c, _)| c);
    if let Some((_, meant)) = ALIASES.iter().find(|(alias, _)| *alias == country) {
        upper.replace_range(..2, meant);
    }
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
    let country_ok = ASSIGNED.binary_search(&country).is_ok();
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
        assert!(!valid_code("XX") && !valid_code("UK") && !valid_code("EL"));
        assert!(
            ASSIGNED.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
    }

    #[test]
    fn record_codes_are_normalized_or_refused() {
        assert_eq!(normalize_code("FR").as_deref(), Some("FR"));
        assert!(matches!(normalize_code("FR"), Some(Cow::Borrowed(_))));
        assert_eq!(normalize_code(" fr\n").as_deref(), Some("FR"));
        assert_eq!(normalize_code("us-ca").as_deref(), Some("US-CA"));
        assert_eq!(normalize_code("eu").as_deref(), Some("EU"));
        // Aliases in common use for Greece and the United Kingdom.
        assert_eq!(normalize_code("EL").as_deref(), Some("GR"));
        assert_eq!(normalize_code("uk").as_deref(), Some("GB"));
        assert_eq!(normalize_code("UK-ENG").as_deref(), Some("GB-ENG"));
        assert_eq!(jurisdiction_chain("GR"), vec!["GR", "EU", "EEA"]);
        // Well-formed but assigned to no one: not a jurisdiction.
        for unknown in [
            "", "  ", "France", "FRA", "US_CA", "US-", "F", "XX", "AA-12", "ZZ",
        ] {
            assert_eq!(normalize_code(unknown), None, "{unknown:?}");
        }
    }
}
