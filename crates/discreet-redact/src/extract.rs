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
    for payload in occurrences(input, first) {
        let payload = payload?;
        if rest.is_empty() {
            out.push(utf8(payload, first)?);
        } else {
            extract_strings(payload, rest, out)?;
        }
    }
    Ok(())
}

/// The last string at `path`: a singular field's value under protobuf's last-one-wins
/// rule. Nested messages along the path are merged the same way. Collects nothing: this
/// runs on every record that has a jurisdiction guard.
pub fn last_string<'a>(input: &'a [u8], path: &[u32]) -> Result<Option<&'a str>, RedactError> {
    let Some((&first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let mut found = None;
    for payload in occurrences(input, first) {
        let payload = payload?;
        if rest.is_empty() {
            found = Some(utf8(payload, first)?);
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
    for payload in occurrences(input, first) {
        let payload = payload?;
        if rest.is_empty() {
            out.push(payload);
        } else {
            collect_messages(payload, rest, out)?;
        }
    }
    Ok(())
}

/// The payloads of every occurrence of field `number` in `input`, in order. A matching
/// field that is not length-delimited is malformed for every path we follow.
fn occurrences(input: &[u8], number: u32) -> impl Iterator<Item = Result<&[u8], RedactError>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < input.len() {
            let step = read_tag(input, pos).and_then(|(n, wire_type, after_tag)| {
                value_end(input, after_tag, wire_type, n)
                    .map(|(start, end)| (n, wire_type, start, end))
            });
            let (n, wire_type, start, end) = match step {
                Ok(v) => v,
                Err(e) => {
                    pos = input.len();
                    return Some(Err(e));
                }
            };
            pos = end;
            if n == number {
                return Some(if wire_type == LEN {
                    Ok(&input[start..end])
                } else {
                    Err(RedactError::WireTypeMismatch {
                        field: n,
                        wire_type,
                    })
                });
            }
        }
        None
    })
}

fn utf8(payload: &[u8], field: u32) -> Result<&str, RedactError> {
    std::str::from_utf8(payload).map_err(|_| RedactError::InvalidUtf8 { field })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::{write_len_field, write_tag, write_varint};

    fn msg(fields: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, payload) in fields {
            write_len_field(&mut out, *n, payload);
        }
        out
    }

    #[test]
    fn repeated_strings_in_order_and_the_last_singular_value_wins() {
        let batch = msg(&[(1, b"a"), (2, b"skip"), (1, b"b")]);
        let mut ids = Vec::new();
        extract_strings(&batch, &[1], &mut ids).unwrap();
        assert_eq!(ids, ["a", "b"]);
        // demographics (5) appears twice; the merged message's jurisdiction is the last one.
        let record = msg(&[
            (5, &msg(&[(6, b"DE")])),
            (5, &msg(&[(7, b"x")])),
            (5, &msg(&[(6, b"US-CA")])),
        ]);
        assert_eq!(last_string(&record, &[5, 6]).unwrap(), Some("US-CA"));
        assert_eq!(last_string(&record, &[9]).unwrap(), None);
    }

    #[test]
    fn malformed_paths_are_errors_not_absences() {
        let mut wrong_type = Vec::new();
        write_tag(&mut wrong_type, 1, VARINT);
        write_varint(&mut wrong_type, 7);
        assert!(matches!(
            last_string(&wrong_type, &[1]),
            Err(RedactError::WireTypeMismatch { field: 1, .. })
        ));
        assert_eq!(
            last_string(&msg(&[(1, &[0xff, 0xfe])]), &[1]),
            Err(RedactError::InvalidUtf8 { field: 1 })
        );
        let truncated = &msg(&[(1, b"abc")])[..3];
        assert!(last_string(truncated, &[1]).is_err());
    }

    #[test]
    fn birth_dates_from_strings_and_date_messages() {
        let record = msg(&[(5, &msg(&[(1, b"1990-04-12")]))]);
        assert_eq!(
            extract_birth_date(&record, &[5, 1], false).unwrap(),
            CivilDate::new(1990, 4, 12)
        );
        let mut date = Vec::new();
        for (n, v) in [(1, 1990u64), (2, 4), (3, 12)] {
            write_tag(&mut date, n, VARINT);
            write_varint(&mut date, v);
        }
        let record = msg(&[(5, &msg(&[(1, &date)]))]);
        assert_eq!(
            extract_birth_date(&record, &[5, 1], true).unwrap(),
            CivilDate::new(1990, 4, 12)
        );
        assert_eq!(
            extract_birth_date(&msg(&[(5, b"")]), &[5, 1], true).unwrap(),
            None
        );
    }
}
