//! What a command prints: JSON as the CloudHSM CLI does
//! (`{"error_code": 0, "data": {...}}`), or tables for people.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::error::CliError;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `{"error_code": 0, "data": {...}}` on standard output; errors as
    /// `{"error_code": N, "error": {"kind": ..., "message": ...}}`, also on
    /// standard output.
    Json,
    /// Aligned `name  value` lines and column tables; errors on standard
    /// error.
    Table,
}

/// A command's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The `data` object of the JSON output.
    pub data: Value,
    /// Text for `--output table`, when a generic rendering of `data` would
    /// be poor.
    pub table: Option<String>,
}

impl Outcome {
    /// A result rendered generically in both formats.
    pub fn new(data: Value) -> Outcome {
        Outcome { data, table: None }
    }

    /// Uses `text` for `--output table`.
    pub fn with_table(mut self, text: String) -> Outcome {
        self.table = Some(text);
        self
    }
}

/// Prints a success.
pub fn print_success(format: Format, outcome: &Outcome) {
    match format {
        Format::Json => {
            let doc = json!({ "error_code": 0, "data": outcome.data });
            println!("{}", pretty(&doc));
        }
        Format::Table => {
            let text = match &outcome.table {
                Some(t) => t.clone(),
                None => render(&outcome.data),
            };
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
}

/// Prints a failure.
pub fn print_error(format: Format, error: &CliError) {
    match format {
        Format::Json => {
            let doc = json!({
                "error_code": error.class.exit_code(),
                "error": error.to_json(),
            });
            println!("{}", pretty(&doc));
        }
        Format::Table => {
            eprintln!("error ({}): {}", error.kind, error.message);
        }
    }
}

fn pretty(v: &Value) -> String {
    // Serialising a `Value` cannot fail: its map keys are strings.
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A generic human rendering: an object as aligned `name  value` lines
/// (nested objects with dotted names), each array of objects as a column
/// table under its name; an array of objects alone as a table.
pub fn render(v: &Value) -> String {
    match v {
        Value::Object(map) => render_object(map),
        Value::Array(items) if items.iter().all(Value::is_object) => render_rows(items),
        other => format!("{}\n", scalar(other)),
    }
}

fn render_object(map: &Map<String, Value>) -> String {
    let mut lines = Vec::new();
    let mut tables = Vec::new();
    flatten("", map, &mut lines, &mut tables);
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in &lines {
        let _ = writeln!(out, "{k:width$}  {v}");
    }
    for (name, items) in tables {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{name}:");
        if items.is_empty() {
            out.push_str("  (none)\n");
        } else {
            for line in render_rows(items).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

type Lines = Vec<(String, String)>;
type Tables<'a> = Vec<(String, &'a [Value])>;

fn flatten<'a>(
    prefix: &str,
    map: &'a Map<String, Value>,
    lines: &mut Lines,
    tables: &mut Tables<'a>,
) {
    for (k, v) in map {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten(&name, inner, lines, tables),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                tables.push((name, items.as_slice()));
            }
            other => lines.push((name, scalar(other))),
        }
    }
}

/// A column table of objects; nested values flattened into the cell.
fn render_rows(items: &[Value]) -> String {
    let mut columns: Vec<String> = Vec::new();
    let rows: Vec<Vec<(String, String)>> = items
        .iter()
        .map(|item| {
            let mut cells = Vec::new();
            if let Value::Object(map) = item {
                let mut tables = Vec::new();
                flatten("", map, &mut cells, &mut tables);
                for (name, nested) in tables {
                    cells.push((name, format!("{} entries", nested.len())));
                }
            }
            for (k, _) in &cells {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
            cells
        })
        .collect();
    let grid: Vec<Vec<String>> = rows
        .iter()
        .map(|cells| {
            columns
                .iter()
                .map(|c| {
                    cells
                        .iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| "-".into())
                })
                .collect()
        })
        .collect();
    table(&columns, &grid)
}

/// Aligned columns with a header line.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                format!("{c:w$}")
            })
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(header, &mut out);
    for row in rows {
        line(row, &mut out);
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(scalar).collect();
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_render_as_aligned_lines_and_tables() {
        let v = json!({
            "cluster-id": "ab",
            "leader": 1,
            "members": [
                {"node-id": 1, "address": "127.0.0.1:1", "voter": true},
                {"node-id": 2, "address": "127.0.0.1:2", "voter": false},
            ],
            "counts": {"keys": 3},
        });
        let text = render(&v);
        assert!(text.contains("cluster-id   ab\n"), "{text}");
        assert!(text.contains("counts.keys  3\n"), "{text}");
        assert!(
            text.contains("members:\n  node-id  address      voter\n"),
            "{text}"
        );
        assert!(text.contains("  2        127.0.0.1:2  false\n"), "{text}");
    }

    #[test]
    fn scalars_and_lists_render_plainly() {
        assert_eq!(render(&json!("done")), "done\n");
        let text = render(&json!({"shared-users": ["bob", "carol"], "none": null}));
        assert!(text.contains("bob, carol"), "{text}");
        assert!(text.contains("none          -"), "{text}");
    }
}
