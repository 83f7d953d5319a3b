//! Golden test cases for a policy: a record, a caller, a purpose, a grant and a fixed
//! clock, with the expected outcome. The runner goes through the same path as the
//! gateway (access check, compiled plan, rewrite of wire bytes) and then reads the
//! output back, so a case checks what is enforced, not what `explain` claims.
use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use discreet_redact::{RewriteReport, last_string};
use discreet_schema::{
    Role, Schema,
    prost_reflect::{DynamicMessage, Kind, Value},
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::{
    Action, ConsentGrant, Diagnostic, Policy, PurposePlan, RecordOutcome, Severity, role_path,
};

/// The secret pseudonyms are keyed with in golden runs; the value never matters because
/// cases state the kind of action, not the output value.
const GOLDEN_SECRET: &[u8] = b"discreet-golden-tests";

/// One file of cases.
#[derive(Debug)]
pub struct GoldenFile {
    /// Where the cases were read from, for diagnostics.
    pub file: PathBuf,
    pub cases: Vec<GoldenCase>,
}

/// One case, with the line it starts on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoldenCase {
    pub name: String,
    pub record: RecordRef,
    pub caller: String,
    pub purpose: String,
    #[serde(default)]
    pub grant: GrantDoc,
    pub now: Clock,
    pub expect: Expectation,
    #[serde(skip)]
    pub line: u64,
    #[serde(skip)]
    pub column: u64,
}

/// Which record the case reads.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    /// A built-in persona (the CLI knows the set).
    pub persona: String,
}

/// The subject's consent for the call.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GrantDoc {
    pub purposes: Vec<String>,
    pub special_categories: Vec<String>,
}

/// The fixed "now": RFC 3339 (`2026-11-18T00:00:00Z`) or Unix seconds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Clock {
    Unix(i64),
    Text(String),
}

/// What the case expects.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// The call or the record is refused, with a reason containing this text.
    Refused(String),
    /// Exactly these field paths are released, each with this outcome. A path listed as
    /// `dropped` must not be released.
    // Each outcome keeps its place in the file, so that a path the message does not have
    // is reported at its line (a `//` comment: doc comments go into the JSON Schema).
    Released(#[schemars(with = "BTreeMap<String, Outcome>")] BTreeMap<String, Spanned<Outcome>>),
}

/// What happened to one released field, as a reviewer names it.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Kept,
    Dropped,
    Masked,
    Pseudonymised,
    Generalised,
    Truncated,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Kept => "kept",
            Outcome::Dropped => "dropped",
            Outcome::Masked => "masked",
            Outcome::Pseudonymised => "pseudonymised",
            Outcome::Generalised => "generalised",
            Outcome::Truncated => "truncated",
        })
    }
}

impl From<&Action> for Outcome {
    fn from(action: &Action) -> Self {
        match action {
            Action::Keep => Outcome::Kept,
            Action::Drop => Outcome::Dropped,
            Action::MaskShowLast(_) | Action::MaskEmail | Action::MaskFixed(_) => Outcome::Masked,
            Action::Pseudonymize => Outcome::Pseudonymised,
            Action::GeneralizeYear
            | Action::GeneralizeAgeBand
            | Action::GeneralizeLocation(_)
            | Action::GeneralizeBucket(_) => Outcome::Generalised,
            Action::Truncate(_) => Outcome::Truncated,
        }
    }
}

/// What a case actually produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actual {
    Refused(String),
    Released(BTreeMap<String, Outcome>),
}

/// The verdict on one case: empty `differences` means it passed.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub line: u64,
    /// `- expected` / `+ actual` lines, one pair per differing field path.
    pub differences: Vec<String>,
}

impl CaseResult {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

impl GoldenFile {
    /// Parses a file holding a YAML list of cases; the error names the file, line and
    /// column.
    pub fn parse(file: &Path, text: &str) -> Result<GoldenFile, Diagnostic> {
        let spanned: Vec<Spanned<GoldenCase>> = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = crate::yaml_error::position(&e);
            Diagnostic {
                severity: Severity::Error,
                file: file.to_owned(),
                line,
                column,
                message: crate::yaml_error::message(&e),
            }
        })?;
        let cases = spanned
            .into_iter()
            .map(|s| {
                let mut case = s.value;
                case.line = s.referenced.line();
                case.column = s.referenced.column();
                case
            })
            .collect();
        Ok(GoldenFile {
            file: file.to_owned(),
            cases,
        })
    }
}

impl Clock {
    /// Unix seconds.
    pub fn unix(&self) -> Result<i64, String> {
        match self {
            Clock::Unix(secs) => Ok(*secs),
            Clock::Text(text) => parse_rfc3339(text)
                .ok_or_else(|| format!("now: {text:?} is not an RFC 3339 date-time")),
        }
    }
}

/// Runs one case against the encoded `record` of type `message`.
pub fn run_case(
    policy: &Policy,
    schema: &Schema,
    message: &str,
    case: &GoldenCase,
    record: &[u8],
) -> Result<CaseResult, String> {
    let actual = outcome(policy, schema, message, case, record)?;
    let differences = compare(&case.expect, &actual);
    Ok(CaseResult {
        name: case.name.clone(),
        line: case.line,
        differences,
    })
}

fn outcome(
    policy: &Policy,
    schema: &Schema,
    message: &str,
    case: &GoldenCase,
    record: &[u8],
) -> Result<Actual, String> {
    let grant = ConsentGrant {
        purposes: case.grant.purposes.iter().cloned().collect(),
        special_categories: case.grant.special_categories.iter().cloned().collect(),
    };
    if let Err(denial) = policy.check_access(&case.caller, &case.purpose, Some(&grant)) {
        return Ok(Actual::Refused(denial.to_string()));
    }
    // As the gateway does (discreet-proxy enforce.rs): a consent token opens special
    // categories only for the purposes it names; for a purpose that needs no consent, a
    // token that does not name it counts as no grant at all.
    let grant = if grant.allows_purpose(&case.purpose) {
        grant
    } else {
        ConsentGrant::default()
    };
    let now = case.now.unix()?;
    let plan = PurposePlan::compile(
        policy,
        schema,
        message,
        &case.purpose,
        &grant,
        GOLDEN_SECRET,
    )?;
    let mut out = Vec::new();
    let mut report = RewriteReport::default();
    match plan
        .apply(record, now, &mut out, &mut report)
        .map_err(|e| e.to_string())?
    {
        RecordOutcome::Refused(r) => return Ok(Actual::Refused(r.to_string())),
        RecordOutcome::Released => {}
    }
    let desc = schema.message(message).map_err(|e| e.to_string())?;
    let jurisdiction = match role_path(schema, &desc, Role::Jurisdiction) {
        Some((path, _)) => last_string(record, &path).map_err(|e| e.to_string())?,
        None => None,
    };
    let decisions: BTreeMap<String, Action> = policy
        .explain(schema, message, &case.purpose, &grant, jurisdiction)?
        .into_iter()
        .map(|e| (e.path, e.decision.action))
        .collect();
    let input = DynamicMessage::decode(desc.clone(), record).map_err(|e| e.to_string())?;
    let released = DynamicMessage::decode(desc, out.as_slice()).map_err(|e| e.to_string())?;
    let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
    leaf_values(&input, "", &mut before);
    leaf_values(&released, "", &mut after);
    let mut actual = BTreeMap::new();
    for (path, values) in after {
        // Either of these would be a rewriter bug; a golden run must not paper over it.
        let outcome = match decisions.get(&path) {
            None | Some(Action::Drop) => {
                return Err(format!(
                    "{path} was released although the policy decides to drop it"
                ));
            }
            Some(action) => Outcome::from(action),
        };
        if outcome == Outcome::Kept && before.get(&path) != Some(&values) {
            return Err(format!("{path} is kept but its value changed"));
        }
        actual.insert(path, outcome);
    }
    Ok(Actual::Released(actual))
}

/// The values of every set leaf field by dotted path, as `explain` names them (maps are
/// leaves; a path below a repeated message collects one value per element).
fn leaf_values(message: &DynamicMessage, prefix: &str, out: &mut BTreeMap<String, Vec<Value>>) {
    for (field, value) in message.fields() {
        let path = if prefix.is_empty() {
            field.name().to_owned()
        } else {
            format!("{prefix}.{}", field.name())
        };
        match (field.kind(), value) {
            (Kind::Message(_), Value::Message(m)) if !field.is_map() => {
                leaf_values(m, &path, out);
            }
            (Kind::Message(_), Value::List(items)) if !field.is_map() => {
                for item in items {
                    if let Value::Message(m) = item {
                        leaf_values(m, &path, out);
                    }
                }
            }
            _ => out.entry(path).or_default().push(value.clone()),
        }
    }
}

fn compare(expected: &Expectation, actual: &Actual) -> Vec<String> {
    match (expected, actual) {
        (Expectation::Refused(want), Actual::Refused(got)) => {
            if got.to_lowercase().contains(&want.to_lowercase()) {
                Vec::new()
            } else {
                vec![format!("- refused: {want}"), format!("+ refused: {got}")]
            }
        }
        (Expectation::Refused(want), Actual::Released(got)) => {
            let mut d = vec![format!("- refused: {want}")];
            d.push(format!("+ released: {} fields", got.len()));
            d
        }
        (Expectation::Released(_), Actual::Refused(got)) => {
            vec!["- released".to_owned(), format!("+ refused: {got}")]
        }
        (Expectation::Released(want), Actual::Released(got)) => {
            let mut d = Vec::new();
            let paths: std::collections::BTreeSet<&String> =
                want.keys().chain(got.keys()).collect();
            for path in paths {
                let w = want.get(path).map_or(Outcome::Dropped, |o| o.value);
                let g = got.get(path).copied().unwrap_or(Outcome::Dropped);
                if w != g {
                    d.push(format!("- {path}: {}", shown(w)));
                    d.push(format!("+ {path}: {}", shown(g)));
                }
            }
            d
        }
    }
}

fn shown(outcome: Outcome) -> String {
    if outcome == Outcome::Dropped {
        "(not released)".to_owned()
    } else {
        outcome.to_string()
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to Unix seconds.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (clock, offset_secs) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off.get(1..)?.split_once(':')?;
        (
            c,
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
        )
    };
    let clock = clock.split('.').next()?;
    let mut t = clock.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next()?.parse().ok()?;
    if hour > 23 || minute > 59 {
        return None;
    }
    let date = discreet_redact::date::CivilDate::new(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?;
    Some(date.to_unix() + hour * 3600 + minute * 60 + second - offset_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_clock() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-18T11:06:40Z"), Some(1_795_000_000));
        assert_eq!(
            parse_rfc3339("2026-11-18T12:06:40+01:00"),
            Some(1_795_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
