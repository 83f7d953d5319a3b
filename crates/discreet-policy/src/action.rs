use std::{fmt, sync::LazyLock};

use discreet_redact::{PseudonymKey, ScalarKind, Transform};

use crate::document::{ActionDoc, GeneralizeDoc, MaskDoc};

/// What a rule does to the fields it matches.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Keep,
    Drop,
    MaskShowLast(u32),
    MaskEmail,
    MaskFixed(String),
    Pseudonymize,
    GeneralizeYear,
    GeneralizeAgeBand,
    /// Coordinates snapped to a grid of about city (0.1°), region (1°) or country (10°) size.
    GeneralizeLocation(LocationLevel),
    GeneralizeBucket(u64),
    Truncate(u32),
}

/// How coarse a generalised location is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocationLevel {
    City,
    Region,
    Country,
}

impl From<&ActionDoc> for Action {
    fn from(doc: &ActionDoc) -> Self {
        match doc {
            ActionDoc::Keep => Action::Keep,
            ActionDoc::Drop => Action::Drop,
            ActionDoc::Pseudonymize => Action::Pseudonymize,
            ActionDoc::Mask(MaskDoc::Email) => Action::MaskEmail,
            ActionDoc::Mask(MaskDoc::ShowLast(n)) => Action::MaskShowLast(*n),
            ActionDoc::Mask(MaskDoc::Fixed(s)) => Action::MaskFixed(s.clone()),
            ActionDoc::Generalize(GeneralizeDoc::Year) => Action::GeneralizeYear,
            ActionDoc::Generalize(GeneralizeDoc::AgeBand) => Action::GeneralizeAgeBand,
            ActionDoc::Generalize(GeneralizeDoc::City) => {
                Action::GeneralizeLocation(LocationLevel::City)
            }
            ActionDoc::Generalize(GeneralizeDoc::Region) => {
                Action::GeneralizeLocation(LocationLevel::Region)
            }
            ActionDoc::Generalize(GeneralizeDoc::Country) => {
                Action::GeneralizeLocation(LocationLevel::Country)
            }
            ActionDoc::Generalize(GeneralizeDoc::Bucket(b)) => Action::GeneralizeBucket(*b),
            ActionDoc::Truncate(n) => Action::Truncate(*n),
        }
    }
}

impl Action {
    /// How much the action withholds: at equal specificity the most restrictive rule
    /// wins (deny beats allow). Lower is more restrictive.
    pub(crate) fn restrictiveness(&self) -> u8 {
        match self {
            Action::Drop => 0,
            Action::Pseudonymize => 1,
            Action::MaskShowLast(_) | Action::MaskEmail | Action::MaskFixed(_) => 2,
            Action::GeneralizeYear
            | Action::GeneralizeAgeBand
            | Action::GeneralizeLocation(_)
            | Action::GeneralizeBucket(_) => 3,
            Action::Truncate(_) => 4,
            Action::Keep => 5,
        }
    }

    /// The rewriter's transform for this action, with the purpose's pseudonym key.
    /// `None` for keep and drop.
    pub fn transform(&self, key: &PseudonymKey) -> Option<Transform> {
        Some(match self {
            Action::Keep | Action::Drop => return None,
            Action::MaskShowLast(n) => Transform::MaskShowLast(*n),
            Action::MaskEmail => Transform::MaskEmail,
            Action::MaskFixed(s) => Transform::MaskFixed(s.as_str().into()),
            Action::Pseudonymize => Transform::Pseudonymize(key.clone()),
            Action::GeneralizeYear => Transform::DateYear,
            Action::GeneralizeAgeBand => Transform::DateAgeBand,
            Action::GeneralizeLocation(LocationLevel::City) => Transform::CoordinateGrid(0.1),
            Action::GeneralizeLocation(LocationLevel::Region) => Transform::CoordinateGrid(1.0),
            Action::GeneralizeLocation(LocationLevel::Country) => Transform::CoordinateGrid(10.0),
            Action::GeneralizeBucket(b) => Transform::NumberBucket(*b),
            Action::Truncate(n) => Transform::Truncate(*n),
        })
    }

    /// Whether the action can apply to a value of `kind` (keep and drop apply to all).
    #[must_use]
    pub fn fits(&self, kind: ScalarKind) -> bool {
        // The key does not change what fits; any key will do, so derive one once rather
        // than once per field per compile.
        static SHAPE_ONLY: LazyLock<PseudonymKey> =
            LazyLock::new(|| PseudonymKey::derive(b"", "shape-only"));
        match self.transform(&SHAPE_ONLY) {
            None => true,
            Some(t) => kind != ScalarKind::Message && t.fits(kind),
        }
    }

    /// Whether the action releases anything of the value.
    #[must_use]
    pub fn releases(&self) -> bool {
        *self != Action::Drop
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Keep => f.write_str("keep"),
            Action::Drop => f.write_str("drop"),
            Action::MaskShowLast(n) => write!(f, "mask(last {n})"),
            Action::MaskEmail => f.write_str("mask(email)"),
            Action::MaskFixed(s) => write!(f, "mask(fixed {s:?})"),
            Action::Pseudonymize => f.write_str("pseudonymize"),
            Action::GeneralizeYear => f.write_str("generalize(year)"),
            Action::GeneralizeAgeBand => f.write_str("generalize(age band)"),
            Action::GeneralizeLocation(l) => {
                write!(f, "generalize({})", format!("{l:?}").to_lowercase())
            }
            Action::GeneralizeBucket(b) => write!(f, "generalize(bucket {b})"),
            Action::Truncate(n) => write!(f, "truncate({n})"),
        }
    }
}
