//! Map fields: keys are released only the way the map's decision says, never in clear
//! beside transformed values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashMap, path::Path};

use discreet_policy::{ConsentGrant, Policy, PurposePlan, RecordOutcome};
use discreet_redact::RewriteReport;
use discreet_schema::{
    Schema,
    prost_reflect::{DynamicMessage, MapKey, Value},
};
use prost::Message;

const PROTO: &str = r#"syntax = "proto3"; package shop.v1;
import "discreet/privacy/v1/annotations.proto";
service Shop { rpc Get(Customer) returns (Customer); }
message Contact { string note = 1 [(discreet.privacy.v1.field) = {category: "user.contact.email"}]; }
message Customer {
  string id = 1 [(discreet.privacy.v1.field) = {category: "user.unique_id", role: ROLE_SUBJECT_ID}];
  map<string, string> aliases = 2 [(discreet.privacy.v1.field) = {category: "user.contact.email"}];
  map<string, Contact> contacts = 3 [(discreet.privacy.v1.field) = {category: "user.contact.email"}];
  map<string, double> places = 4 [(discreet.privacy.v1.field) = {category: "user.location.precise"}];
}"#;

fn schema() -> Schema {
    let dir = std::env::temp_dir().join(format!("discreet-maps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shop.proto"), PROTO).unwrap();
    Schema::from_protos(&[dir.join("shop.proto")], &[dir]).unwrap()
}

fn rewrite(schema: &Schema, rules: &str) -> DynamicMessage {
    let text = format!(
        "version: t\npurposes:\n  personalize:\n    legal_basis: contract\n    callers: [\"*\"]\n    minimum_age: {{}}\n    rules:\n{rules}"
    );
    let policy = Policy::parse(Path::new("maps.yaml"), &text, schema).unwrap();
    let desc = schema.message("shop.v1.Customer").unwrap();
    let mut m = DynamicMessage::new(desc.clone());
    m.set_field_by_name("id", Value::String("c-1".into()));
    let s = |v: &str| Value::String(v.into());
    let key = |v: &str| MapKey::String(v.into());
    m.set_field_by_name(
        "aliases",
        Value::Map(HashMap::from([(
            key("ada@example.org"),
            s("grace@example.org"),
        )])),
    );
    let mut contact = DynamicMessage::new(schema.message("shop.v1.Contact").unwrap());
    contact.set_field_by_name("note", s("alan@example.org"));
    m.set_field_by_name(
        "contacts",
        Value::Map(HashMap::from([(
            key("radia@example.org"),
            Value::Message(contact),
        )])),
    );
    m.set_field_by_name(
        "places",
        Value::Map(HashMap::from([(key("home"), Value::F64(52.52))])),
    );
    let plan = PurposePlan::compile(
        &policy,
        schema,
        "shop.v1.Customer",
        "personalize",
        &ConsentGrant::default(),
        b"k",
    )
    .unwrap();
    let mut out = Vec::new();
    let outcome = plan
        .apply(
            &m.encode_to_vec(),
            1_795_000_000,
            &mut out,
            &mut RewriteReport::default(),
        )
        .unwrap();
    assert_eq!(outcome, RecordOutcome::Released);
    DynamicMessage::decode(desc, out.as_slice()).unwrap()
}

fn rendered(m: &DynamicMessage) -> String {
    format!("{m:?}")
}

#[test]
fn pseudonymised_maps_release_no_key_in_clear() {
    let schema = schema();
    let out = rewrite(
        &schema,
        "      - { category: user.contact.email, action: pseudonymize }\n",
    );
    let text = rendered(&out);
    for clear in [
        "ada@example.org",
        "grace@example.org",
        "radia@example.org",
        "alan@example.org",
    ] {
        assert!(!text.contains(clear), "{clear} released in clear: {text}");
    }
    let Some(Value::Map(aliases)) = out.get_field_by_name("aliases").map(|v| v.into_owned()) else {
        panic!("{text}")
    };
    let (k, v) = aliases.iter().next().unwrap();
    assert!(matches!(k, MapKey::String(s) if s.len() == 32), "{k:?}");
    assert!(matches!(v, Value::String(s) if s.len() == 32), "{v:?}");
}

#[test]
fn a_transform_that_cannot_apply_to_the_key_drops_the_map() {
    let schema = schema();
    // Coordinates snap to a grid, but a string key cannot: the map goes, keys and all.
    let out = rewrite(
        &schema,
        "      - { category: user.location.precise, action: { generalize: city } }\n",
    );
    assert!(!out.has_field_by_name("places"), "{out:?}");
    // Keep releases both, unchanged.
    let out = rewrite(
        &schema,
        "      - { category: user.location.precise, action: keep }\n",
    );
    assert!(rendered(&out).contains("home"));
}
