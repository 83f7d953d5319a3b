//! Labels from configuration, for schemas a team cannot annotate.
//!
//! ```yaml
//! fields:
//!   shop.v1.Customer.email: { category: user.contact.email }
//!   shop.v1.Customer.id: { category: user.unique_id, role: subject_id }
//! messages:
//!   shop.v1.Scores: { provenance: inferred }
//! ```
//! A mapping entry replaces whatever the `.proto` options say for that field or message.
use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::{FieldLabel, MessageLabel, Provenance, Role, SchemaError, Sensitivity, Source};

/// A whole mapping file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaMapping {
    /// Labels by fully-qualified field name (`package.Message.field`).
    pub fields: BTreeMap<String, Spanned<FieldMapping>>,
    /// Defaults by fully-qualified message name.
    pub messages: BTreeMap<String, Spanned<MessageMapping>>,
}

/// One field's label.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMapping {
    /// A dotted data category, e.g. `user.contact.email`.
    pub category: Option<String>,
    pub sensitivity: Sensitivity,
    pub provenance: Provenance,
    pub source: Source,
    pub role: Option<Role>,
}

/// One message's defaults.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct MessageMapping {
    pub category: Option<String>,
    pub provenance: Provenance,
    pub source: Source,
}

impl SchemaMapping {
    /// Parses a mapping file's text; errors name the file and line.
    pub fn parse(file: &Path, text: &str) -> Result<Self, SchemaError> {
        serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            SchemaError::Mapping {
                file: file.to_owned(),
                line,
                column,
                message: first_line(&e.to_string()),
            }
        })
    }
}

impl From<&FieldMapping> for FieldLabel {
    fn from(m: &FieldMapping) -> Self {
        FieldLabel {
            category: m.category.clone(),
            sensitivity: m.sensitivity,
            provenance: m.provenance,
            source: m.source,
            role: m.role,
        }
    }
}

impl From<&MessageMapping> for MessageLabel {
    fn from(m: &MessageMapping) -> Self {
        MessageLabel {
            category: m.category.clone(),
            provenance: m.provenance,
            source: m.source,
        }
    }
}

pub(crate) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}
