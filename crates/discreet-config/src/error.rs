//! Why a configuration was refused, phrased so an operator can go straight to the line:
//! every message starts `file:line:column:` when those are known.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration that could not be read, parsed or accepted. The gateway refuses to
/// start on any of these: running with a half-understood configuration could release data
/// the operator meant to withhold.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file that was being read.
        file: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or YAML that does not fit the model (unknown field, wrong type, missing
    /// required field). The position is the parser's.
    #[error("{}{message}", Position { file: Some(file), line: *line, column: *column })]
    Parse {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line, when the parser reported one.
        line: Option<u64>,
        /// 1-based column, when the parser reported one.
        column: Option<u64>,
        /// What was wrong and what was expected.
        message: String,
    },
    /// Well-formed but refused by [`crate::GatewayConfig::validate`]. `file`, `line` and
    /// `column` are filled in when the configuration came from text (they are `None` when
    /// `validate` runs on a value built in code).
    #[error("{}{}: {message}", Position { file: file.as_deref(), line: *line, column: *column }, FieldPath(path))]
    Invalid {
        /// The configuration file, when known.
        file: Option<PathBuf>,
        /// 1-based line of the offending key (or its nearest written ancestor).
        line: Option<u64>,
        /// 1-based column of that key.
        column: Option<u64>,
        /// The offending field, outermost key first (e.g. `["limits", "max_timeout"]`).
        path: Vec<String>,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The pseudonym secret file was refused. The message never contains the secret.
    #[error("{}: {message}", file.display())]
    Secret {
        /// The secret file.
        file: PathBuf,
        /// Why (too short, unreadable); never the contents.
        message: String,
    },
}

impl ConfigError {
    /// A validation failure at `path`; the file and line are attached later by the caller
    /// that has the text ([`crate::GatewayConfig::from_yaml`]).
    pub(crate) fn invalid(path: &[&str], message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            file: None,
            line: None,
            column: None,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
        }
    }

    /// The offending field as written in messages (`limits.max_timeout`), for validation
    /// errors; lets callers and tests check which setting was refused without parsing text.
    pub fn field(&self) -> Option<String> {
        match self {
            ConfigError::Invalid { path, .. } => Some(FieldPath(path).to_string()),
            _ => None,
        }
    }

    /// The 1-based line the error points at, when known.
    pub fn line(&self) -> Option<u64> {
        match self {
            ConfigError::Parse { line, .. } | ConfigError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    /// Attaches the file name, and the position `locate` finds for the field path.
    pub(crate) fn in_file(
        self,
        file: &Path,
        locate: impl FnOnce(&[String]) -> Option<(u64, u64)>,
    ) -> Self {
        match self {
            ConfigError::Invalid { path, message, .. } => {
                let at = locate(&path);
                ConfigError::Invalid {
                    file: Some(file.to_owned()),
                    line: at.map(|(l, _)| l),
                    column: at.map(|(_, c)| c),
                    path,
                    message,
                }
            }
            other => other,
        }
    }
}

/// `file:line:column: ` with whatever parts are known (nothing at all when none are).
struct Position<'a> {
    file: Option<&'a Path>,
    line: Option<u64>,
    column: Option<u64>,
}

impl fmt::Display for Position<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(file) = self.file else {
            return Ok(());
        };
        write!(f, "{}", file.display())?;
        if let Some(line) = self.line.filter(|l| *l > 0) {
            write!(f, ":{line}")?;
            if let Some(column) = self.column.filter(|c| *c > 0) {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")
    }
}

/// A field path as the operator would look for it: `limits.max_timeout`; keys that contain
/// dots or slashes (method names) are quoted: `methods["/a.B/C"]`.
struct FieldPath<'a>(&'a [String]);

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, key) in self.0.iter().enumerate() {
            // Field names are snake_case; anything else is a map key (a method name).
            let plain = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            match (plain, i) {
                (true, 0) => write!(f, "{key}")?,
                (true, _) => write!(f, ".{key}")?,
                (false, _) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_shows_what_is_known() {
        let e = ConfigError::invalid(&["limits", "max_timeout"], "too long")
            .in_file(Path::new("c.yaml"), |_| Some((12, 3)));
        assert_eq!(e.to_string(), "c.yaml:12:3: limits.max_timeout: too long");
        let e = ConfigError::invalid(&["limits"], "x").in_file(Path::new("c.yaml"), |_| None);
        assert_eq!(e.to_string(), "c.yaml: limits: x");
        assert_eq!(ConfigError::invalid(&["a"], "x").to_string(), "a: x");
    }

    #[test]
    fn method_names_are_quoted() {
        let e = ConfigError::invalid(&["methods", "/a.B/C"], "bad");
        assert_eq!(e.field().as_deref(), Some(r#"methods["/a.B/C"]"#));
    }
}
