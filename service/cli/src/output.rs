//! How results are printed: `-o table|wide|json|yaml|value` and `-c COLUMN`,
//! the same for every command. Views are JSON values; a column is a dotted
//! path into one (`location.rack`).

use serde_json::Value;

use crate::failure::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people (the noun's usual columns).
    Table,
    /// The same with more columns.
    Wide,
    Json,
    Yaml,
    /// Bare values, tab-separated, one object per line: for shell scripts.
    Value,
}

impl Format {
    pub const NAMES: [&'static str; 5] = ["table", "wide", "json", "yaml", "value"];

    pub fn parse(s: &str) -> Format {
        match s {
            "wide" => Format::Wide,
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            "value" => Format::Value,
            _ => Format::Table,
        }
    }
}

/// The output settings of one invocation.
#[derive(Debug, Clone)]
pub struct Output {
    pub format: Format,
    /// `-c`: only these columns (dotted paths), in this order.
    pub columns: Vec<String>,
}

/// The value at a dotted path (`bmc.address`, `interfaces.0.mac`).
pub fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A value as one table cell or one `value` field.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(|x| cell(Some(x))).collect::<Vec<_>>().join(",")
        }
        Some(v @ (Value::Array(_) | Value::Object(_))) => v.to_string(),
        Some(v) => v.to_string(),
    }
}

impl Output {
    /// Columns asked for with `-c`, checked against what the objects have: a
    /// column none of them has is a typo, and the error lists the fields.
    fn chosen(&self, items: &[&Value]) -> Result<Option<Vec<String>>, Failure> {
        if self.columns.is_empty() {
            return Ok(None);
        }
        if let Some(first) = items.first() {
            for c in &self.columns {
                if items.iter().all(|v| field(v, c).is_none()) {
                    let known = first.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "));
                    return Err(Failure::usage(format!(
                        "no column {c:?} in this output; columns are: {} (nested ones with dots, e.g. location.rack)",
                        known.unwrap_or_default()
                    )));
                }
            }
        }
        Ok(Some(self.columns.clone()))
    }

    /// Keep only the chosen columns of an object (for json/yaml with `-c`).
    fn project(v: &Value, cols: &[String]) -> Value {
        let mut m = serde_json::Map::new();
        for c in cols {
            m.insert(c.clone(), field(v, c).cloned().unwrap_or(Value::Null));
        }
        Value::Object(m)
    }

    /// Print a list of objects; `table`/`wide` are the noun's usual columns.
    pub fn list(&self, items: &[Value], table: &[&str], wide: &[&str]) -> Result<(), Failure> {
        let refs: Vec<&Value> = items.iter().collect();
        let chosen = self.chosen(&refs)?;
        let mut out = String::new();
        match self.format {
            Format::Json | Format::Yaml => {
                let v = match &chosen {
                    Some(c) => Value::Array(items.iter().map(|v| Self::project(v, c)).collect()),
                    None => Value::Array(items.to_vec()),
                };
                out = if self.format == Format::Json { pretty(&v) } else { yaml(&v) };
            }
            Format::Value => {
                let cols: Vec<String> = chosen.unwrap_or_else(|| table.iter().map(|s| s.to_string()).collect());
                for v in items {
                    let row: Vec<String> = cols.iter().map(|c| cell(field(v, c))).collect();
                    out.push_str(&row.join("\t"));
                    out.push('\n');
                }
            }
            Format::Table | Format::Wide => {
                let cols: Vec<String> = chosen.unwrap_or_else(|| {
                    let base = table.iter().map(|s| s.to_string());
                    if self.format == Format::Wide {
                        base.chain(wide.iter().map(|s| s.to_string())).collect()
                    } else {
                        base.collect()
                    }
                });
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|v| cols.iter().map(|c| clip(cell(field(v, c)), self.format == Format::Table)).collect())
                    .collect();
                out = aligned(&cols.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>(), &rows);
            }
        }
        print(&out)
    }

    /// Print one object: `table` as FIELD/VALUE lines.
    pub fn one(&self, v: &Value) -> Result<(), Failure> {
        let chosen = self.chosen(&[v])?;
        let out = match self.format {
            Format::Json => pretty(&chosen.map(|c| Self::project(v, &c)).unwrap_or_else(|| v.clone())),
            Format::Yaml => yaml(&chosen.map(|c| Self::project(v, &c)).unwrap_or_else(|| v.clone())),
            Format::Value => {
                let vals: Vec<String> = match &chosen {
                    Some(cols) => cols.iter().map(|c| cell(field(v, c))).collect(),
                    None => match v {
                        Value::Object(m) => m.values().map(|x| cell(Some(x))).collect(),
                        other => vec![cell(Some(other))],
                    },
                };
                format!("{}\n", vals.join("\t"))
            }
            Format::Table | Format::Wide => {
                let pairs: Vec<(String, String)> = match (&chosen, v) {
                    (Some(cols), _) => cols.iter().map(|c| (c.clone(), cell(field(v, c)))).collect(),
                    (None, Value::Object(m)) => m.iter().map(|(k, x)| (k.clone(), cell(Some(x)))).collect(),
                    (None, other) => vec![("value".into(), cell(Some(other)))],
                };
                let rows: Vec<Vec<String>> = pairs.into_iter().map(|(k, v)| vec![k, v]).collect();
                aligned(&["FIELD".to_string(), "VALUE".to_string()], &rows)
            }
        };
        print(&out)
    }
}

fn print(s: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    match o.write_all(s.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::other(format!("writing output: {e}"))),
        _ => Ok(()),
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Long cells are cut in `table` (not `wide`): a table stays readable.
fn clip(s: String, clip: bool) -> String {
    const MAX: usize = 48;
    let s = s.replace('\n', " ");
    if clip && s.chars().count() > MAX { format!("{}…", s.chars().take(MAX - 1).collect::<String>()) } else { s }
}

fn aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |r: &[String]| {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| if i + 1 == r.len() { c.clone() } else { format!("{c:<w$}", w = width[i]) })
            .collect();
        let mut l = cells.join("  ").trim_end().to_string();
        l.push('\n');
        l
    };
    let mut out = line(header);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// YAML (block style) of a JSON value. Strings that YAML could read as
/// something else (numbers, dates, booleans, `null`) are double-quoted with
/// JSON escapes, which YAML's double-quoted style reads the same way.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn map(m: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&string(k));
        out.push(':');
        nested(v, indent, out);
    }
}

fn seq(a: &[Value], indent: usize, out: &mut String) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match v {
            // The first key goes on the dash's line, the rest under it.
            Value::Object(m) if !m.is_empty() => {
                let mut inner = String::new();
                map(m, indent + 2, &mut inner);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            other => nested(other, indent, out),
        }
    }
}

/// What follows `key:` or `-`: a block on the next lines, or a scalar.
fn nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(m, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(a, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn string(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_./@+-".contains(c) || (c == ':' && !s.ends_with(':')))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { s.to_string() } else { Value::String(s.to_string()).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_quotes_what_yaml_would_read_as_another_type() {
        let v = json!({"name": "m-1", "n": "123", "on": "on", "at": "2026-12-03T10:00:00Z", "mac": "52:54:00:00:00:01",
                       "empty": [], "o": {}, "x": null, "list": [{"a": 1, "b": [true]}, "s p"], "path": "/v1/x"});
        let y = yaml(&v);
        assert!(y.contains("name: m-1\n"), "{y}");
        assert!(y.contains("\"n\": \"123\"\n"), "{y}");
        assert!(y.contains("\"on\": \"on\"\n"), "{y}");
        assert!(y.contains("at: \"2026-12-03T10:00:00Z\"\n"), "{y}");
        assert!(y.contains("mac: \"52:54:00:00:00:01\"\n"), "{y}");
        assert!(y.contains("empty: []\n") && y.contains("o: {}\n") && y.contains("x: null\n"), "{y}");
        assert!(y.contains("list:\n  - a: 1\n    b:\n      - true\n  - \"s p\"\n"), "{y}");
        assert!(y.contains("path: /v1/x\n"), "{y}");
    }

    #[test]
    fn cells_and_paths() {
        let v =
            json!({"location": {"rack": "r1"}, "traits": ["a", "b"], "interfaces": [{"mac": "x"}], "n": 3, "z": null});
        assert_eq!(cell(field(&v, "location.rack")), "r1");
        assert_eq!(cell(field(&v, "traits")), "a,b");
        assert_eq!(cell(field(&v, "interfaces.0.mac")), "x");
        assert_eq!(cell(field(&v, "interfaces")), r#"[{"mac":"x"}]"#);
        assert_eq!(cell(field(&v, "n")), "3");
        assert_eq!(cell(field(&v, "z")), "");
        assert_eq!(field(&v, "nope"), None);
        let t = aligned(&["ID".into(), "NAME".into()], &[vec!["1".into(), "alpha".into()]]);
        assert_eq!(t, "ID  NAME\n1   alpha\n");
    }
}
