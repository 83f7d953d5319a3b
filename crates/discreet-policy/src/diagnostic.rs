use std::{fmt, path::PathBuf};

/// How bad a finding is: errors stop a policy from loading, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a policy, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    pub(crate) file: PathBuf,
    pub(crate) items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn new(file: PathBuf) -> Self {
        Diagnostics {
            file,
            items: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, at: &serde_saphyr::Location, message: impl Into<String>) {
        self.push(Severity::Error, at, message.into());
    }

    pub(crate) fn warn(&mut self, at: &serde_saphyr::Location, message: impl Into<String>) {
        self.push(Severity::Warning, at, message.into());
    }

    /// A warning at a line known only by number (a rule's recorded line).
    pub(crate) fn warn_line(&mut self, line: u64, message: String) {
        self.push_line(Severity::Warning, line, message);
    }

    /// An error at a line known only by number (a rule's recorded line).
    pub(crate) fn error_line(&mut self, line: u64, message: String) {
        self.push_line(Severity::Error, line, message);
    }

    fn push_line(&mut self, severity: Severity, line: u64, message: String) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            column: 0,
            message,
        });
    }

    fn push(&mut self, severity: Severity, at: &serde_saphyr::Location, message: String) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line: at.line(),
            column: at.column(),
            message,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }
}
