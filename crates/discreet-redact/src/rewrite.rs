//! The one-pass rewriter.
use crate::{
    FieldAction, FieldRule, MsgId, RedactError, RedactionPlan, ScalarKind, UpdatedAtField,
    wire::{LEN, MAX_DEPTH, VARINT, read_tag, read_varint, value_end, varint_len},
};

/// What a rewrite withheld beyond the plan's fixed drops: fields past their freshness
/// limit, and values a transform could not apply to. Reused across calls to avoid
/// allocating.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewriteReport {
    /// Path ids (see [`RedactionPlan::path`]), in the order met, possibly repeated.
    pub withheld: Vec<u32>,
}

impl RewriteReport {
    /// Forgets the previous call's findings.
    pub fn clear(&mut self) {
        self.withheld.clear();
    }
}

/// Rewrites `input` (one encoded message of the plan's root type) into `out` (appended).
/// On error `out` holds a partial rewrite which the caller must discard; nothing of it may
/// be released.
pub fn rewrite(
    plan: &RedactionPlan,
    input: &[u8],
    now_unix: i64,
    out: &mut Vec<u8>,
    report: &mut RewriteReport,
) -> Result<(), RedactError> {
    let mut rw = Rewriter {
        plan,
        now: now_unix,
        report,
    };
    rw.message(plan.root, input, None, out, 0)
}

struct Rewriter<'a> {
    plan: &'a RedactionPlan,
    now: i64,
    report: &'a mut RewriteReport,
}

impl Rewriter<'_> {
    fn message(
        &mut self,
        id: MsgId,
        input: &[u8],
        inherited_updated_at: Option<i64>,
        out: &mut Vec<u8>,
        depth: u32,
    ) -> Result<(), RedactError> {
        if depth >= MAX_DEPTH {
            return Err(RedactError::TooDeep(MAX_DEPTH));
        }
        let Some(mp) = self.plan.messages.get(id as usize) else {
            return Ok(());
        };
        let updated_at = match (mp.freshness_scope, mp.updated_at) {
            (false, _) => None,
            (true, None) => inherited_updated_at,
            (true, Some(field)) => find_updated_at(input, field)?.or(inherited_updated_at),
        };
        // Kept fields are copied as runs of input: adjacent kept fields cost one copy.
        let mut run = 0..0;
        let mut pos = 0;
        while pos < input.len() {
            let start = pos;
            let (number, wire_type, after_tag) = read_tag(input, pos)?;
            let (payload_start, end) = value_end(input, after_tag, wire_type, number)?;
            pos = end;
            let Some(rule) = mp.rule(number) else {
                continue;
            }; // unknown to the schema: dropped
            check_wire_type(rule, wire_type)?;
            if let Some(max) = rule.max_age_secs {
                let fresh = updated_at.is_some_and(|u| {
                    self.now.saturating_sub(u) <= i64::try_from(max).unwrap_or(i64::MAX)
                });
                if !fresh {
                    self.report.withheld.push(rule.path_id);
                    continue;
                }
            }
            match &rule.action {
                FieldAction::Drop => {}
                FieldAction::Keep => {
                    check_content(rule, wire_type, &input[payload_start..end])?;
                    if run.end == start && !run.is_empty() {
                        run.end = end;
                    } else {
                        out.extend_from_slice(&input[run.clone()]);
                        run = start..end;
                    }
                }
                FieldAction::Message(child) => {
                    out.extend_from_slice(&input[run.clone()]);
                    run = 0..0;
                    self.nested(
                        *child,
                        &input[start..after_tag],
                        &input[payload_start..end],
                        updated_at,
                        out,
                        depth,
                    )?;
                }
                FieldAction::Transform(t) => {
                    out.extend_from_slice(&input[run.clone()]);
                    run = 0..0;
                    let value = &input[if wire_type == LEN {
                        payload_start
                    } else {
                        after_tag
                    }..end];
                    let written = if wire_type == LEN && rule.kind.packable() {
                        t.write_packed(number, rule.kind, value, out)?
                    } else {
                        t.write_field(number, rule.kind, value, self.now, out)?
                    };
                    if !written {
                        self.report.withheld.push(rule.path_id);
                    }
                }
            }
        }
        out.extend_from_slice(&input[run]);
        Ok(())
    }

    /// Rewrites a nested message in place in `out`: the length is reserved for the input's
    /// size, and the body moved only when the rewritten length needs fewer or more bytes.
    /// A nested message that ends up empty is left out entirely, so that the presence of a
    /// fully withheld message is not released either.
    fn nested(
        &mut self,
        child: MsgId,
        tag: &[u8],
        payload: &[u8],
        updated_at: Option<i64>,
        out: &mut Vec<u8>,
        depth: u32,
    ) -> Result<(), RedactError> {
        let field_start = out.len();
        out.extend_from_slice(tag);
        let len_pos = out.len();
        let reserved = varint_len(payload.len() as u64);
        out.resize(len_pos + reserved, 0);
        let body_start = out.len();
        self.message(child, payload, updated_at, out, depth + 1)?;
        let body_len = out.len() - body_start;
        if body_len == 0 {
            out.truncate(field_start);
            return Ok(());
        }
        let needed = varint_len(body_len as u64);
        if needed < reserved {
            out.copy_within(body_start.., len_pos + needed);
            out.truncate(len_pos + needed + body_len);
        } else if needed > reserved {
            out.resize(out.len() + (needed - reserved), 0);
            out.copy_within(body_start..body_start + body_len, len_pos + needed);
        }
        // The length goes into the reserved bytes without a temporary allocation.
        let mut v = body_len as u64;
        for byte in &mut out[len_pos..len_pos + needed] {
            #[allow(clippy::cast_possible_truncation)]
            {
                *byte = (v as u8 & 0x7f) | if v >= 0x80 { 0x80 } else { 0 };
            }
            v >>= 7;
        }
        Ok(())
    }
}

fn check_wire_type(rule: &FieldRule, wire_type: u8) -> Result<(), RedactError> {
    if wire_type == rule.wire_type() || (wire_type == LEN && rule.accepts_packed()) {
        Ok(())
    } else {
        Err(RedactError::WireTypeMismatch {
            field: rule.number,
            wire_type,
        })
    }
}

/// A kept value must be well-formed: the reader downstream trusts the gateway.
fn check_content(rule: &FieldRule, wire_type: u8, payload: &[u8]) -> Result<(), RedactError> {
    if wire_type != LEN {
        return Ok(());
    }
    match rule.kind {
        ScalarKind::String => {
            std::str::from_utf8(payload)
                .map_err(|_| RedactError::InvalidUtf8 { field: rule.number })?;
        }
        ScalarKind::Bytes | ScalarKind::Message => {}
        kind => {
            let ok = match kind.wire_type() {
                VARINT => {
                    let mut p = 0;
                    while p < payload.len() {
                        p = read_varint(payload, p)
                            .map_err(|_| RedactError::BadPacked { field: rule.number })?
                            .1;
                    }
                    true
                }
                crate::wire::I64 => payload.len().is_multiple_of(8),
                _ => payload.len().is_multiple_of(4),
            };
            if !ok {
                return Err(RedactError::BadPacked { field: rule.number });
            }
        }
    }
    Ok(())
}

/// The last value of the message's updated-at field (protobuf: the last one wins).
fn find_updated_at(input: &[u8], field: UpdatedAtField) -> Result<Option<i64>, RedactError> {
    let number = match field {
        UpdatedAtField::Timestamp(n) | UpdatedAtField::UnixSeconds(n) => n,
    };
    let mut found = None;
    let mut pos = 0;
    while pos < input.len() {
        let (n, wire_type, after_tag) = read_tag(input, pos)?;
        let (payload_start, end) = value_end(input, after_tag, wire_type, n)?;
        if n == number {
            found = match (field, wire_type) {
                (UpdatedAtField::UnixSeconds(_), VARINT) =>
                {
                    #[allow(clippy::cast_possible_wrap)]
                    Some(read_varint(input, after_tag)?.0 as i64)
                }
                (UpdatedAtField::Timestamp(_), LEN) => {
                    Some(timestamp_seconds(&input[payload_start..end])?)
                }
                _ => {
                    return Err(RedactError::WireTypeMismatch {
                        field: n,
                        wire_type,
                    });
                }
            };
        }
        pos = end;
    }
    Ok(found)
}

fn timestamp_seconds(msg: &[u8]) -> Result<i64, RedactError> {
    let mut secs = 0;
    let mut pos = 0;
    while pos < msg.len() {
        let (n, wire_type, after_tag) = read_tag(msg, pos)?;
        let (_, end) = value_end(msg, after_tag, wire_type, n)?;
        if n == 1 && wire_type == VARINT {
            #[allow(clippy::cast_possible_wrap)]
            {
                secs = read_varint(msg, after_tag)?.0 as i64;
            }
        }
        pos = end;
    }
    Ok(secs)
}
