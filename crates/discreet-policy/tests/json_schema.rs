//! The checked-in JSON Schemas (`schemas/`) are what the Rust types generate, and every
//! shipped YAML file validates against them.
//!
//! The validator below covers exactly the keywords schemars emits for these types and
//! panics on any other keyword, so a schema change cannot slip past it unchecked. (The
//! `jsonschema` crate would pull in some 45 crates, ICU included, for this one test.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap()
}

#[test]
fn checked_in_schemas_match_the_rust_types() {
    for (file, generated, flag) in [
        (
            "schemas/policy.schema.json",
            discreet_policy::policy_json_schema(),
            "",
        ),
        (
            "schemas/policy-tests.schema.json",
            discreet_policy::policy_tests_json_schema(),
            " --tests",
        ),
    ] {
        assert!(
            read(file) == generated,
            "{file} is out of date: run `cargo run -p discreet-cli -- policy schema{flag} > {file}`"
        );
    }
}

fn shipped() -> Vec<(String, &'static str)> {
    let mut files = vec![(
        "config/policy.yaml".to_owned(),
        "schemas/policy.schema.json",
    )];
    let mut tests: Vec<_> = std::fs::read_dir(repo().join("config/policy-tests"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    tests.sort();
    assert!(!tests.is_empty());
    for t in tests {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        files.push((
            format!("config/policy-tests/{name}"),
            "schemas/policy-tests.schema.json",
        ));
    }
    files
}

#[test]
fn every_shipped_yaml_file_validates_and_names_its_schema() {
    for (file, schema_file) in shipped() {
        let text = read(&file);
        let schema: Value = serde_json::from_str(&read(schema_file)).unwrap();
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        let errors = validate(&schema, &schema, &doc, "$");
        assert!(errors.is_empty(), "{file}: {errors:#?}");
        // The editor finds the schema through the first line.
        let depth = file.matches('/').count();
        let expected = format!(
            "# yaml-language-server: $schema={}{schema_file}",
            "../".repeat(depth)
        );
        assert_eq!(text.lines().next(), Some(expected.as_str()), "{file}");
    }
}

#[test]
fn the_validator_rejects_what_the_loader_rejects() {
    let schema: Value = serde_json::from_str(&read("schemas/policy.schema.json")).unwrap();
    let bad = [
        "version: v\npurposes: {}\nsurprise: 1\n",
        "purposes: {}\n",
        "version: v\npurposes:\n  p:\n    legal_basis: whim\n    callers: []\n",
        "version: v\npurposes:\n  p:\n    legal_basis: consent\n    callers: []\n    rules:\n      - { category: a, action: shred }\n",
        "version: v\npurposes:\n  p:\n    legal_basis: consent\n    callers: []\n    rules:\n      - { category: a, action: { mask: { show_last: -1 } } }\n",
    ];
    for text in bad {
        let doc: Value = serde_saphyr::from_str(text).unwrap();
        assert!(
            !validate(&schema, &schema, &doc, "$").is_empty(),
            "accepted: {text}"
        );
    }
    let tests: Value = serde_json::from_str(&read("schemas/policy-tests.schema.json")).unwrap();
    let doc: Value = serde_saphyr::from_str(
        "- name: x\n  record: { persona: adult_de }\n  caller: c\n  purpose: p\n  now: 0\n  expect: { released: { a: shredded } }\n",
    )
    .unwrap();
    assert!(!validate(&tests, &tests, &doc, "$").is_empty());
}

/// Errors (as `path: problem`) of `value` against `schema`; `root` resolves `$ref`s.
fn validate(root: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let Some(obj) = schema.as_object() else {
        return match schema {
            Value::Bool(true) => vec![],
            _ => vec![format!("{at}: not allowed")],
        };
    };
    let mut errors = Vec::new();
    for (key, s) in obj {
        match key.as_str() {
            "$schema" | "$defs" | "title" | "description" | "default" | "format" => {}
            "$ref" => {
                let name = s.as_str().unwrap().strip_prefix("#/$defs/").unwrap();
                errors.extend(validate(root, &root["$defs"][name], value, at));
            }
            "type" => {
                let types: Vec<&str> = match s {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => panic!("type {s}"),
                };
                if !types.iter().any(|t| has_type(value, t)) {
                    errors.push(format!("{at}: expected {types:?}, found {value}"));
                }
            }
            "enum" => {
                if !s.as_array().unwrap().contains(value) {
                    errors.push(format!("{at}: {value} is not one of {s}"));
                }
            }
            "const" => {
                if value != s {
                    errors.push(format!("{at}: {value} is not {s}"));
                }
            }
            "minimum" => {
                if value.as_f64().is_some_and(|v| v < s.as_f64().unwrap()) {
                    errors.push(format!("{at}: {value} is below {s}"));
                }
            }
            "required" => {
                for name in s.as_array().unwrap() {
                    let name = name.as_str().unwrap();
                    if value.as_object().is_some_and(|o| !o.contains_key(name)) {
                        errors.push(format!("{at}: missing {name}"));
                    }
                }
            }
            "properties" => {
                if let Some(o) = value.as_object() {
                    for (name, v) in o {
                        if let Some(ps) = s.get(name) {
                            errors.extend(validate(root, ps, v, &format!("{at}.{name}")));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = value.as_object() {
                    let declared = obj.get("properties");
                    for (name, v) in o {
                        if declared.is_some_and(|p| p.get(name).is_some()) {
                            continue;
                        }
                        errors.extend(validate(root, s, v, &format!("{at}.{name}")));
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, v) in items.iter().enumerate() {
                        errors.extend(validate(root, s, v, &format!("{at}[{i}]")));
                    }
                }
            }
            "oneOf" | "anyOf" => {
                let passing = s
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|alt| validate(root, alt, value, at).is_empty())
                    .count();
                let ok = if key == "oneOf" {
                    passing == 1
                } else {
                    passing >= 1
                };
                if !ok {
                    errors.push(format!(
                        "{at}: {passing} alternatives of {key} match {value}"
                    ));
                }
            }
            other => panic!("the test validator does not know the keyword {other:?}"),
        }
    }
    errors
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        other => panic!("unknown type {other}"),
    }
}
