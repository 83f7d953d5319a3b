//! The method table: for every configured method, what kind of access it is and where its
//! messages carry subjects and records. Built once per schema from the descriptors, so
//! the request path never looks a name up.
use std::{collections::BTreeMap, collections::HashMap, sync::Arc};

use discreet_config::MethodKind;
use discreet_policy::role_path;
use discreet_schema::{
    Role, Schema,
    prost_reflect::{Kind, MessageDescriptor},
};

/// Where a request names the subjects it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubjectField {
    /// Field numbers from the request's root.
    pub(crate) path: Vec<u32>,
    /// A top-level repeated field (a batch); otherwise one singular subject.
    pub(crate) repeated: bool,
}

/// How records sit in a response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResponseShape {
    /// The response message is one record.
    Record,
    /// The response holds records in one repeated field; every other field of it is
    /// dropped (it is not a record, so no policy covers it).
    Envelope { field: u32 },
}

/// One routed method.
#[derive(Debug)]
pub(crate) struct MethodRoute {
    pub(crate) path: String,
    pub(crate) kind: MethodKind,
    pub(crate) server_streaming: bool,
    pub(crate) request_subjects: Option<SubjectField>,
    pub(crate) response: ResponseShape,
    /// The message type policy plans are compiled for.
    pub(crate) record_type: Arc<str>,
    /// Where a record names its subject.
    pub(crate) record_subject: Vec<u32>,
}

/// Configured methods by full path (`/package.Service/Method`). A path not in it is
/// refused before anything else happens.
#[derive(Debug, Default)]
pub(crate) struct MethodTable {
    routes: HashMap<String, Arc<MethodRoute>>,
}

impl MethodTable {
    /// Resolves every configured method against the schema. A method the schema does not
    /// have, a client-streaming method, or a response without subject-bearing records is
    /// a configuration error: Discreet could not enforce it.
    pub(crate) fn build(
        schema: &Schema,
        methods: &BTreeMap<String, MethodKind>,
    ) -> Result<MethodTable, String> {
        let mut routes = HashMap::new();
        for (path, kind) in methods {
            let route = resolve(schema, path, *kind).map_err(|e| format!("method {path}: {e}"))?;
            routes.insert(path.clone(), Arc::new(route));
        }
        Ok(MethodTable { routes })
    }

    /// For each routed record type with no field labelled `ROLE_JURISDICTION`, the
    /// purposes of `policy` whose rules or minimum age depend on the jurisdiction: every
    /// record of that type is refused for them (its jurisdiction is unknown, which fails
    /// closed). Sorted, for a stable message.
    pub(crate) fn jurisdiction_unknowable(
        &self,
        schema: &Schema,
        policy: &discreet_policy::Policy,
    ) -> Vec<(String, Vec<String>)> {
        let dependent: Vec<String> = policy
            .purposes
            .iter()
            .filter(|(_, p)| p.depends_on_jurisdiction())
            .map(|(name, _)| name.clone())
            .collect();
        if dependent.is_empty() {
            return Vec::new();
        }
        let mut types: Vec<&str> = self.routes.values().map(|r| &*r.record_type).collect();
        types.sort_unstable();
        types.dedup();
        types
            .into_iter()
            .filter(|t| {
                schema
                    .message(t)
                    .is_ok_and(|m| role_path(schema, &m, Role::Jurisdiction).is_none())
            })
            .map(|t| (t.to_owned(), dependent.clone()))
            .collect()
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Arc<MethodRoute>> {
        self.routes.get(path)
    }
}

fn resolve(schema: &Schema, path: &str, kind: MethodKind) -> Result<MethodRoute, String> {
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .ok_or("expected /package.Service/Method")?;
    let service = schema.pool().get_service_by_name(service).ok_or_else(|| {
        let services: Vec<String> = schema
            .pool()
            .services()
            .map(|s| s.full_name().to_owned())
            .collect();
        format!(
            "the schema has no such service (it has: {})",
            services.join(", ")
        )
    })?;
    let method = service
        .methods()
        .find(|m| m.name() == method)
        .ok_or_else(|| {
            let methods: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
            format!(
                "the service has no such method (it has: {})",
                methods.join(", ")
            )
        })?;
    if method.is_client_streaming() {
        return Err(
            "client-streaming methods cannot be enforced: a request must be one message".into(),
        );
    }
    let request_subjects = request_subjects(schema, &method.input())?;
    // A write names the one subject it changes: consent is checked for that subject
    // before the store sees the payload.
    if kind == MethodKind::Write && request_subjects.as_ref().is_none_or(|s| s.repeated) {
        return Err("a write method's request must name exactly one subject (a singular ROLE_SUBJECT_ID field)".into());
    }
    let output = method.output();
    let (response, record) = if let Some(path) = record_subject(schema, &output) {
        (ResponseShape::Record, (output.clone(), path))
    } else {
        envelope(schema, &output)?
    };
    Ok(MethodRoute {
        path: path.to_owned(),
        kind,
        server_streaming: method.is_server_streaming(),
        request_subjects,
        response,
        record_type: Arc::from(record.0.full_name()),
        record_subject: record.1,
    })
}

/// The path to a record's subject id, through singular fields only.
fn record_subject(schema: &Schema, m: &MessageDescriptor) -> Option<Vec<u32>> {
    let (path, _) = role_path(schema, m, Role::SubjectId)?;
    singular_path(m, &path).then_some(path)
}

fn request_subjects(
    schema: &Schema,
    m: &MessageDescriptor,
) -> Result<Option<SubjectField>, String> {
    let Some((path, _)) = role_path(schema, m, Role::SubjectId) else {
        return Ok(None);
    };
    if singular_path(m, &path) {
        return Ok(Some(SubjectField {
            path,
            repeated: false,
        }));
    }
    if path.len() == 1 {
        return Ok(Some(SubjectField {
            path,
            repeated: true,
        }));
    }
    Err(format!(
        "request {} repeats subject ids below the top level; only a top-level repeated field is supported",
        m.full_name()
    ))
}

fn envelope(
    schema: &Schema,
    m: &MessageDescriptor,
) -> Result<(ResponseShape, (MessageDescriptor, Vec<u32>)), String> {
    let mut found = None;
    for f in m.fields().filter(|f| f.is_list()) {
        if let Kind::Message(child) = f.kind()
            && let Some(path) = record_subject(schema, &child)
        {
            if found.is_some() {
                return Err(format!(
                    "response {} has several repeated record fields; expected one",
                    m.full_name()
                ));
            }
            found = Some((ResponseShape::Envelope { field: f.number() }, (child, path)));
        }
    }
    found.ok_or_else(|| {
        format!(
            "response {} has no field marked ROLE_SUBJECT_ID, directly or in one repeated record field",
            m.full_name()
        )
    })
}

/// Whether every step of `path` below `m` is a singular field.
fn singular_path(m: &MessageDescriptor, path: &[u32]) -> bool {
    let mut current = m.clone();
    for (i, n) in path.iter().enumerate() {
        let Some(f) = current.get_field(*n) else {
            return false;
        };
        if f.is_list() || f.is_map() {
            return false;
        }
        match f.kind() {
            Kind::Message(child) => current = child,
            _ if i + 1 == path.len() => return true,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn reference() -> Schema {
        Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    fn table(kind: MethodKind, methods: &[&str]) -> Result<MethodTable, String> {
        let m = methods.iter().map(|p| ((*p).to_owned(), kind)).collect();
        MethodTable::build(&reference(), &m)
    }

    #[test]
    fn resolves_the_reference_service() {
        let t = table(
            MethodKind::Read,
            &[
                "/profile.v1.ProfileService/GetProfile",
                "/profile.v1.ProfileService/BatchGetProfiles",
                "/profile.v1.ProfileService/StreamProfiles",
                "/profile.v1.ProfileService/UpdateProfile",
            ],
        )
        .unwrap();
        let get = t.get("/profile.v1.ProfileService/GetProfile").unwrap();
        assert_eq!(get.response, ResponseShape::Record);
        assert_eq!(
            get.request_subjects,
            Some(SubjectField {
                path: vec![1],
                repeated: false
            })
        );
        assert_eq!(&*get.record_type, "profile.v1.Profile");
        let batch = t
            .get("/profile.v1.ProfileService/BatchGetProfiles")
            .unwrap();
        assert_eq!(batch.response, ResponseShape::Envelope { field: 1 });
        assert!(batch.request_subjects.as_ref().unwrap().repeated);
        let stream = t.get("/profile.v1.ProfileService/StreamProfiles").unwrap();
        assert!(stream.server_streaming);
        assert_eq!(stream.request_subjects, None);
        let update = t.get("/profile.v1.ProfileService/UpdateProfile").unwrap();
        assert_eq!(update.request_subjects.as_ref().unwrap().path, vec![1, 1]);
        assert!(t.get("/profile.v1.ProfileService/Nope").is_none());
    }

    #[test]
    fn names_record_types_whose_jurisdiction_cannot_be_known() {
        let dir = std::env::temp_dir().join(format!("discreet-route-j-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("shop.proto"),
            r#"syntax = "proto3"; package shop.v1;
import "discreet/privacy/v1/annotations.proto";
service Shop { rpc Get(GetRequest) returns (Customer); }
message GetRequest { string id = 1 [(discreet.privacy.v1.field) = {category: "user.unique_id", role: ROLE_SUBJECT_ID}]; }
message Customer {
  string id = 1 [(discreet.privacy.v1.field) = {category: "user.unique_id", role: ROLE_SUBJECT_ID}];
  string email = 2 [(discreet.privacy.v1.field) = {category: "user.contact.email"}];
}"#,
        )
        .unwrap();
        let schema = Schema::from_protos(&[dir.join("shop.proto")], &[dir]).unwrap();
        let methods = [("/shop.v1.Shop/Get".to_owned(), MethodKind::Read)].into();
        let shop = MethodTable::build(&schema, &methods).unwrap();
        let policy = |extra: &str| {
            let text = format!(
                "version: t\npurposes:\n  personalize:\n    legal_basis: contract\n    callers: [\"*\"]\n    minimum_age: {{}}\n    rules:\n      - {{ category: user.contact.email, action: keep }}\n{extra}"
            );
            discreet_policy::Policy::parse(std::path::Path::new("p.yaml"), &text, &schema).unwrap()
        };
        assert!(
            shop.jurisdiction_unknowable(&schema, &policy(""))
                .is_empty()
        );
        let eu = "    jurisdictions:\n      EU:\n        rules:\n          - { category: user.contact.email, action: drop }\n";
        assert_eq!(
            shop.jurisdiction_unknowable(&schema, &policy(eu)),
            vec![(
                "shop.v1.Customer".to_owned(),
                vec!["personalize".to_owned()]
            )]
        );
        // The reference schema labels its jurisdiction: nothing to say.
        let reference = reference();
        let shipped = discreet_policy::Policy::parse(
            std::path::Path::new("policy.yaml"),
            include_str!("../../../config/policy.yaml"),
            &reference,
        )
        .unwrap();
        let all = [
            "/profile.v1.ProfileService/GetProfile",
            "/profile.v1.ProfileService/BatchGetProfiles",
        ];
        let t = table(MethodKind::Read, &all).unwrap();
        assert!(t.jurisdiction_unknowable(&reference, &shipped).is_empty());
    }

    #[test]
    fn refuses_methods_it_cannot_enforce() {
        let e = table(MethodKind::Read, &["/profile.v1.ProfileService/Nope"]).unwrap_err();
        assert!(e.contains("no such method"), "{e}");
        let e = table(MethodKind::Read, &["/nope.Service/Get"]).unwrap_err();
        assert!(e.contains("no such service"), "{e}");
        let e = table(MethodKind::Read, &["GetProfile"]).unwrap_err();
        assert!(e.contains("expected /package.Service/Method"), "{e}");
    }
}
