//! Reading OTLP JSON input: JSON Lines as the Collector's `file` exporter writes them, or
//! documents spread over several lines (pretty-printed), with a bound on each document.
use std::io::{self, BufRead, Read};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ReadError, ReadErrorKind};
use crate::otlp::spans_of_document;
use crate::span::Span;

/// The default bound on one JSON document (one line of JSON Lines): 64 MiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// Reads Discreet's spans from OTLP JSON input.
#[derive(Debug, Clone)]
pub struct SpanReader {
    max_document_bytes: usize,
}

impl Default for SpanReader {
    fn default() -> Self {
        SpanReader {
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

impl SpanReader {
    /// A reader that refuses documents over `limit` bytes instead of allocating for them.
    #[must_use]
    pub fn with_max_document_bytes(limit: usize) -> Self {
        SpanReader {
            max_document_bytes: limit,
        }
    }

    /// Appends the Discreet spans in `input` (named `source` in errors) to `out`; other
    /// spans are skipped. Stops at the first document that cannot be read.
    pub fn read<R: BufRead>(
        &self,
        source: &str,
        mut input: R,
        out: &mut Vec<Span>,
    ) -> Result<(), ReadError> {
        let max = self.max_document_bytes;
        let fail = |line, kind| ReadError {
            input: source.to_owned(),
            line,
            kind,
        };
        let io = |line, e: io::Error| fail(line, ReadErrorKind::Io(e.to_string()));
        let mut newlines = 0;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let line = newlines + 1;
            let n = (&mut input)
                .take(max as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| io(line, e))?;
            if n == 0 {
                return Ok(());
            }
            if buf.ends_with(b"\n") {
                newlines += 1;
            } else if n > max {
                return Err(fail(line, ReadErrorKind::TooLong(max)));
            }
            let text = buf.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(&buf);
            if text.trim_ascii().is_empty() {
                continue;
            }
            let doc = match serde_json::from_slice::<Value>(text) {
                Ok(doc) => doc,
                Err(e) if e.is_eof() => {
                    // A document that goes on past this line: parse on from the input.
                    let mut tail = DocumentTail {
                        head: text,
                        input: &mut input,
                        budget: max.saturating_sub(text.len()),
                        newlines: 0,
                        over_budget: false,
                    };
                    let doc =
                        Value::deserialize(&mut serde_json::Deserializer::from_reader(&mut tail));
                    newlines += tail.newlines;
                    match doc {
                        Ok(doc) => doc,
                        Err(_) if tail.over_budget => {
                            return Err(fail(line, ReadErrorKind::TooLong(max)));
                        }
                        Err(e) if e.is_eof() => return Err(fail(line, ReadErrorKind::Incomplete)),
                        Err(e) if e.is_io() => {
                            return Err(fail(line, ReadErrorKind::Io(e.to_string())));
                        }
                        Err(e) => return Err(not_json(source, line, &e)),
                    }
                }
                Err(e) => return Err(not_json(source, line, &e)),
            };
            spans_of_document(&doc, source, line, out)?;
        }
    }
}

/// serde_json's message, with its position made absolute (`start` is the document's first
/// line) and its own "at line L column C" suffix moved into ours.
fn not_json(source: &str, start: usize, e: &serde_json::Error) -> ReadError {
    let message = e.to_string();
    let message = message
        .rfind(" at line ")
        .map_or(&*message, |at| &message[..at]);
    let line = start + e.line().saturating_sub(1);
    let within = if line == start {
        String::new()
    } else {
        format!(", in the document that starts on line {start}")
    };
    ReadError {
        input: source.to_owned(),
        line,
        kind: ReadErrorKind::NotJson(format!("{message} (column {}{within})", e.column())),
    }
}

/// The rest of a multi-line document: the line already read, then the input byte by byte
/// (serde_json asks for one byte at a time, so nothing after the document is consumed),
/// refusing to go past the document bound.
struct DocumentTail<'a, R> {
    head: &'a [u8],
    input: &'a mut R,
    budget: usize,
    newlines: usize,
    over_budget: bool,
}

impl<R: BufRead> Read for DocumentTail<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.head.is_empty() {
            return self.head.read(out);
        }
        let available = self.input.fill_buf()?;
        let n = available.len().min(out.len());
        if n > self.budget {
            self.over_budget = true;
            return Err(io::Error::other("document over the size limit"));
        }
        out[..n].copy_from_slice(&available[..n]);
        self.newlines += available[..n].iter().filter(|&&b| b == b'\n').count();
        self.budget -= n;
        self.input.consume(n);
        Ok(n)
    }
}
