//! Numbers a policy may write that parse but cannot mean what the author meant: a
//! minimum age no one has, a bucket or a truncation that changes nothing or keeps nothing.
use std::collections::BTreeMap;

use discreet_redact::ScalarKind;
use serde_saphyr::{Location, Spanned};

use crate::{
    Action,
    diagnostic::Diagnostics,
    document::{ActionDoc, GeneralizeDoc},
    jurisdiction::valid_code,
};

/// The highest minimum age a policy may set. The minimum age withholds every record whose
/// subject is younger on the day of the call (and every record without a birth date), so
/// it is an age of legal capacity: of digital consent (GDPR Art. 8: 13 to 16; COPPA: 13)
/// or of majority, which no jurisdiction sets above 21. 25 leaves a margin; anything
/// higher withholds adults' data for everyone and is a typo (160 for 16).
pub(crate) const MAX_MINIMUM_AGE: u32 = 25;

/// Checks a `minimum_age` map (`defaults.minimum_age` or a purpose's own), once, where it
/// is written: every key a jurisdiction code or `default`, every age plausible.
pub(crate) fn minimum_ages(ages: &BTreeMap<String, Spanned<u32>>, diags: &mut Diagnostics) {
    for (code, age) in ages {
        if code != "default" && !valid_code(code) {
            diags.error(
                &age.referenced,
                format!(
                    "minimum_age key {code:?} must be `default` or an ISO 3166 code like DE or US-CA"
                ),
            );
        }
        if age.value > MAX_MINIMUM_AGE {
            diags.error(
                &age.referenced,
                format!(
                    "minimum_age {} for {code} is not a plausible age of consent or majority: \
                     expected 0 to {MAX_MINIMUM_AGE} (records of younger subjects are withheld)",
                    age.value
                ),
            );
        }
    }
}

/// Checks an action's own numbers, whatever fields it meets.
pub(crate) fn action_parameters(action: &ActionDoc, at: &Location, diags: &mut Diagnostics) {
    match action {
        ActionDoc::Generalize(GeneralizeDoc::Bucket(0)) => diags.error(
            at,
            "generalize bucket 0 would be read as 1: expected a bucket of at least 2 \
             (1 for floating-point fields, to drop the fraction)",
        ),
        ActionDoc::Truncate(0) => diags.error(
            at,
            "truncate 0 keeps nothing of the value: expected at least 1 (or action: drop)",
        ),
        _ => {}
    }
}

/// Whether `action` releases a value of `kind` unchanged while calling it generalised. A
/// bucket of 1 rounds integers down to multiples of 1, as by `keep`, while explain and
/// golden tests say "generalised"; on floating-point fields it drops the fraction, which
/// is a real generalisation, so only integers count.
pub(crate) fn bucket_leaves_unchanged(action: &Action, kind: ScalarKind) -> bool {
    *action == Action::GeneralizeBucket(1) && is_integer(kind)
}

fn is_integer(kind: ScalarKind) -> bool {
    use ScalarKind as K;
    matches!(
        kind,
        K::Int32
            | K::Int64
            | K::Uint32
            | K::Uint64
            | K::Sint32
            | K::Sint64
            | K::Fixed32
            | K::Fixed64
            | K::Sfixed32
            | K::Sfixed64
    )
}
