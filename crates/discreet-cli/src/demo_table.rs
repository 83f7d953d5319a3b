//! The demo's side-by-side tables.
use discreet_schema::prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};

/// One purpose and the caller that declares it.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) purpose: String,
    pub(crate) caller: String,
    pub(crate) consent: bool,
}

/// What one call returned.
#[derive(Debug)]
pub(crate) enum Cell {
    /// The released profile, as (path, value) in schema order.
    Released(Vec<(String, String)>),
    /// The call's status.
    Refused(String),
}

const WIDTH: usize = 20;
const FIELD_WIDTH: usize = 32;

/// The released fields of an encoded `profile.v1.Profile`, flattened.
pub(crate) fn flatten(bytes: &[u8]) -> Vec<(String, String)> {
    let Ok(pool) = DescriptorPool::decode(discreet_proto::FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let Some(desc) = pool.get_message_by_name("profile.v1.Profile") else {
        return Vec::new();
    };
    let Ok(message) = DynamicMessage::decode(desc, bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&message, "", &mut out);
    out
}

fn walk(message: &DynamicMessage, prefix: &str, out: &mut Vec<(String, String)>) {
    for (field, value) in message.fields() {
        let path = format!("{prefix}{}", field.name());
        match value {
            Value::Message(m) if !is_timestamp(m) => walk(m, &format!("{path}."), out),
            Value::List(items) => {
                let shown: Vec<String> = items.iter().map(show).collect();
                out.push((path, shown.join(", ")));
            }
            Value::Map(entries) => out.push((path, format!("{} entries", entries.len()))),
            Value::EnumNumber(n) => {
                let name = field
                    .kind()
                    .as_enum()
                    .and_then(|e| e.get_value(*n))
                    .map_or_else(|| format!("#{n}"), |v| v.name().to_owned());
                out.push((path, name));
            }
            other => out.push((path, show(other))),
        }
    }
}

fn is_timestamp(m: &DynamicMessage) -> bool {
    m.descriptor().full_name() == "google.protobuf.Timestamp"
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Message(m) if is_timestamp(m) => {
            let secs = m
                .get_field_by_name("seconds")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let d = discreet_redact::date::CivilDate::from_unix(secs);
            format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
        }
        Value::Message(m) => format!("{{{} fields}}", m.fields().count()),
        Value::EnumNumber(n) => format!("#{n}"),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::F64(f) => format!("{f:.4}"),
        Value::F32(f) => format!("{f:.4}"),
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::List(items) => format!("{} items", items.len()),
        Value::Map(entries) => format!("{} entries", entries.len()),
    }
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn short(purpose: &str) -> &str {
    purpose.rsplit('.').next().unwrap_or(purpose)
}

/// Prints fields down, purposes across. With `only`, just those fields (or the
/// refusals).
pub(crate) fn print_grid(
    columns: &[Column],
    cells: &[Cell],
    only: Option<&[&str]>,
    order: &[String],
) {
    let mut header = format!("  {:<FIELD_WIDTH$}", "");
    let mut callers = format!("  {:<FIELD_WIDTH$}", "caller:");
    let mut bases = format!("  {:<FIELD_WIDTH$}", "legal basis:");
    for c in columns {
        header.push_str(&format!("{:<WIDTH$} ", clip(short(&c.purpose), WIDTH)));
        let basis = if c.consent {
            "consent"
        } else {
            "no consent needed"
        };
        callers.push_str(&format!("{:<WIDTH$} ", clip(&c.caller, WIDTH)));
        bases.push_str(&format!("{basis:<WIDTH$} "));
    }
    println!("{}", header.trim_end());
    if only.is_none() {
        println!("{}", callers.trim_end());
        println!("{}", bases.trim_end());
    }
    // Rows: every path any purpose received, in schema order of first appearance.
    let mut paths: Vec<String> = Vec::new();
    for cell in cells {
        if let Cell::Released(fields) = cell {
            for (p, _) in fields {
                if !paths.contains(p) {
                    paths.push(p.clone());
                }
            }
        }
    }
    // Schema order: by the first schema leaf at or below the path.
    let rank = |p: &String| {
        order
            .iter()
            .position(|o| o == p || o.starts_with(&format!("{p}.")))
            .unwrap_or(usize::MAX)
    };
    paths.sort_by_key(rank);
    if let Some(only) = only {
        paths = only.iter().map(|s| (*s).to_owned()).collect();
    }
    let refused = cells.iter().any(|c| matches!(c, Cell::Refused(_)));
    if refused {
        let mut row = format!("  {:<FIELD_WIDTH$}", "(call)");
        for cell in cells {
            let text = match cell {
                Cell::Released(_) => "ok".to_owned(),
                Cell::Refused(_) => "REFUSED".to_owned(),
            };
            row.push_str(&format!("{:<WIDTH$} ", clip(&text, WIDTH)));
        }
        println!("{}", row.trim_end());
    }
    for path in &paths {
        let mut row = format!("  {:<FIELD_WIDTH$}", clip(path, FIELD_WIDTH));
        for cell in cells {
            let text = match cell {
                Cell::Released(fields) => {
                    let under: Vec<&(String, String)> = fields
                        .iter()
                        .filter(|(p, _)| p == path || p.starts_with(&format!("{path}.")))
                        .collect();
                    match under.as_slice() {
                        [] => "-".to_owned(),
                        [(p, v)] if p == path => v.clone(),
                        many => format!("{} fields", many.len()),
                    }
                }
                Cell::Refused(_) => String::new(),
            };
            row.push_str(&format!("{:<WIDTH$} ", clip(&text, WIDTH)));
        }
        println!("{}", row.trim_end());
    }
    for (c, cell) in columns.iter().zip(cells) {
        if let Cell::Refused(status) = cell {
            println!("  {} refused: {status}", c.purpose);
        }
    }
    if only.is_none() {
        println!(
            "  (- withheld by the policy; full purpose names: {})",
            columns
                .iter()
                .map(|c| c.purpose.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
