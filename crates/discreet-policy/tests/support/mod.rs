//! Shared by the property and differential tests: random profiles, random policies, and a
//! deterministic random source (proptest supplies the seeds, so failures reproduce).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use discreet_policy::{Action, ConsentGrant, Policy};
use discreet_schema::{
    LabelContext, Schema,
    prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, Value},
};

pub const NOW: i64 = 1_795_000_000; // 2026-11-18

#[derive(Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub fn schema() -> Schema {
    Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap()
}

const STRINGS: &[&str] = &[
    "1990-04-12",
    "2012-01-30",
    "ada@example.org",
    "+49 30 1234567",
    "DE",
    "US-CA",
    "żółw",
    "10115",
    "u-000123",
    "a",
    "new_baby",
    "Berlin",
    "x@y",
    "2024-02-29",
    "not a date",
];

fn random_scalar(kind: &Kind, rng: &mut SeededRng) -> Value {
    match kind {
        Kind::String => Value::String(if rng.chance(70) {
            (*rng.pick(STRINGS)).to_owned()
        } else {
            format!("s{}", rng.next_u64() % 100_000)
        }),
        Kind::Bytes => Value::Bytes(
            (0..rng.below(20) + 1)
                .map(|_| rng.next_u64() as u8)
                .collect::<Vec<_>>()
                .into(),
        ),
        Kind::Bool => Value::Bool(true),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32((rng.next_u64() as i32) / (1 + rng.below(1000) as i32))
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64((rng.next_u64() as i64) / (1 + rng.below(1_000_000) as i64))
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(rng.next_u64() as u32 / (1 + rng.below(1000) as u32))
        }
        Kind::Uint64 | Kind::Fixed64 => Value::U64(rng.next_u64() / (1 + rng.below(1_000_000))),
        Kind::Float => Value::F32((rng.below(36_000) as f32 - 18_000.0) / 100.0 + 0.005),
        Kind::Double => {
            Value::F64((rng.below(3_600_000) as f64 - 1_800_000.0) / 10_000.0 + 0.000_03)
        }
        Kind::Enum(e) => Value::EnumNumber(
            rng.pick(&e.values().map(|v| v.number()).collect::<Vec<_>>())
                .to_owned(),
        ),
        Kind::Message(m) => Value::Message(random_message(m, rng, 1)),
    }
}

/// A random instance of `desc`: every field present with some probability, repeated and
/// map fields with 0-3 entries, timestamps near `NOW`.
pub fn random_message(desc: &MessageDescriptor, rng: &mut SeededRng, depth: u32) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    if desc.full_name() == "google.protobuf.Timestamp" {
        m.set_field_by_name(
            "seconds",
            Value::I64(NOW - rng.below(3 * 365 * 86_400) as i64),
        );
        m.set_field_by_name("nanos", Value::I32(rng.below(1_000_000_000) as i32));
        return m;
    }
    for f in desc.fields() {
        if depth > 6 || rng.chance(25) {
            continue;
        }
        if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                continue;
            };
            let mut map = HashMap::new();
            for _ in 0..rng.below(4) {
                let key = MapKey::String(format!("k{}", rng.below(5)));
                map.insert(
                    key,
                    random_scalar(&entry.map_entry_value_field().kind(), rng),
                );
            }
            m.set_field(&f, Value::Map(map));
        } else if f.is_list() {
            let n = rng.below(4);
            let items = (0..n)
                .map(|_| match f.kind() {
                    Kind::Message(child) => Value::Message(random_message(&child, rng, depth + 1)),
                    k => random_scalar(&k, rng),
                })
                .collect();
            m.set_field(&f, Value::List(items));
        } else {
            let v = match f.kind() {
                Kind::Message(child) => Value::Message(random_message(&child, rng, depth + 1)),
                k => random_scalar(&k, rng),
            };
            m.set_field(&f, v);
        }
    }
    m
}

/// Appends unknown fields (numbers the schema does not use) of every wire type.
pub fn append_unknown_fields(bytes: &mut Vec<u8>, rng: &mut SeededRng) {
    for _ in 0..rng.below(4) {
        let number = 1000 + rng.below(1000);
        match rng.below(4) {
            0 => {
                push_varint(bytes, number << 3);
                push_varint(bytes, rng.next_u64());
            }
            1 => {
                push_varint(bytes, (number << 3) | 1);
                bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
            2 => {
                push_varint(bytes, (number << 3) | 5);
                bytes.extend_from_slice(&(rng.next_u64() as u32).to_le_bytes());
            }
            _ => {
                push_varint(bytes, (number << 3) | 2);
                bytes.push(6);
                bytes.extend_from_slice(b"secret");
            }
        }
    }
}

pub fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Leaves of the profile: (category, kind) pairs, for choosing actions that fit.
pub fn leaf_categories(schema: &Schema) -> BTreeMap<String, BTreeSet<String>> {
    fn walk(
        schema: &Schema,
        m: &MessageDescriptor,
        ctx: &LabelContext,
        out: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        let ctx = ctx.enter_message(schema.message_label(m));
        for f in m.fields() {
            let fctx = ctx.enter_field(schema.field_label(&f));
            match f.kind() {
                Kind::Message(child) if !f.is_map() => walk(schema, &child, &fctx, out),
                k => {
                    let kind = if f.is_map() {
                        "map".to_owned()
                    } else {
                        format!("{k:?}").split('(').next().unwrap().to_owned()
                    };
                    out.entry(fctx.category.clone().unwrap())
                        .or_default()
                        .insert(kind);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        schema,
        &schema.message("profile.v1.Profile").unwrap(),
        &LabelContext::default(),
        &mut out,
    );
    out
}

const SPECIALS: &[&str] = &[
    "user.demographic.race_ethnicity",
    "user.demographic.religious_belief",
    "user.health.reproductive_or_sexual",
];

fn action_for(kinds: &BTreeSet<String>, rng: &mut SeededRng) -> String {
    let mut options = vec!["keep", "drop"];
    if kinds.contains("String") {
        options.extend([
            "{ mask: email }",
            "{ mask: { show_last: 3 } }",
            "{ mask: { fixed: \"x\" } }",
            "pseudonymize",
            "{ generalize: year }",
            "{ generalize: age_band }",
            "{ truncate: 2 }",
        ]);
    }
    if kinds.contains("Double") {
        options.extend([
            "{ generalize: city }",
            "{ generalize: country }",
            "{ generalize: { bucket: 10 } }",
        ]);
    }
    if kinds.contains("Int64") || kinds.contains("Uint32") || kinds.contains("Int32") {
        options.push("{ generalize: { bucket: 1000 } }");
    }
    if kinds.contains("Int64") || kinds.contains("Bytes") {
        options.push("pseudonymize");
    }
    (*rng.pick(&options)).to_owned()
}

/// A random but valid policy with one purpose `personalize`, and a random grant.
pub fn random_policy(
    schema: &Schema,
    rng: &mut SeededRng,
    with_freshness: bool,
) -> (Policy, ConsentGrant, String) {
    let leaves = leaf_categories(schema);
    let mut rules = String::new();
    let mut ruled = BTreeSet::new();
    for (category, kinds) in &leaves {
        if rng.chance(80) {
            ruled.insert(category.clone());
            rules.push_str(&format!(
                "      - {{ category: {category}, action: {} }}\n",
                action_for(kinds, rng)
            ));
        }
    }
    for parent in ["user", "user.contact", "user.behavior", "system"] {
        if rng.chance(30) && ruled.insert(parent.to_owned()) {
            rules.push_str(&format!(
                "      - {{ category: {parent}, action: {} }}\n",
                rng.pick(&["keep", "drop"])
            ));
        }
    }
    if rng.chance(30) {
        rules.push_str(
            "      - { category: user.behavior, provenance: [inferred], action: drop }\n",
        );
    }
    let deny = *rng.pick(&[
        "{}",
        "{ provenance: [inferred] }",
        "{ source: [third_party] }",
    ]);
    let freshness = if with_freshness && rng.chance(50) {
        "    max_data_age: { user.behavior: 400d }\n"
    } else {
        ""
    };
    let ca_rules = if rng.chance(50) {
        "    jurisdictions:\n      US-CA:\n        rules:\n          - { category: user.behavior.purchase_history, action: drop }\n"
    } else {
        ""
    };
    let has_purchase_rule = rules.contains("category: user.behavior.purchase_history,")
        || rules.contains("category: user.behavior,")
        || rules.contains("category: user,");
    let ca_rules = if has_purchase_rule { ca_rules } else { "" };
    let minimum_age = if rng.chance(25) {
        "{ default: 16 }"
    } else {
        "{}"
    };
    let text = format!(
        "version: prop\npurposes:\n  personalize:\n    legal_basis: contract\n    callers: [\"*\"]\n    minimum_age: {minimum_age}\n    special_categories: [{}]\n    deny: {deny}\n{freshness}{ca_rules}    rules:\n{rules}",
        SPECIALS.join(", ")
    );
    let policy = Policy::parse(std::path::Path::new("random.yaml"), &text, schema)
        .unwrap_or_else(|e| panic!("random policy invalid: {e:?}\n{text}"));
    let grant = ConsentGrant {
        purposes: ["personalize".to_owned()].into(),
        special_categories: SPECIALS
            .iter()
            .filter(|_| rng.chance(50))
            .map(|s| (*s).to_owned())
            .collect(),
    };
    (policy, grant, text)
}

/// Explanation by path for a record in `jurisdiction`.
pub fn decisions(
    policy: &Policy,
    schema: &Schema,
    grant: &ConsentGrant,
    jurisdiction: Option<&str>,
) -> HashMap<String, (Action, Option<String>, Option<u64>)> {
    policy
        .explain(
            schema,
            "profile.v1.Profile",
            "personalize",
            grant,
            jurisdiction,
        )
        .unwrap()
        .into_iter()
        .map(|e| (e.path, (e.decision.action, e.category, e.max_age_secs)))
        .collect()
}

/// Every (path, value) leaf present in a message; repeated and map values are listed
/// under their field's path.
pub fn leaves(m: &DynamicMessage, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (f, v) in m.fields() {
        let path = if prefix.is_empty() {
            f.name().to_owned()
        } else {
            format!("{prefix}.{}", f.name())
        };
        match v {
            Value::Message(child) if !f.is_map() => leaves(child, &path, out),
            Value::List(items) => {
                for item in items {
                    match item {
                        Value::Message(child) => leaves(child, &path, out),
                        other => out.push((path.clone(), other.clone())),
                    }
                }
            }
            other => out.push((path, other.clone())),
        }
    }
}

/// Unknown fields anywhere in a message.
pub fn has_unknown_fields(m: &DynamicMessage) -> bool {
    m.unknown_fields().next().is_some()
        || m.fields().any(|(_, v)| match v {
            Value::Message(c) => has_unknown_fields(c),
            Value::List(items) => items
                .iter()
                .any(|i| matches!(i, Value::Message(c) if has_unknown_fields(c))),
            _ => false,
        })
}

pub fn special(category: &str) -> bool {
    SPECIALS.iter().any(|s| category.starts_with(s))
}
