//! Why input could not be read: always with the input's name and the line.

use std::fmt;

/// An input that could not be read as OTLP JSON. Its message starts with `source:line:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input}:{line}: {kind}")]
pub struct ReadError {
    /// The input's name (a file name, or `<stdin>`).
    pub input: String,
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub kind: ReadErrorKind,
}

/// What was wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadErrorKind {
    /// The input could not be read at all (the I/O error's message).
    Io(String),
    /// The line is not JSON (serde_json's message, without its own position).
    NotJson(String),
    /// The input ended inside a JSON document.
    Incomplete,
    /// A document is longer than the limit (bytes).
    TooLong(usize),
    /// A Discreet span lacks something it cannot be used without.
    BadSpan(String),
}

impl fmt::Display for ReadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadErrorKind::Io(e) => write!(f, "cannot read: {e}"),
            ReadErrorKind::NotJson(e) => write!(f, "not JSON: {e}"),
            ReadErrorKind::Incomplete => {
                f.write_str("the input ends inside a JSON document (a truncated line?)")
            }
            ReadErrorKind::TooLong(limit) => write!(
                f,
                "a JSON document longer than {limit} bytes; refusing to read it (split the file)"
            ),
            ReadErrorKind::BadSpan(why) => f.write_str(why),
        }
    }
}
