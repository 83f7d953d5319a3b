//! "Did you mean": the known name nearest a misspelt one, for error messages.

/// The candidate closest to `wanted` by edit distance, if it is close enough to be a
/// likely typo: at most a third of the longer name's characters differ, so that a short
/// name is never "corrected" into an unrelated one.
pub(crate) fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != wanted)
        .map(|c| (distance(wanted, c), c))
        .filter(|(d, c)| *d * 3 <= wanted.chars().count().max(c.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_typo_and_ignores_unrelated_names() {
        let names = [
            "user.contact.email",
            "user.contact.phone_number",
            "user.name",
        ];
        assert_eq!(
            closest("user.contact.emial", names),
            Some("user.contact.email")
        );
        assert_eq!(closest("system", names), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }
}
