//! Spans as read from OTLP, before they mean anything: names, ids, times and attributes.

/// An attribute value (OTLP `AnyValue`), whatever encoding the exporter chose.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `stringValue`.
    String(String),
    /// `intValue`, written as a JSON number or a decimal string.
    Int(i64),
    /// `doubleValue`.
    Double(f64),
    /// `boolValue`.
    Bool(bool),
    /// `arrayValue.values`.
    Array(Vec<AttrValue>),
    /// Anything else (`kvlistValue`, `bytesValue`, an empty value): kept as unreadable so
    /// that a query does not take it for absent.
    Other,
}

/// A span's or an event's attributes, in the order the exporter wrote them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(pub Vec<(String, AttrValue)>);

impl Attributes {
    /// The first value under `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string attribute (an integer or boolean written where a string was expected is
    /// shown as written: the value is the exporter's, not ours to drop).
    #[must_use]
    pub fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            AttrValue::String(s) => Some(s.clone()),
            AttrValue::Int(i) => Some(i.to_string()),
            AttrValue::Bool(b) => Some(b.to_string()),
            AttrValue::Double(_) | AttrValue::Array(_) | AttrValue::Other => None,
        }
    }

    /// An integer attribute (also from a string of digits, as some exporters write it).
    #[must_use]
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            AttrValue::Int(i) => Some(*i),
            AttrValue::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean attribute (also from `"true"`/`"false"`).
    #[must_use]
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            AttrValue::Bool(b) => Some(*b),
            AttrValue::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// A string-array attribute; a lone string counts as a one-element list.
    #[must_use]
    pub fn strings(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(AttrValue::Array(items)) => items
                .iter()
                .filter_map(|v| match v {
                    AttrValue::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            Some(AttrValue::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }
}

/// One event of a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanEvent {
    /// Unix nanoseconds (0 when the exporter wrote none).
    pub time_unix_nano: u64,
    /// The event's name.
    pub name: String,
    /// Its attributes.
    pub attributes: Attributes,
}

/// One span, with where it was read from (for error messages and provenance).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    /// 32 hex digits, lowercased.
    pub trace_id: String,
    /// 16 hex digits, lowercased.
    pub span_id: String,
    /// The parent's span id, empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// OTLP span kind as its number (2 is SERVER), 0 when unspecified or unknown.
    pub kind: i64,
    /// Unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// Unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// The span's attributes.
    pub attributes: Attributes,
    /// The span's events, in the order written.
    pub events: Vec<SpanEvent>,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i64,
    /// The status message, if any.
    pub status_message: String,
    /// The input it came from (a file name, or `<stdin>`).
    pub source: String,
    /// The line (1-based) of the document that held it.
    pub line: usize,
}
