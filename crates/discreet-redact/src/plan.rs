//! The compiled plan: plain data the rewriter walks without looking anything up by name.
use crate::{
    Transform,
    wire::{I32, I64, LEN, VARINT},
};

/// Index of a message plan inside its [`RedactionPlan`].
pub type MsgId = u32;

/// A field's declared protobuf type, as far as the wire and the transforms care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarKind {
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Float,
    Double,
    Enum,
    String,
    Bytes,
    Message,
}

impl ScalarKind {
    /// The wire type a single value of this kind has.
    #[must_use]
    #[inline]
    pub fn wire_type(self) -> u8 {
        match self {
            ScalarKind::Fixed64 | ScalarKind::Sfixed64 | ScalarKind::Double => I64,
            ScalarKind::Fixed32 | ScalarKind::Sfixed32 | ScalarKind::Float => I32,
            ScalarKind::String | ScalarKind::Bytes | ScalarKind::Message => LEN,
            _ => VARINT,
        }
    }

    /// Whether a repeated field of this kind may arrive packed (one length-delimited run).
    #[must_use]
    pub fn packable(self) -> bool {
        !matches!(
            self,
            ScalarKind::String | ScalarKind::Bytes | ScalarKind::Message
        )
    }
}

/// What happens to one field.
#[derive(Clone, Debug)]
pub enum FieldAction {
    /// Copy the field's bytes unchanged (after checking they are well-formed).
    Keep,
    /// Leave the field out.
    Drop,
    /// Rewrite the nested message with another message plan.
    Message(MsgId),
    /// Decode the value, transform it, encode the result.
    Transform(Transform),
}

/// The plan for one field number of one message type.
#[derive(Clone, Debug)]
pub struct FieldRule {
    pub number: u32,
    pub kind: ScalarKind,
    pub repeated: bool,
    pub action: FieldAction,
    /// Withhold the field when the enclosing record's updated-at is older than this
    /// (or unknown). `None`: no freshness limit.
    pub max_age_secs: Option<u64>,
    /// Index into [`RedactionPlan::paths`]: how the field is reported when withheld.
    pub path_id: u32,
}

/// Where a message keeps the updated-at that covers its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdatedAtField {
    /// A `google.protobuf.Timestamp`-shaped message (seconds = field 1).
    Timestamp(u32),
    /// An integer field of Unix seconds.
    UnixSeconds(u32),
}

impl FieldRule {
    /// The wire type of one value of this field.
    #[inline]
    pub(crate) fn wire_type(&self) -> u8 {
        self.kind.wire_type()
    }

    /// Whether the field may also arrive as one packed run.
    #[inline]
    pub(crate) fn accepts_packed(&self) -> bool {
        self.repeated && self.kind.packable()
    }
}

/// The plan for one message type (in one context: the same type may have several plans
/// when it is reached through fields with different categories).
#[derive(Clone, Debug, Default)]
pub struct MessagePlan {
    pub(crate) name: Box<str>,
    /// `slots[number]` is the index into `fields` plus one; 0 means unknown field.
    pub(crate) slots: Vec<u16>,
    pub(crate) fields: Vec<FieldRule>,
    pub(crate) updated_at: Option<UpdatedAtField>,
    /// This message or one below it has a freshness limit, so updated-at must be found.
    pub(crate) freshness_scope: bool,
}

impl MessagePlan {
    #[inline]
    pub(crate) fn rule(&self, number: u32) -> Option<&FieldRule> {
        let slot = *self.slots.get(number as usize)?;
        if slot == 0 {
            None
        } else {
            self.fields.get(usize::from(slot) - 1)
        }
    }
}

/// A compiled redaction plan: one message plan per (type, context), a root, and the
/// field paths used when reporting what was withheld.
#[derive(Clone, Debug, Default)]
pub struct RedactionPlan {
    pub(crate) messages: Vec<MessagePlan>,
    pub(crate) root: MsgId,
    pub(crate) paths: Vec<Box<str>>,
}

impl RedactionPlan {
    /// The dotted field path of a path id, e.g. `contact.email`.
    #[must_use]
    pub fn path(&self, id: u32) -> &str {
        self.paths.get(id as usize).map_or("?", |p| p)
    }

    /// The root message plan's type name.
    #[must_use]
    pub fn root_name(&self) -> &str {
        self.messages
            .get(self.root as usize)
            .map_or("", |m| &m.name)
    }

    /// Every rule of every message plan with the message's type name, for explanations
    /// and tests.
    pub fn rules(&self) -> impl Iterator<Item = (&str, &FieldRule)> {
        self.messages
            .iter()
            .flat_map(|m| m.fields.iter().map(move |f| (&*m.name, f)))
    }
}

/// Builds a [`RedactionPlan`]. Message plans are reserved first so that recursive
/// message types can refer to themselves.
#[derive(Debug, Default)]
pub struct PlanBuilder {
    messages: Vec<MessagePlan>,
    paths: Vec<Box<str>>,
}

/// Field numbers above this use a sorted table instead of a direct index (none of the
/// reference schema's do; it keeps a hostile descriptor from costing memory).
const MAX_DIRECT_SLOT: u32 = 4096;

impl PlanBuilder {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves a message plan to be filled in by [`PlanBuilder::define`].
    pub fn reserve(&mut self, name: &str) -> MsgId {
        self.messages.push(MessagePlan {
            name: name.into(),
            ..MessagePlan::default()
        });
        #[allow(clippy::cast_possible_truncation)]
        let id = (self.messages.len() - 1) as MsgId;
        id
    }

    /// Registers a reportable field path and returns its id.
    pub fn path(&mut self, path: &str) -> u32 {
        self.paths.push(path.into());
        #[allow(clippy::cast_possible_truncation)]
        let id = (self.paths.len() - 1) as u32;
        id
    }

    /// Fills in a reserved message plan. Rules for field numbers above 4096 or more than
    /// 65535 rules are refused, as is a duplicate field number.
    pub fn define(
        &mut self,
        id: MsgId,
        mut fields: Vec<FieldRule>,
        updated_at: Option<UpdatedAtField>,
    ) -> Result<(), String> {
        fields.sort_by_key(|f| f.number);
        let max = fields.last().map_or(0, |f| f.number);
        if max > MAX_DIRECT_SLOT || fields.len() >= usize::from(u16::MAX) {
            return Err(format!(
                "field numbers above {MAX_DIRECT_SLOT} are not supported"
            ));
        }
        let mut slots = vec![0u16; max as usize + 1];
        for (i, f) in fields.iter().enumerate() {
            let slot = &mut slots[f.number as usize];
            if *slot != 0 {
                return Err(format!("field number {} appears twice", f.number));
            }
            #[allow(clippy::cast_possible_truncation)]
            {
                *slot = (i + 1) as u16;
            }
        }
        let plan = self
            .messages
            .get_mut(id as usize)
            .ok_or_else(|| format!("message plan {id} was not reserved"))?;
        plan.slots = slots;
        plan.fields = fields;
        plan.updated_at = updated_at;
        Ok(())
    }

    /// Finishes the plan with `root` as the message the rewriter starts from.
    #[must_use]
    pub fn finish(mut self, root: MsgId) -> RedactionPlan {
        // A message is in a freshness scope if it or anything below it has a limit.
        // Iterate to a fixed point: recursive types make this a graph, not a tree.
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..self.messages.len() {
                if self.messages[i].freshness_scope {
                    continue;
                }
                let needs = self.messages[i].fields.iter().any(|f| {
                    f.max_age_secs.is_some()
                        || matches!(f.action, FieldAction::Message(c) if self.messages.get(c as usize).is_some_and(|m| m.freshness_scope))
                });
                if needs {
                    self.messages[i].freshness_scope = true;
                    changed = true;
                }
            }
        }
        RedactionPlan {
            messages: self.messages,
            root,
            paths: self.paths,
        }
    }
}
