//! The loaded schema: descriptors plus the labels read from options and mappings.
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value,
};

use crate::{
    FieldLabel, LabelContext, MessageLabel, Provenance, Role, SchemaError, SchemaMapping,
    Sensitivity, Source, load::compile_protos,
};

const FIELD_EXTENSION: &str = "discreet.privacy.v1.field";
const MESSAGE_EXTENSION: &str = "discreet.privacy.v1.message";

/// Descriptors and their privacy labels.
#[derive(Debug, Clone)]
pub struct Schema {
    pool: DescriptorPool,
    fields: HashMap<String, FieldLabel>,
    messages: HashMap<String, MessageLabel>,
}

/// A leaf field that carries no category, directly or inherited: the policy can never
/// release it, and schema lint reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlabelledField {
    /// Dotted path from the root message, e.g. `orders.order_id`.
    pub path: String,
    /// The field's full protobuf name, e.g. `profile.v1.Order.order_id`.
    pub full_name: String,
}

impl Schema {
    /// Loads an encoded `FileDescriptorSet` that holds every import.
    pub fn from_descriptor_set(bytes: &[u8]) -> Result<Self, SchemaError> {
        let pool =
            DescriptorPool::decode(bytes).map_err(|e| SchemaError::Descriptors(e.to_string()))?;
        Self::from_pool(pool)
    }

    /// Compiles `.proto` files (no system `protoc` needed). The annotations file is
    /// importable as `discreet/privacy/v1/annotations.proto` without being on `includes`.
    pub fn from_protos(files: &[PathBuf], includes: &[PathBuf]) -> Result<Self, SchemaError> {
        Self::from_descriptor_set(&compile_protos(files, includes)?)
    }

    fn from_pool(pool: DescriptorPool) -> Result<Self, SchemaError> {
        let field_ext = pool.get_extension_by_name(FIELD_EXTENSION);
        let message_ext = pool.get_extension_by_name(MESSAGE_EXTENSION);
        let mut fields = HashMap::new();
        let mut messages = HashMap::new();
        for message in pool.all_messages() {
            if let Some(ext) = &message_ext {
                let options = message.options();
                if options.has_extension(ext)
                    && let Value::Message(m) = options.get_extension(ext).as_ref()
                {
                    messages.insert(message.full_name().to_owned(), read_message_label(m));
                }
            }
            if let Some(ext) = &field_ext {
                for field in message.fields() {
                    let options = field.options();
                    if options.has_extension(ext)
                        && let Value::Message(m) = options.get_extension(ext).as_ref()
                    {
                        let label = read_field_label(m);
                        check_role(&field, &label)?;
                        fields.insert(field.full_name().to_owned(), label);
                    }
                }
            }
        }
        Ok(Schema {
            pool,
            fields,
            messages,
        })
    }

    /// Applies labels from configuration; an entry naming an unknown field or message is
    /// an error that names the mapping file and line.
    pub fn apply_mapping(
        &mut self,
        mapping: &SchemaMapping,
        file: &Path,
    ) -> Result<(), SchemaError> {
        for (name, entry) in &mapping.fields {
            let Some(field) = self.find_field(name) else {
                return Err(mapping_error(
                    file,
                    &entry.referenced,
                    format!("no field named {name} in the schema"),
                ));
            };
            let label = FieldLabel::from(&entry.value);
            check_role(&field, &label)
                .map_err(|e| mapping_error(file, &entry.referenced, e.to_string()))?;
            self.fields.insert(name.clone(), label);
        }
        for (name, entry) in &mapping.messages {
            if self.pool.get_message_by_name(name).is_none() {
                return Err(mapping_error(
                    file,
                    &entry.referenced,
                    format!("no message named {name} in the schema"),
                ));
            }
            self.messages
                .insert(name.clone(), MessageLabel::from(&entry.value));
        }
        Ok(())
    }

    fn find_field(&self, full_name: &str) -> Option<FieldDescriptor> {
        let (message, field) = full_name.rsplit_once('.')?;
        self.pool
            .get_message_by_name(message)?
            .get_field_by_name(field)
    }

    /// The descriptor pool (for reflection and dynamic messages).
    #[must_use]
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// A message type by its full name.
    pub fn message(&self, full_name: &str) -> Result<MessageDescriptor, SchemaError> {
        self.pool
            .get_message_by_name(full_name)
            .ok_or_else(|| SchemaError::UnknownMessage(full_name.to_owned()))
    }

    /// The field's own label, if it has one.
    #[must_use]
    pub fn field_label(&self, field: &FieldDescriptor) -> Option<&FieldLabel> {
        self.fields.get(field.full_name())
    }

    /// The message type's defaults, if it has any.
    #[must_use]
    pub fn message_label(&self, message: &MessageDescriptor) -> Option<&MessageLabel> {
        self.messages.get(message.full_name())
    }

    /// Every message type that a service method returns: what the gateway rewrites.
    #[must_use]
    pub fn response_types(&self) -> Vec<MessageDescriptor> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for service in self.pool.services() {
            for method in service.methods() {
                let output = method.output();
                if seen.insert(output.full_name().to_owned()) {
                    out.push(output);
                }
            }
        }
        out
    }

    /// Every field below `root` whose value the policy could never release because no
    /// category reaches it.
    #[must_use]
    pub fn unlabelled_fields(&self, root: &MessageDescriptor) -> Vec<UnlabelledField> {
        let mut out = Vec::new();
        let mut stack = Vec::new();
        self.walk_unlabelled(root, &LabelContext::default(), "", &mut stack, &mut out);
        out
    }

    fn walk_unlabelled(
        &self,
        message: &MessageDescriptor,
        ctx: &LabelContext,
        prefix: &str,
        stack: &mut Vec<String>,
        out: &mut Vec<UnlabelledField>,
    ) {
        if stack.iter().any(|m| m == message.full_name()) {
            return; // recursive types: each type is reported once per path
        }
        stack.push(message.full_name().to_owned());
        let ctx = ctx.enter_message(self.message_label(message));
        for field in message.fields() {
            let fctx = ctx.enter_field(self.field_label(&field));
            let path = if prefix.is_empty() {
                field.name().to_owned()
            } else {
                format!("{prefix}.{}", field.name())
            };
            match field.kind() {
                Kind::Message(child) if !field.is_map() => {
                    self.walk_unlabelled(&child, &fctx, &path, stack, out)
                }
                _ if fctx.category.is_none() => out.push(UnlabelledField {
                    path,
                    full_name: field.full_name().to_owned(),
                }),
                _ => {}
            }
        }
        stack.pop();
    }
}

fn mapping_error(file: &Path, at: &serde_saphyr::Location, message: String) -> SchemaError {
    SchemaError::Mapping {
        file: file.to_owned(),
        line: at.line(),
        column: at.column(),
        message,
    }
}

fn string_field(m: &DynamicMessage, name: &str) -> Option<String> {
    m.get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.is_empty())
}

fn enum_field(m: &DynamicMessage, name: &str) -> i32 {
    m.get_field_by_name(name)
        .and_then(|v| v.as_enum_number())
        .unwrap_or(0)
}

fn read_field_label(m: &DynamicMessage) -> FieldLabel {
    FieldLabel {
        category: string_field(m, "category"),
        sensitivity: match enum_field(m, "sensitivity") {
            1 => Sensitivity::Personal,
            2 => Sensitivity::Special,
            _ => Sensitivity::Unspecified,
        },
        provenance: provenance(enum_field(m, "provenance")),
        source: source(enum_field(m, "source")),
        role: match enum_field(m, "role") {
            1 => Some(Role::SubjectId),
            2 => Some(Role::BirthDate),
            3 => Some(Role::Jurisdiction),
            4 => Some(Role::UpdatedAt),
            _ => None,
        },
    }
}

fn read_message_label(m: &DynamicMessage) -> MessageLabel {
    MessageLabel {
        category: string_field(m, "category"),
        provenance: provenance(enum_field(m, "provenance")),
        source: source(enum_field(m, "source")),
    }
}

fn provenance(n: i32) -> Provenance {
    match n {
        1 => Provenance::Collected,
        2 => Provenance::Observed,
        3 => Provenance::Derived,
        4 => Provenance::Inferred,
        _ => Provenance::Unspecified,
    }
}

fn source(n: i32) -> Source {
    match n {
        1 => Source::FirstParty,
        2 => Source::ThirdParty,
        _ => Source::Unspecified,
    }
}

/// A role only makes sense on a field of a type the guards can read.
fn check_role(field: &FieldDescriptor, label: &FieldLabel) -> Result<(), SchemaError> {
    let Some(role) = label.role else {
        return Ok(());
    };
    let kind = field.kind();
    let fits = match role {
        Role::SubjectId => matches!(kind, Kind::String),
        Role::Jurisdiction => matches!(kind, Kind::String) && !field.is_list(),
        Role::BirthDate => {
            !field.is_list() && (matches!(kind, Kind::String) || is_date_message(&kind))
        }
        Role::UpdatedAt => {
            !field.is_list()
                && (matches!(kind, Kind::Int64 | Kind::Uint64 | Kind::Sint64)
                    || is_timestamp(&kind))
        }
    };
    if fits {
        Ok(())
    } else {
        let expected = match role {
            Role::SubjectId => "a string (or repeated string)",
            Role::Jurisdiction => "a single string",
            Role::BirthDate => {
                "a single ISO 8601 date string or a message with int32 year, month, day"
            }
            Role::UpdatedAt => "a single google.protobuf.Timestamp or integer Unix seconds",
        };
        Err(SchemaError::Label {
            field: field.full_name().to_owned(),
            message: format!("role {role:?} needs {expected}"),
        })
    }
}

/// `google.protobuf.Timestamp` or any message shaped like it (int64 seconds = 1).
pub(crate) fn is_timestamp(kind: &Kind) -> bool {
    matches!(kind, Kind::Message(m) if m.get_field(1).is_some_and(|f| f.name() == "seconds" && matches!(f.kind(), Kind::Int64)))
}

/// `google.type.Date` or any message with int32 year (1), month (2), day (3).
pub(crate) fn is_date_message(kind: &Kind) -> bool {
    matches!(kind, Kind::Message(m) if ["year", "month", "day"].iter().enumerate().all(|(i, n)| {
        m.get_field(i as u32 + 1).is_some_and(|f| f.name() == *n && matches!(f.kind(), Kind::Int32))
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn reference() -> Schema {
        Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    #[test]
    fn reads_field_and_message_annotations() {
        let schema = reference();
        let profile = schema.message("profile.v1.Profile").unwrap();
        let subject = profile.get_field_by_name("subject_id").unwrap();
        let label = schema.field_label(&subject).unwrap();
        assert_eq!(label.category.as_deref(), Some("user.unique_id"));
        assert_eq!(label.role, Some(Role::SubjectId));
        let inferences = schema.message("profile.v1.Inferences").unwrap();
        assert_eq!(
            schema.message_label(&inferences).unwrap().provenance,
            Provenance::Inferred
        );
        let preg = inferences
            .get_field_by_name("pregnancy_likelihood")
            .unwrap();
        assert_eq!(
            schema.field_label(&preg).unwrap().sensitivity,
            Sensitivity::Special
        );
    }

    #[test]
    fn reference_profile_has_no_unlabelled_fields() {
        let schema = reference();
        let profile = schema.message("profile.v1.Profile").unwrap();
        assert_eq!(schema.unlabelled_fields(&profile), vec![]);
    }

    #[test]
    fn compiles_protos_that_import_the_annotations_without_copying_them() {
        let dir = std::env::temp_dir().join(format!("discreet-schema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("shop.proto"),
            r#"syntax = "proto3"; package shop.v1;
import "discreet/privacy/v1/annotations.proto";
message Customer {
  string id = 1 [(discreet.privacy.v1.field) = {category: "user.unique_id", role: ROLE_SUBJECT_ID}];
  string nickname = 2;
}"#,
        )
        .unwrap();
        let schema =
            Schema::from_protos(&[dir.join("shop.proto")], std::slice::from_ref(&dir)).unwrap();
        let customer = schema.message("shop.v1.Customer").unwrap();
        let unlabelled = schema.unlabelled_fields(&customer);
        assert_eq!(unlabelled.len(), 1);
        assert_eq!(unlabelled[0].path, "nickname");
    }

    #[test]
    fn mapping_labels_fields_and_names_the_line_of_an_unknown_field() {
        let mut schema = reference();
        let text = "fields:\n  profile.v1.Order.order_id:\n    category: user.behavior.purchase_history\n  profile.v1.Order.nope:\n    category: user.name\n";
        let mapping = SchemaMapping::parse(Path::new("map.yaml"), text).unwrap();
        let err = schema
            .apply_mapping(&mapping, Path::new("map.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("map.yaml:5:"), "{err}");
        assert!(err.contains("profile.v1.Order.nope"), "{err}");
    }

    #[test]
    fn a_subject_id_role_on_a_number_is_rejected() {
        let mut schema = reference();
        let text = "fields:\n  profile.v1.Profile.loyalty_points:\n    category: user.account\n    role: subject_id\n";
        let mapping = SchemaMapping::parse(Path::new("m.yaml"), text).unwrap();
        let err = schema
            .apply_mapping(&mapping, Path::new("m.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SubjectId"), "{err}");
    }

    #[test]
    fn unknown_mapping_keys_are_rejected_with_a_line() {
        let err = SchemaMapping::parse(Path::new("m.yaml"), "fields: {}\ncolour: blue\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.yaml:2:"), "{err}");
    }
}
