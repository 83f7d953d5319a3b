//! Property and differential tests of the wire rewriter under random profiles, random
//! unknown fields, random policies and random grants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{collections::HashMap, sync::LazyLock};

use discreet_policy::{Action, PurposePlan, RecordOutcome};
use discreet_redact::{PseudonymKey, RewriteReport, Transform};
use discreet_schema::{
    Schema,
    prost_reflect::{DynamicMessage, MapKey, MessageDescriptor, Value},
};
use proptest::prelude::*;
use prost::Message as _;
use support::*;

static SCHEMA: LazyLock<Schema> = LazyLock::new(schema);
const SECRET: &[u8] = b"property-secret";

fn profile() -> MessageDescriptor {
    SCHEMA.message("profile.v1.Profile").unwrap()
}

fn jurisdiction_of(m: &DynamicMessage) -> Option<String> {
    m.get_field_by_name("jurisdiction")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.is_empty())
}

/// Whether `transform` leaves `v` unchanged.
fn identity(transform: &Transform, v: &Value) -> bool {
    match (transform, v) {
        (t, Value::String(s)) => t.apply_str(s, NOW).as_deref() == Some(s.as_str()),
        (Transform::NumberBucket(b), Value::I64(x)) => x % (*b as i64) == 0,
        (Transform::NumberBucket(b), Value::I32(x)) => (*x as i64) % (*b as i64) == 0,
        (Transform::NumberBucket(b), Value::U32(x)) => (*x as u64).is_multiple_of(*b),
        (Transform::NumberBucket(b), Value::F64(x)) => (x / *b as f64).floor() * *b as f64 == *x,
        (Transform::CoordinateGrid(g), Value::F64(x)) => grid(*x, *g) == *x,
        (Transform::CoordinateGrid(g), Value::F32(x)) => grid(*x as f64, *g) as f32 == *x,
        _ => false,
    }
}

/// One random trial: a profile with unknown fields appended, a policy and grant, and what
/// the rewriter released (`None` when the record was refused).
struct Case {
    original: DynamicMessage,
    input: Vec<u8>,
    policy: discreet_policy::Policy,
    grant: discreet_policy::ConsentGrant,
    text: String,
    out: Option<Vec<u8>>,
}

fn case(seed: u64, policy_seed: u64, with_freshness: bool) -> Case {
    let mut rng = SeededRng::new(seed);
    let original = random_message(&profile(), &mut rng, 0);
    let mut input = original.encode_to_vec();
    append_unknown_fields(&mut input, &mut rng);
    let (policy, grant, text) =
        random_policy(&SCHEMA, &mut SeededRng::new(policy_seed), with_freshness);
    let plan = PurposePlan::compile(
        &policy,
        &SCHEMA,
        "profile.v1.Profile",
        "personalize",
        &grant,
        SECRET,
    )
    .unwrap();
    let mut out = Vec::new();
    let mut report = RewriteReport::default();
    let outcome = plan.apply(&input, NOW, &mut out, &mut report).unwrap();
    // A refused record must not have released a byte, whichever property asked.
    let out = match outcome {
        RecordOutcome::Released => Some(out),
        RecordOutcome::Refused(_) => {
            assert!(out.is_empty(), "a refused record released bytes");
            None
        }
    };
    Case {
        original,
        input,
        policy,
        grant,
        text,
        out,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, .. ProptestConfig::default() })]

    /// The rewritten bytes decode; they hold no field the policy drops, no unknown field,
    /// no special category without its explicit grant, and every transformed value
    /// differs from the original unless the transform is the identity on it.
    #[test]
    fn rewrites_release_only_what_the_policy_allows(seed in any::<u64>(), policy_seed in any::<u64>()) {
        let Case { original, policy, grant, text, out, .. } = case(seed, policy_seed, true);
        let Some(out) = out else { return Ok(()) };
        let released = DynamicMessage::decode(profile(), out.as_slice()).unwrap();
        prop_assert!(!has_unknown_fields(&released), "unknown fields released\n{text}");
        let jurisdiction = jurisdiction_of(&original);
        let decided = decisions(&policy, &SCHEMA, &grant, jurisdiction.as_deref());
        let key = PseudonymKey::derive(SECRET, "personalize");
        let mut before = Vec::new();
        leaves(&original, "", &mut before);
        let mut by_path: HashMap<String, Vec<Value>> = HashMap::new();
        for (p, v) in before {
            by_path.entry(p).or_default().push(v);
        }
        let mut after = Vec::new();
        leaves(&released, "", &mut after);
        for (path, value) in after {
            let (action, category, _) = decided.get(&path).unwrap_or_else(|| panic!("no decision for {path}"));
            prop_assert!(action.releases(), "{path} released although the policy drops it\n{text}");
            let category = category.as_deref().unwrap_or_default();
            if special(category) {
                prop_assert!(grant.special_categories.iter().any(|g| category.starts_with(g.as_str())), "special {category} released without grant");
            }
            if let Some(t) = action.transform(&key) {
                let originals = by_path.get(&path).cloned().unwrap_or_default();
                if originals.contains(&value) {
                    prop_assert!(identity(&t, &value), "{path}: {action} released the original value {value:?}\n{text}");
                }
            }
        }
    }

    /// The wire rewriter and a reference implementation (decode with prost-reflect,
    /// clear and transform, re-encode) agree on random inputs.
    #[test]
    fn wire_rewriter_agrees_with_a_reflection_reference(seed in any::<u64>(), policy_seed in any::<u64>()) {
        let Case { input, policy, grant, text, out, .. } = case(seed, policy_seed, false);
        let Some(out) = out else { return Ok(()) };
        let wire = DynamicMessage::decode(profile(), out.as_slice()).unwrap();
        let decoded_input = DynamicMessage::decode(profile(), input.as_slice()).unwrap();
        let decided = decisions(&policy, &SCHEMA, &grant, jurisdiction_of(&decoded_input).as_deref());
        let key = PseudonymKey::derive(SECRET, "personalize");
        let reference = reference_rewrite(&decoded_input, "", &decided, &key);
        // Paths and values first, so that a failure names the field; then everything
        // (including unknown fields, which `leaves` does not list).
        prop_assert_eq!(readable(&wire), readable(&reference), "policy:\n{}", text);
        prop_assert!(wire == reference, "the rewrites differ beyond their known fields\npolicy:\n{}", text);
    }
}

type Decisions = HashMap<String, (Action, Option<String>, Option<u64>)>;

/// The reference: the same decisions applied through reflection, with number transforms
/// written again independently of the rewriter's.
fn reference_rewrite(
    m: &DynamicMessage,
    prefix: &str,
    decided: &Decisions,
    key: &PseudonymKey,
) -> DynamicMessage {
    let mut out = DynamicMessage::new(discreet_schema::prost_reflect::ReflectMessage::descriptor(
        m,
    ));
    for (f, v) in m.fields() {
        let path = if prefix.is_empty() {
            f.name().to_owned()
        } else {
            format!("{prefix}.{}", f.name())
        };
        let leaf_action = decided.get(&path).map(|(a, _, _)| a.clone());
        let new = match v {
            Value::Map(map) => {
                let action = leaf_action.unwrap();
                if !action.releases() {
                    None
                } else {
                    let entries: HashMap<_, _> = map
                        .iter()
                        .filter_map(|(k, v)| {
                            // Keys get the map's action too (the reference schema's only
                            // map has bool values, where no transform fits: maps.rs covers
                            // transformed keys).
                            let k = match (k, action.transform(key)) {
                                (MapKey::String(s), Some(t)) => {
                                    MapKey::String(t.apply_str(s, NOW)?)
                                }
                                (k, _) => k.clone(),
                            };
                            transform_value(&action, key, v).map(|t| (k, t))
                        })
                        .collect();
                    (!entries.is_empty()).then_some(Value::Map(entries))
                }
            }
            Value::Message(child) => {
                let c = reference_rewrite(child, &path, decided, key);
                non_empty(c)
            }
            Value::List(items) => {
                let kept: Vec<Value> = items
                    .iter()
                    .filter_map(|item| match item {
                        Value::Message(child) => {
                            let c = reference_rewrite(child, &path, decided, key);
                            non_empty(c)
                        }
                        scalar => transform_value(leaf_action.as_ref().unwrap(), key, scalar),
                    })
                    .collect();
                (!kept.is_empty()).then_some(Value::List(kept))
            }
            scalar => transform_value(&leaf_action.unwrap(), key, scalar),
        };
        if let Some(value) = new {
            out.set_field(&f, value);
        }
    }
    out
}

fn transform_value(action: &Action, key: &PseudonymKey, v: &Value) -> Option<Value> {
    if !action.releases() {
        return None;
    }
    let Some(t) = action.transform(key) else {
        return Some(v.clone());
    };
    Some(match (&t, v) {
        (t, Value::String(s)) => Value::String(t.apply_str(s, NOW)?),
        (Transform::Pseudonymize(k), Value::Bytes(b)) => {
            Value::Bytes(k.digest16(b).to_vec().into())
        }
        (Transform::Truncate(n), Value::Bytes(b)) => {
            Value::Bytes(b.slice(..b.len().min(*n as usize)))
        }
        (Transform::Pseudonymize(k), Value::I64(x)) => {
            let d = k.digest16(x.to_string().as_bytes());
            Value::I64(i64::from_le_bytes(d[..8].try_into().unwrap()))
        }
        (Transform::NumberBucket(b), Value::I64(x)) => {
            Value::I64(x.div_euclid(*b as i64) * *b as i64)
        }
        (Transform::NumberBucket(b), Value::I32(x)) => {
            Value::I32(i32::try_from((*x as i64).div_euclid(*b as i64) * *b as i64).ok()?)
        }
        (Transform::NumberBucket(b), Value::U32(x)) => Value::U32(x / *b as u32 * *b as u32),
        (Transform::NumberBucket(b), Value::F64(x)) => {
            Value::F64((x / *b as f64).floor() * *b as f64)
        }
        (Transform::CoordinateGrid(g), Value::F64(x)) => Value::F64(grid(*x, *g)),
        (Transform::CoordinateGrid(g), Value::F32(x)) => Value::F32(grid(*x as f64, *g) as f32),
        _ => return None,
    })
}

fn non_empty(c: DynamicMessage) -> Option<Value> {
    let any = c.fields().next().is_some();
    any.then_some(Value::Message(c))
}

/// `path = value` lines of every known leaf, sorted: a diffable view of a message.
fn readable(m: &DynamicMessage) -> Vec<String> {
    let mut out = Vec::new();
    leaves(m, "", &mut out);
    let mut lines = Vec::new();
    for (p, v) in out {
        match v {
            // One line per entry: a map's own Debug order is arbitrary.
            Value::Map(entries) => {
                lines.extend(entries.iter().map(|(k, v)| format!("{p}[{k:?}] = {v:?}")))
            }
            v => lines.push(format!("{p} = {v:?}")),
        }
    }
    lines.sort();
    lines
}

/// The reference's own grid snap (not the crate's): whole cells per degree below 1°.
fn grid(x: f64, g: f64) -> f64 {
    if g < 1.0 {
        let per_degree = (1.0 / g).round();
        (x * per_degree).floor() / per_degree
    } else {
        (x / g).floor() * g
    }
}
