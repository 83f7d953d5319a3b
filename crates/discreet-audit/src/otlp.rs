//! One OTLP/JSON `ExportTraceServiceRequest` to [`Span`]s.
//!
//! Lenient where exporters legitimately differ (integers as strings or numbers, enum names
//! or numbers, camelCase or the proto field names, the legacy
//! `instrumentationLibrarySpans`, missing optional fields); strict where it matters: only
//! Discreet's spans are kept, and one of them without the ids that tie a call together is
//! an error rather than an access silently lost.
use discreet_telemetry::attr;
use serde_json::{Map, Value};

use crate::error::{ReadError, ReadErrorKind};
use crate::span::{AttrValue, Attributes, Span, SpanEvent};

/// Appends the Discreet spans of one JSON document (a request, or an array of requests).
pub(crate) fn spans_of_document(
    doc: &Value,
    source: &str,
    line: usize,
    out: &mut Vec<Span>,
) -> Result<(), ReadError> {
    let fail = |why: String| ReadError {
        input: source.to_owned(),
        line,
        kind: ReadErrorKind::BadSpan(why),
    };
    let requests = match doc {
        Value::Array(items) => items.as_slice(),
        Value::Object(_) => std::slice::from_ref(doc),
        _ => return Err(fail("not an OTLP trace export (a JSON object)".into())),
    };
    for request in requests {
        for resource in list(request, "resourceSpans", "resource_spans") {
            let scopes = list(resource, "scopeSpans", "scope_spans").chain(list(
                resource,
                "instrumentationLibrarySpans",
                "instrumentation_library_spans",
            ));
            for scope in scopes {
                for span in list(scope, "spans", "spans") {
                    let name = field(span, "name", "name").and_then(Value::as_str);
                    if name == Some(attr::ACCESS_SPAN) || name == Some(attr::SUBJECTS_SPAN) {
                        out.push(read_span(span, source, line).map_err(fail)?);
                    }
                }
            }
        }
    }
    Ok(())
}

fn read_span(v: &Value, source: &str, line: usize) -> Result<Span, String> {
    let name = text(v, "name", "name");
    let id = |camel, snake| {
        let id = text(v, camel, snake).to_ascii_lowercase();
        if id.is_empty() {
            Err(format!("a {name} span without a {camel}"))
        } else {
            Ok(id)
        }
    };
    let status = field(v, "status", "status");
    Ok(Span {
        trace_id: id("traceId", "trace_id")?,
        span_id: id("spanId", "span_id")?,
        parent_span_id: text(v, "parentSpanId", "parent_span_id").to_ascii_lowercase(),
        kind: field(v, "kind", "kind").map_or(0, |k| enum_number(k, "SPAN_KIND_", SPAN_KINDS)),
        start_time_unix_nano: nanos(field(v, "startTimeUnixNano", "start_time_unix_nano")),
        end_time_unix_nano: nanos(field(v, "endTimeUnixNano", "end_time_unix_nano")),
        attributes: attributes(v),
        events: list(v, "events", "events")
            .map(|e| SpanEvent {
                time_unix_nano: nanos(field(e, "timeUnixNano", "time_unix_nano")),
                name: text(e, "name", "name"),
                attributes: attributes(e),
            })
            .collect(),
        status_code: status
            .and_then(|s| field(s, "code", "code"))
            .map_or(0, |c| enum_number(c, "STATUS_CODE_", STATUS_CODES)),
        status_message: status.map_or_else(String::new, |s| text(s, "message", "message")),
        source: source.to_owned(),
        line,
        name,
    })
}

const SPAN_KINDS: &[&str] = &[
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];
const STATUS_CODES: &[&str] = &["UNSET", "OK", "ERROR"];

/// An OTLP enum written as its number or its name (`SPAN_KIND_SERVER`); 0 if unknown.
fn enum_number(v: &Value, prefix: &str, names: &[&str]) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let s = s.strip_prefix(prefix).unwrap_or(s);
            names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(s))
                .map_or_else(|| s.parse().unwrap_or(0), |i| i as i64)
        }
        _ => 0,
    }
}

/// A `fixed64` time: a decimal string (the OTLP/JSON rule) or a number; 0 when absent.
fn nanos(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn attributes(v: &Value) -> Attributes {
    Attributes(
        list(v, "attributes", "attributes")
            .filter_map(|kv| {
                let key = field(kv, "key", "key")?.as_str()?;
                Some((
                    key.to_owned(),
                    field(kv, "value", "value").map_or(AttrValue::Other, any_value),
                ))
            })
            .collect(),
    )
}

/// An OTLP `AnyValue`. Nested arrays recurse, bounded by serde_json's nesting limit.
fn any_value(v: &Value) -> AttrValue {
    let Some(obj) = v.as_object() else {
        return AttrValue::Other;
    };
    let get = |camel: &str, snake: &str| obj.get(camel).or_else(|| obj.get(snake));
    if let Some(s) = get("stringValue", "string_value").and_then(Value::as_str) {
        AttrValue::String(s.to_owned())
    } else if let Some(i) = get("intValue", "int_value") {
        match i {
            Value::Number(n) => n.as_i64().map_or(AttrValue::Other, AttrValue::Int),
            Value::String(s) => s.trim().parse().map_or(AttrValue::Other, AttrValue::Int),
            _ => AttrValue::Other,
        }
    } else if let Some(d) = get("doubleValue", "double_value") {
        match d {
            Value::Number(n) => n.as_f64().map_or(AttrValue::Other, AttrValue::Double),
            Value::String(s) => s.trim().parse().map_or(AttrValue::Other, AttrValue::Double),
            _ => AttrValue::Other,
        }
    } else if let Some(b) = get("boolValue", "bool_value") {
        match b {
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::String(s) => s.parse().map_or(AttrValue::Other, AttrValue::Bool),
            _ => AttrValue::Other,
        }
    } else if let Some(a) = get("arrayValue", "array_value") {
        AttrValue::Array(list(a, "values", "values").map(any_value).collect())
    } else {
        AttrValue::Other
    }
}

/// A field by its OTLP/JSON (lowerCamelCase) name or its proto field name.
fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    let obj: &Map<String, Value> = v.as_object()?;
    obj.get(camel).or_else(|| obj.get(snake))
}

/// A string field, empty when absent or not a string.
fn text(v: &Value, camel: &str, snake: &str) -> String {
    field(v, camel, snake)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The elements of an array field; none when absent or not an array.
fn list<'a>(v: &'a Value, camel: &str, snake: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
    field(v, camel, snake)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
}
