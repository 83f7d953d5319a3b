//! YAML parse errors as one line for a policy author. The position is reported once, in
//! `file:line:col`, so the message carries neither the parser's own "line N column M" nor
//! its advice to library users (such as setting `DuplicateKeyPolicy` in `Options`).
use serde_saphyr::{Error, Location, MessageFormatter, UserMessageFormatter};

/// Line and column of the error (0 where the parser knows none).
pub(crate) fn position(e: &Error) -> (u64, u64) {
    e.location()
        .filter(|l| *l != Location::UNKNOWN)
        .map_or((0, 0), |l| (l.line(), l.column()))
}

/// What is wrong, without the position.
pub(crate) fn message(e: &Error) -> String {
    let e = e.without_snippet();
    let text = match e {
        Error::DuplicateMappingKey { key: Some(k), .. } => {
            format!("`{k}` appears twice in this mapping")
        }
        Error::DuplicateMappingKey { key: None, .. } => {
            "a key appears twice in this mapping".to_owned()
        }
        other => UserMessageFormatter.format_message(other).into_owned(),
    };
    // The message may quote the file's text; one line per error, no control characters.
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;

    fn error(text: &str) -> Error {
        serde_saphyr::from_str::<BTreeMap<String, u32>>(text).unwrap_err()
    }

    #[test]
    fn a_duplicate_key_is_named_without_library_advice() {
        let e = error("a: 1\nb: 2\na: 3\n");
        let m = message(&e);
        assert_eq!(m, "`a` appears twice in this mapping");
        assert_eq!(position(&e).0, 3);
    }

    #[test]
    fn the_message_does_not_repeat_the_position() {
        let e = error("a: many\n");
        let m = message(&e);
        assert!(!m.contains("line") && !m.contains("column"), "{m}");
        assert!(!m.contains('\n'), "{m}");
        assert_eq!(position(&e), (1, 4));
    }
}
