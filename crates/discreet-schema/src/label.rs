//! What a field holds, as the annotations or the mapping say, and how labels pass from a
//! message-typed field to the fields inside it.
use schemars::JsonSchema;
use serde::Deserialize;

/// How the value came to be known (W3C DPV: collected, observed, derived, inferred).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Nobody said; the policy treats it like `collected` unless it denies unknown provenance.
    #[default]
    Unspecified,
    Collected,
    Observed,
    Derived,
    Inferred,
}

/// Who first held the value.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    Unspecified,
    FirstParty,
    ThirdParty,
}

/// The schema's own sensitivity mark. The vocabulary can make a category special too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    #[default]
    Unspecified,
    Personal,
    Special,
}

/// What a field means to the guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SubjectId,
    BirthDate,
    Jurisdiction,
    UpdatedAt,
}

/// The label of one field, as written (before inheritance).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldLabel {
    pub category: Option<String>,
    pub sensitivity: Sensitivity,
    pub provenance: Provenance,
    pub source: Source,
    pub role: Option<Role>,
}

/// Defaults a message gives its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageLabel {
    pub category: Option<String>,
    pub provenance: Provenance,
    pub source: Source,
}

/// The label in force at a point of the tree: what a field inherits from the fields and
/// messages that enclose it. A field's own value wins over an inherited one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelContext {
    pub category: Option<String>,
    pub special: bool,
    pub provenance: Provenance,
    pub source: Source,
}

impl LabelContext {
    /// The context inside a message whose type carries `message` defaults.
    #[must_use]
    pub fn enter_message(&self, message: Option<&MessageLabel>) -> LabelContext {
        let mut next = self.clone();
        if let Some(m) = message {
            if next.category.is_none() {
                next.category.clone_from(&m.category);
            }
            if m.provenance != Provenance::Unspecified {
                next.provenance = m.provenance;
            }
            if m.source != Source::Unspecified {
                next.source = m.source;
            }
        }
        next
    }

    /// The context of a field with its own label.
    #[must_use]
    pub fn enter_field(&self, field: Option<&FieldLabel>) -> LabelContext {
        let mut next = self.clone();
        if let Some(f) = field {
            if f.category.is_some() {
                next.category.clone_from(&f.category);
            }
            if f.sensitivity == Sensitivity::Special {
                next.special = true;
            }
            if f.provenance != Provenance::Unspecified {
                next.provenance = f.provenance;
            }
            if f.source != Source::Unspecified {
                next.source = f.source;
            }
        }
        next
    }
}
