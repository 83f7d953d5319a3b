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
    /// The released profile.
    Released(Released),
    /// The call's status.
    Refused(String),
}

/// A released profile and what the gateway said it withheld.
#[derive(Debug)]
pub(crate) struct Released {
    /// The profile, flattened by [`flatten`].
    pub(crate) fields: Vec<Leaf>,
    /// The paths of the `x-discreet-withheld-fields` trailer. A field is withheld only if
    /// they say so: proto3 does not send a zero, so a field generalised to 0.0 or a released
    /// empty string is as absent from the answer as a withheld one.
    pub(crate) withheld: Vec<String>,
    /// Whether the trailer lists every withheld path (the gateway cuts a long list with
    /// `...`); if not, a field absent from the answer is taken as withheld.
    pub(crate) complete: bool,
}

impl Released {
    /// `fields` with the withheld paths of `trailer` (the trailer's value; `None` when the
    /// gateway sent none, which it does when nothing was withheld).
    pub(crate) fn new(fields: Vec<Leaf>, trailer: Option<&str>) -> Released {
        let mut withheld: Vec<String> = trailer
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        let complete = withheld.last().is_none_or(|p| p != "...");
        withheld.retain(|p| p != "...");
        Released {
            fields,
            withheld,
            complete,
        }
    }

    /// Whether the trailer names `path` or a message above it.
    fn withholds(&self, path: &str) -> bool {
        self.withheld.iter().any(|w| is_at_or_below(path, w))
    }

    /// Whether the trailer names a field below `path` (a stale life event's `kind`).
    fn withholds_below(&self, path: &str) -> bool {
        self.withheld
            .iter()
            .any(|w| w != path && is_at_or_below(w, path))
    }
}

/// Whether `path` is `top` or a field inside it.
fn is_at_or_below(path: &str, top: &str) -> bool {
    path.strip_prefix(top)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// One field of a released profile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    pub(crate) path: String,
    pub(crate) value: String,
    /// Whether the answer carried it; `false` for a proto3 default (0, "", false, empty).
    pub(crate) set: bool,
}

const WIDTH: usize = 20;
const FIELD_WIDTH: usize = 32;

/// The fields of an encoded `profile.v1.Profile`, flattened: every field of each message
/// the answer carries, those it does not carry with their default value.
pub(crate) fn flatten(bytes: &[u8]) -> Vec<Leaf> {
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

fn walk(message: &DynamicMessage, prefix: &str, out: &mut Vec<Leaf>) {
    for field in message.descriptor().fields() {
        let path = format!("{prefix}{}", field.name());
        let set = message.has_field(&field);
        // A message the answer does not carry has no fields to show: not descended into.
        if !set && field.kind().as_message().is_some() && !field.is_list() && !field.is_map() {
            continue;
        }
        let value = message.get_field(&field);
        let value = match value.as_ref() {
            Value::Message(m) if !is_timestamp(m) => {
                walk(m, &format!("{path}."), out);
                continue;
            }
            Value::List(items) => items.iter().map(show).collect::<Vec<_>>().join(", "),
            Value::Map(entries) => format!("{} entries", entries.len()),
            Value::EnumNumber(n) => field
                .kind()
                .as_enum()
                .and_then(|e| e.get_value(*n))
                .map_or_else(|| format!("#{n}"), |v| v.name().to_owned()),
            other => show(other),
        };
        out.push(Leaf { path, value, set });
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

/// What `cell` shows for `path`: `-` where the gateway withheld it, else its value (a
/// default such as 0 or an empty string included).
fn cell_text(cell: &Cell, path: &str) -> String {
    let Cell::Released(released) = cell else {
        return String::new();
    };
    if released.withholds(path) {
        return "-".to_owned();
    }
    let under: Vec<&Leaf> = released
        .fields
        .iter()
        .filter(|l| is_at_or_below(&l.path, path))
        .collect();
    // Nothing carried here and the trailer names what was below: all of it was withheld.
    if !under.iter().any(|l| l.set) && released.withholds_below(path) {
        return "-".to_owned();
    }
    match under.as_slice() {
        [] if released.complete => String::new(),
        [] => "-".to_owned(),
        [leaf] if leaf.path == path => leaf.value.clone(),
        many => format!("{} fields", many.len()),
    }
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
    // Rows: every path any purpose received a value for, in schema order of first
    // appearance.
    let mut paths: Vec<String> = Vec::new();
    for cell in cells {
        if let Cell::Released(released) = cell {
            for leaf in released.fields.iter().filter(|l| l.set) {
                if !paths.contains(&leaf.path) {
                    paths.push(leaf.path.clone());
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
            row.push_str(&format!("{:<WIDTH$} ", clip(&cell_text(cell, path), WIDTH)));
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
            "  (- withheld by the policy, as the gateway's x-discreet-withheld-fields trailer says; full purpose names: {})",
            columns
                .iter()
                .map(|c| c.purpose.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use discreet_proto::profile::v1::{Contact, GeoPoint, Profile};
    use prost::Message;

    use super::*;

    fn released(profile: &Profile, trailer: Option<&str>) -> Cell {
        Cell::Released(Released::new(flatten(&profile.encode_to_vec()), trailer))
    }

    #[test]
    fn a_released_zero_is_shown_and_only_withheld_fields_are_dashes() {
        // analytics generalises the location to the country: 4.9 becomes 0.0, which proto3
        // leaves out of the answer just as it leaves out what is withheld.
        let profile = Profile {
            last_location: Some(GeoPoint {
                latitude: 50.0,
                longitude: 0.0,
            }),
            loyalty_points: 0,
            ..Profile::default()
        };
        let cell = released(&profile, Some("contact,national_id"));
        assert_eq!(cell_text(&cell, "last_location.latitude"), "50.0000");
        assert_eq!(cell_text(&cell, "last_location.longitude"), "0.0000");
        assert_eq!(cell_text(&cell, "loyalty_points"), "0");
        assert_eq!(cell_text(&cell, "contact.email"), "-");
        assert_eq!(cell_text(&cell, "national_id"), "-");
        assert_eq!(cell_text(&cell, "username"), "");
    }

    #[test]
    fn a_cut_trailer_leaves_absent_fields_withheld() {
        let profile = Profile {
            contact: Some(Contact {
                email: "ada@example.org".into(),
                ..Contact::default()
            }),
            ..Profile::default()
        };
        let cell = released(&profile, Some("national_id,..."));
        assert_eq!(cell_text(&cell, "contact.email"), "ada@example.org");
        assert_eq!(cell_text(&cell, "national_id"), "-");
        assert_eq!(cell_text(&cell, "last_location.longitude"), "-");
        // Nothing withheld: no trailer at all.
        let cell = released(&profile, None);
        assert_eq!(cell_text(&cell, "contact.phone"), "");
    }

    #[test]
    fn a_list_emptied_of_withheld_fields_is_withheld() {
        // Stale life events: the gateway withholds their fields and names them.
        let cell = released(
            &Profile::default(),
            Some("inferences.life_events.kind,inferences.life_events.detected_at.seconds"),
        );
        assert_eq!(cell_text(&cell, "inferences.life_events"), "-");
        assert_eq!(cell_text(&cell, "inferences.interests"), "");
    }
}
