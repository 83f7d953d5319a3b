//! Reading guard inputs and subject ids out of a message without rewriting it.
use crate::{
    RedactError,
    date::CivilDate,
    wire::{LEN, VARINT, read_tag, read_varint, value_end},
};

/// Every string at `path` (field numbers from the root; any step may be repeated), in
/// order of appearance. Used for subject ids, which a batch request repeats.
pub fn extract_strings<'a>(
    input: &'a [u8],
    path: &[u32],
    out: &mut Vec<&'a str>,
) -> Result<(), RedactError> {
    let Some((&first, rest)) = path.split_first() else {
        return Ok(());
    };
    let mut pos = 0;
    while pos < input.len() {
        let (n, wire_type, after_tag) = read_tag(input, pos)?;
        let (payload_start, end) = value_end(input, after_tag, wire_type, n)?;
        pos = end;
        if n != first {
            continue;
        }
        if wire_type != LEN {
            return Err(RedactError::WireTypeMismatch {
                field: n,
                wire_type,
            });
        }
        let payload = &input[payload_start..end];
        if rest.is_empty() {
            out.push(
                std::str::from_utf8(payload).map_err(|_| RedactError::InvalidUtf8 { field: n })?,
            );
        } else {
            extract_strings(payload, rest, out)?;
        }
    }
    Ok(())
}

/// The last string at `path`: a singular field's value under protobuf's last-one-wins
/// rule. Nested messages along the path are merged the same way.
pub fn last_string<'a>(input: &'a [u8], path: &[u32]) -> Result<Option<&'a str>, RedactError> {
    // Walks without collecting: this runs on every record that has a jurisdiction guard.
    let Some((&first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let mut found = None;
    let mut pos = 0;
    while pos < input.len() {
        let (n, wire_type, after_tag) = read_tag(input, pos)?;
        let (payload_start, end) = value_end(input, after_tag, wire_type, n)?;
        pos = end;
        if n != first {
            continue;
        }
        if wire_type != LEN {
            return Err(RedactError::WireTypeMismatch {
                field: n,
                wire_type,
            });
        }
        let payload = &input[payload_start..end];
        if rest.is_empty() {
            found = Some(
                std::str::from_utf8(payload).map_err(|_| RedactError::InvalidUtf8 { field: n })?,
            );
        } else if let Some(inner) = last_string(payload, rest)? {
            found = Some(inner);
        }
    }
    Ok(found)
}

/// The birth date at `path`: an ISO date string, or a message with int32 year (1),
/// month (2) and day (3). `None` when absent or not a valid date.
pub fn extract_birth_date(
    input: &[u8],
    path: &[u32],
    is_message: bool,
) -> Result<Option<CivilDate>, RedactError> {
    if !is_message {
        return Ok(last_string(input, path)?.and_then(CivilDate::parse));
    }
    let Some((&last, parents)) = path.split_last() else {
        return Ok(None);
    };
    let mut scope = Vec::new();
    if parents.is_empty() {
        scope.push(input);
    } else {
        collect_messages(input, parents, &mut scope)?;
    }
    let mut parts = [0i64; 3];
    let mut found = false;
    for msg in scope {
        let mut dates = Vec::new();
        collect_messages(msg, &[last], &mut dates)?;
        for date in dates {
            found = true;
            let mut pos = 0;
            while pos < date.len() {
                let (n, wire_type, after_tag) = read_tag(date, pos)?;
                let (_, end) = value_end(date, after_tag, wire_type, n)?;
                if (1..=3).contains(&n) && wire_type == VARINT {
                    #[allow(clippy::cast_possible_wrap)]
                    {
                        parts[n as usize - 1] = i64::from(read_varint(date, after_tag)?.0 as i32);
                    }
                }
                pos = end;
            }
        }
    }
    if !found {
        return Ok(None);
    }
    Ok(
        match (
            i32::try_from(parts[0]),
            u32::try_from(parts[1]),
            u32::try_from(parts[2]),
        ) {
            (Ok(y), Ok(m), Ok(d)) => CivilDate::new(y, m, d),
            _ => None,
        },
    )
}

fn collect_messages<'a>(
    input: &'a [u8],
    path: &[u32],
    out: &mut Vec<&'a [u8]>,
) -> Result<(), RedactError> {
    let Some((&first, rest)) = path.split_first() else {
        return Ok(());
    };
    let mut pos = 0;
    while pos < input.len() {
        let (n, wire_type, after_tag) = read_tag(input, pos)?;
        let (payload_start, end) = value_end(input, after_tag, wire_type, n)?;
        pos = end;
        if n == first && wire_type == LEN {
            if rest.is_empty() {
                out.push(&input[payload_start..end]);
            } else {
                collect_messages(&input[payload_start..end], rest, out)?;
            }
        }
    }
    Ok(())
}
