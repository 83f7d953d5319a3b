//! Answers as aligned text, CSV or JSON, from one [`Table`] shape.
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for a terminal (the narrow set of columns).
    Table,
    /// A JSON array of objects (every column).
    Json,
    /// CSV with a header row (every column).
    Csv,
}

/// One cell of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Nothing recorded.
    Empty,
    /// A string.
    Text(String),
    /// A count or code.
    Int(i64),
    /// A list (field paths, categories, pseudonyms).
    List(Vec<String>),
}

impl Cell {
    /// A text cell, or [`Cell::Empty`] for `None`.
    #[must_use]
    pub fn opt(text: Option<&str>) -> Cell {
        text.map_or(Cell::Empty, |t| Cell::Text(t.to_owned()))
    }

    /// A count.
    #[must_use]
    pub fn count(n: usize) -> Cell {
        Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// A column: its name (snake_case, as in CSV headers and JSON keys) and whether the text
/// table shows it (CSV and JSON show every column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// snake_case name.
    pub name: &'static str,
    /// Shown in the text table.
    pub in_text: bool,
}

/// An answer: named columns, one row per item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// The table in `format`.
    #[must_use]
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.to_text(),
            Format::Csv => self.to_csv(),
            Format::Json => {
                let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
                s.push('\n');
                s
            }
        }
    }

    /// Aligned columns with an upper-case header; `-` for nothing recorded. Control
    /// characters (the trail is untrusted input) are replaced.
    #[must_use]
    pub fn to_text(&self) -> String {
        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].in_text)
            .collect();
        let header: Vec<String> = shown
            .iter()
            .map(|&i| self.columns[i].name.replace('_', " ").to_uppercase())
            .collect();
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                shown
                    .iter()
                    .map(|&i| row.get(i).map_or_else(String::new, text_cell))
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &body {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&body) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV, every column; lists joined with `;`. A text cell starting with `=`,
    /// `+`, `-`, `@`, tab or carriage return is prefixed with `'` so a spreadsheet does not
    /// run it as a formula.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| csv_field(c.name)).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|cell| match cell {
                    Cell::Empty => String::new(),
                    Cell::Int(n) => n.to_string(),
                    Cell::Text(t) => csv_field(t),
                    Cell::List(items) => csv_field(&items.join(";")),
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

/// A JSON array with one object per row, keys in column order; `null` for nothing
/// recorded, arrays for lists.
impl Serialize for Table {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut rows = s.serialize_seq(Some(self.rows.len()))?;
        for row in &self.rows {
            rows.serialize_element(&Row(&self.columns, row))?;
        }
        rows.end()
    }
}

struct Row<'a>(&'a [Column], &'a [Cell]);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut obj = s.serialize_map(Some(self.0.len()))?;
        for (col, cell) in self.0.iter().zip(self.1) {
            match cell {
                Cell::Empty => obj.serialize_entry(col.name, &())?,
                Cell::Text(t) => obj.serialize_entry(col.name, t)?,
                Cell::Int(n) => obj.serialize_entry(col.name, n)?,
                Cell::List(items) => obj.serialize_entry(col.name, items)?,
            }
        }
        obj.end()
    }
}

fn text_cell(cell: &Cell) -> String {
    let s = match cell {
        Cell::Empty => "-".to_owned(),
        Cell::Text(t) if t.is_empty() => "-".to_owned(),
        Cell::Text(t) => t.clone(),
        Cell::Int(n) => n.to_string(),
        Cell::List(items) if items.is_empty() => "-".to_owned(),
        Cell::List(items) => items.join(", "),
    };
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn csv_field(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r'])
        || guarded.starts_with(' ')
        || guarded.ends_with(' ')
    {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn table(rows: Vec<Vec<Cell>>) -> Table {
        Table {
            columns: vec![
                Column {
                    name: "name",
                    in_text: true,
                },
                Column {
                    name: "count",
                    in_text: true,
                },
                Column {
                    name: "paths",
                    in_text: false,
                },
            ],
            rows,
        }
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let t = table(vec![
            vec![
                text("plain"),
                Cell::Int(-1),
                Cell::List(vec!["a.b".into(), "c".into()]),
            ],
            vec![
                text("a,b"),
                Cell::Empty,
                Cell::List(vec!["say \"hi\"".into()]),
            ],
            vec![
                text("=HYPERLINK(\"x\")"),
                Cell::Int(2),
                Cell::List(vec!["-1+1".into()]),
            ],
            vec![
                text("+x"),
                Cell::Int(3),
                Cell::List(vec!["@SUM(A1)".into()]),
            ],
            vec![
                text("line\nbreak"),
                Cell::Int(4),
                Cell::List(vec![" padded ".into()]),
            ],
            vec![text("\tTAB"), Cell::Int(5), Cell::List(vec![])],
        ]);
        assert_eq!(
            t.to_csv(),
            "name,count,paths\n\
             plain,-1,a.b;c\n\
             \"a,b\",,\"say \"\"hi\"\"\"\n\
             \"'=HYPERLINK(\"\"x\"\")\",2,'-1+1\n\
             '+x,3,'@SUM(A1)\n\
             \"line\nbreak\",4,\" padded \"\n\
             '\tTAB,5,\n"
        );
    }

    #[test]
    fn text_aligns_the_narrow_columns_and_neutralises_control_characters() {
        let t = table(vec![
            vec![
                text("shop/recommender"),
                Cell::Int(3),
                Cell::List(vec!["hidden".into()]),
            ],
            vec![text("a\u{1b}[31m"), Cell::Empty, Cell::Empty],
            vec![text("é"), Cell::Int(10), Cell::Empty],
        ]);
        assert_eq!(
            t.to_text(),
            "NAME              COUNT\n\
             shop/recommender  3\n\
             a\u{FFFD}[31m            -\n\
             é                 10\n"
        );
    }

    #[test]
    fn json_keeps_types() {
        let t = table(vec![vec![
            text("x"),
            Cell::Empty,
            Cell::List(vec!["p".into()]),
        ]]);
        assert_eq!(
            t.render(Format::Json),
            "[\n  {\n    \"name\": \"x\",\n    \"count\": null,\n    \"paths\": [\n      \"p\"\n    ]\n  }\n]\n"
        );
    }
}
