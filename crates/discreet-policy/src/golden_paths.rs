//! Checks that every field path a golden case expects exists in the message type. Without
//! it a misspelt path (`contact.emial: kept`) reads as "expected kept, not released": a
//! failing case that points at the policy when the case itself is wrong.
use std::collections::BTreeSet;

use discreet_schema::{
    Schema,
    prost_reflect::{Kind, MessageDescriptor},
};

use crate::{Diagnostic, Expectation, GoldenFile, Severity, closest::closest};

/// The field paths a case may name in `expect.released`, as the runner names them.
#[derive(Debug, Default)]
struct LeafPaths {
    leaves: BTreeSet<String>,
    /// Paths of message fields whose type contains itself: anything below them may exist.
    open: Vec<String>,
}

impl LeafPaths {
    fn of(root: &MessageDescriptor) -> LeafPaths {
        let mut paths = LeafPaths::default();
        paths.walk(root, "", &mut Vec::new());
        paths
    }

    /// Every set leaf is named by its dotted path; singular and repeated messages are
    /// entered, maps are leaves (as `leaf_values` in the runner does).
    fn walk(&mut self, m: &MessageDescriptor, prefix: &str, stack: &mut Vec<String>) {
        stack.push(m.full_name().to_owned());
        for field in m.fields() {
            let path = if prefix.is_empty() {
                field.name().to_owned()
            } else {
                format!("{prefix}.{}", field.name())
            };
            match field.kind() {
                Kind::Message(child) if !field.is_map() => {
                    if stack.iter().any(|n| n == child.full_name()) {
                        self.open.push(path);
                    } else {
                        self.walk(&child, &path, stack);
                    }
                }
                _ => {
                    self.leaves.insert(path);
                }
            }
        }
        stack.pop();
    }

    fn contains(&self, path: &str) -> bool {
        self.leaves.contains(path)
            || self
                .open
                .iter()
                .any(|o| crate::vocabulary::within(path, o) && path != o)
    }
}

impl GoldenFile {
    /// One error per expected path that `message` does not have, at the path's line, with
    /// the nearest existing path when one is close. `Err` if `message` is not in the schema.
    pub fn unknown_paths(&self, schema: &Schema, message: &str) -> Result<Vec<Diagnostic>, String> {
        let root = schema.message(message).map_err(|e| e.to_string())?;
        let paths = LeafPaths::of(&root);
        let mut out = Vec::new();
        for case in &self.cases {
            let Expectation::Released(expected) = &case.expect else {
                continue;
            };
            for (path, outcome) in expected {
                if paths.contains(path) {
                    continue;
                }
                let mut text = format!(
                    "case {}: expected path {path}: no such field in {message}",
                    case.name
                );
                if let Some(near) = closest(path, paths.leaves.iter().map(String::as_str)) {
                    text.push_str(&format!("; did you mean {near}?"));
                }
                out.push(Diagnostic {
                    severity: Severity::Error,
                    file: self.file.clone(),
                    line: outcome.referenced.line(),
                    column: outcome.referenced.column(),
                    message: text,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    const CASE: &str = "- name: fraud
  record: { persona: adult_de }
  caller: risk/scorer
  purpose: essential.fraud_detection
  now: 1795000000
  expect:
    released:
      contact.emial: masked
      contact.phone: masked
      inferences.updated_at.seconds: kept
";

    #[test]
    fn a_misspelt_path_is_an_error_at_its_line_with_a_suggestion() {
        let schema = Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap();
        let file = GoldenFile::parse(Path::new("cases.yaml"), CASE).unwrap();
        let errors = file.unknown_paths(&schema, "profile.v1.Profile").unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "cases.yaml:8:22: error: case fraud: expected path contact.emial: no such field in \
             profile.v1.Profile; did you mean contact.email?"
        );
    }
}
