//! Data tables: rows read once, at load, from a CSV file (a header row,
//! then rows) or a JSON array of objects, kept in one arena. A journey
//! instance takes one row of each table it reads, so every field it reads
//! comes from the same row (one account's user name and password).
//!
//! Only files inside the data directory can be read: the workload file's
//! own directory, or `DATA_DIR`. The path as written is relative and has
//! no `..` (checked in the model); here the file is resolved with every
//! symbolic link followed and must still lie inside the directory, and be
//! a regular file. A workload sent over the API (`PUT /workload`) has no
//! directory of its own: it reads data files only when `DATA_DIR` is set.
//!
//! Bounded: [`MAX_DATA_BYTES`] per file, [`MAX_ROWS`] rows,
//! [`MAX_COLUMNS`] columns, fields of at most `MAX_VALUE_BYTES` with no
//! control characters (a field may go into a header). Problems name the
//! data file's `line:column`. Values are never printed.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::Options;
use super::model::{DataDef, DataOrder, Model, Problem};
use super::template::{MAX_VALUE_BYTES, check_value};

/// Largest data file.
pub const MAX_DATA_BYTES: usize = 4 * 1024 * 1024;
/// Most rows of a table.
pub const MAX_ROWS: usize = 100_000;
/// Most columns of a table.
pub const MAX_COLUMNS: usize = 32;

/// A table's rows. `Debug` shows its shape, never a value.
#[derive(Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub order: DataOrder,
    columns: Vec<String>,
    /// Every field, row after row, one after the other.
    text: Vec<u8>,
    /// Where each field ends in `text`, and whether it is a JSON number.
    cells: Vec<(u32, bool)>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table({}: {} rows × {:?}, {})", self.name, self.rows(), self.columns, self.order.as_str())
    }
}

impl Table {
    pub fn rows(&self) -> usize {
        self.cells.len().checked_div(self.columns.len()).unwrap_or(0)
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The field at `row`, `column`, and whether it is a number.
    pub fn cell(&self, row: usize, column: usize) -> Option<(&[u8], bool)> {
        let i = row.checked_mul(self.columns.len())?.checked_add(column)?;
        let (end, number) = *self.cells.get(i)?;
        let start = if i == 0 { 0 } else { self.cells[i - 1].0 };
        Some((&self.text[start as usize..end as usize], number))
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.text.capacity() + self.cells.capacity() * std::mem::size_of::<(u32, bool)>()
    }
}

/// Why a data file cannot be used: a message that names the file and,
/// inside it, the place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError(pub String);

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The file `def.file` inside `dir`, resolved: every symbolic link
/// followed, and the result still inside `dir`.
pub fn resolve(dir: &Path, def: &DataDef) -> Result<PathBuf, DataError> {
    let fail = |why: String| DataError(format!("data file {:?} {why}", def.file));
    let base = dir
        .canonicalize()
        .map_err(|e| DataError(format!("the data directory {} cannot be used: {e}", dir.display())))?;
    let path = base.join(&def.file).canonicalize().map_err(|e| fail(format!("cannot be read: {e}")))?;
    if !path.starts_with(&base) {
        return Err(fail(format!(
            "leads outside the data directory {} (through a symbolic link); only files inside it are read",
            base.display()
        )));
    }
    let meta = std::fs::metadata(&path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file".to_string()));
    }
    Ok(path)
}

/// Reads `def`'s file from `dir` into a table.
pub fn read(dir: &Path, def: &DataDef) -> Result<Table, DataError> {
    let path = resolve(dir, def)?;
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_DATA_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| DataError(format!("data file {:?} cannot be read: {e}", def.file)))?;
    if bytes.len() > MAX_DATA_BYTES {
        return Err(DataError(format!("data file {:?} is larger than {MAX_DATA_BYTES} bytes (4 MiB)", def.file)));
    }
    let lower = def.file.to_ascii_lowercase();
    let parsed = if lower.ends_with(".csv") {
        parse_csv(&bytes)
    } else if lower.ends_with(".json") {
        parse_json(&bytes)
    } else {
        return Err(DataError(format!(
            "data file {:?} must be CSV (.csv, a header row first) or JSON (.json, an array of objects)",
            def.file
        )));
    };
    let mut table = parsed.map_err(|e| DataError(format!("{}:{e}", def.file)))?;
    if table.rows() == 0 {
        return Err(DataError(format!("data file {:?} has no rows", def.file)));
    }
    table.name = def.name.clone();
    table.order = def.order;
    Ok(table)
}

/// Reads every table of `model` from the options' data directory.
pub(crate) fn read_tables(model: &Model, options: &Options, problems: &mut Vec<Problem>) -> Vec<Arc<Table>> {
    let mut tables = Vec::new();
    for def in &model.data {
        let Some(dir) = options.data_dir.as_deref() else {
            problems.push(Problem::new(
                def.pos,
                "data files are read from the workload file's own directory, or from DATA_DIR; this workload has no directory (it came over the API): set DATA_DIR to read them",
            ));
            continue;
        };
        match read(dir, def) {
            Ok(table) => tables.push(Arc::new(table)),
            Err(e) => problems.push(Problem::new(def.file_pos, e.0)),
        }
    }
    tables
}

/// Builds a table a field at a time, with the bounds.
#[derive(Default)]
struct Builder {
    columns: Vec<String>,
    text: Vec<u8>,
    cells: Vec<(u32, bool)>,
}

impl Builder {
    fn column(&mut self, name: &str) -> Result<(), String> {
        let ok_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= 64;
        if !ok_name {
            return Err(format!(
                "column name {name:?} must be a letter or `_` followed by letters, digits or `_`, at most 64 long"
            ));
        }
        if self.columns.iter().any(|c| c == name) {
            return Err(format!("column `{name}` is given twice"));
        }
        if self.columns.len() == MAX_COLUMNS {
            return Err(format!("more than {MAX_COLUMNS} columns"));
        }
        self.columns.push(name.to_string());
        Ok(())
    }

    /// Rows complete so far.
    fn rows(&self) -> usize {
        self.cells.len().checked_div(self.columns.len()).unwrap_or(0)
    }

    fn field(&mut self, value: &[u8], number: bool) -> Result<(), String> {
        if self.cells.len().is_multiple_of(self.columns.len().max(1)) && self.rows() == MAX_ROWS {
            return Err(format!("more than {MAX_ROWS} rows"));
        }
        let text = std::str::from_utf8(value).map_err(|_| "a field is not UTF-8 text".to_string())?;
        if text.len() > MAX_VALUE_BYTES {
            return Err(format!("a field is longer than {MAX_VALUE_BYTES} bytes"));
        }
        check_value(text).map_err(|e| format!("a field {e}"))?;
        self.text.extend_from_slice(value);
        let end = u32::try_from(self.text.len()).map_err(|_| "the file is too large".to_string())?;
        self.cells.push((end, number));
        Ok(())
    }

    fn finish(self) -> Table {
        Table {
            name: String::new(),
            order: DataOrder::Sequential,
            columns: self.columns,
            text: self.text,
            cells: self.cells,
        }
    }
}

/// RFC 4180: fields separated by `,`, rows by LF or CRLF, a field in
/// double quotes may hold `,` and `""` (a quote); the first row names the
/// columns. Empty lines are skipped. Errors are `line:column: message`.
fn parse_csv(bytes: &[u8]) -> Result<Table, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut builder = Builder::default();
    let mut line = 1usize;
    let mut line_start = 0usize;
    let mut at = 0usize;
    let mut field = Vec::new();
    let mut row: Vec<(Vec<u8>, usize)> = Vec::new();
    let place = |line: usize, col: usize, message: String| format!("{line}:{col}: {message}");
    while at <= bytes.len() {
        let field_col = at - line_start + 1;
        field.clear();
        // One field.
        if bytes.get(at) == Some(&b'"') {
            at += 1;
            loop {
                match bytes.get(at) {
                    None => return Err(place(line, field_col, "a quoted field does not close".into())),
                    Some(b'"') if bytes.get(at + 1) == Some(&b'"') => {
                        field.push(b'"');
                        at += 2;
                    }
                    Some(b'"') => {
                        at += 1;
                        break;
                    }
                    Some(b) => {
                        if *b == b'\n' {
                            return Err(place(line, field_col, "a field holds a line break".into()));
                        }
                        field.push(*b);
                        at += 1;
                    }
                }
                if field.len() > MAX_VALUE_BYTES {
                    return Err(place(line, field_col, format!("a field is longer than {MAX_VALUE_BYTES} bytes")));
                }
            }
            if !matches!(bytes.get(at), None | Some(b',' | b'\n' | b'\r')) {
                return Err(place(line, at - line_start + 1, "text after a quoted field's closing quote".into()));
            }
        } else {
            while let Some(b) = bytes.get(at).filter(|b| !matches!(b, b',' | b'\n' | b'\r')) {
                if *b == b'"' {
                    return Err(place(line, at - line_start + 1, "a quote inside an unquoted field".into()));
                }
                field.push(*b);
                at += 1;
                if field.len() > MAX_VALUE_BYTES {
                    return Err(place(line, field_col, format!("a field is longer than {MAX_VALUE_BYTES} bytes")));
                }
            }
        }
        row.push((std::mem::take(&mut field), field_col));
        match bytes.get(at) {
            Some(b',') => {
                at += 1;
                continue;
            }
            Some(b'\r') if bytes.get(at + 1) == Some(&b'\n') => at += 2,
            Some(b'\r') => return Err(place(line, at - line_start + 1, "a lone CR; end lines with LF or CRLF".into())),
            Some(_) => at += 1,
            None => at += 1,
        }
        // A row is complete.
        let blank = row.len() == 1 && row[0].0.is_empty();
        if !blank {
            if builder.columns.is_empty() {
                for (name, col) in &row {
                    let name = String::from_utf8_lossy(name);
                    builder.column(name.trim()).map_err(|e| place(line, *col, e))?;
                }
            } else {
                if row.len() != builder.columns.len() {
                    return Err(place(
                        line,
                        1,
                        format!("{} fields where the header names {} columns", row.len(), builder.columns.len()),
                    ));
                }
                for (value, col) in &row {
                    builder.field(value, false).map_err(|e| place(line, *col, e))?;
                }
            }
        }
        row.clear();
        line += 1;
        line_start = at;
    }
    if builder.columns.is_empty() {
        return Err(place(1, 1, "no header row: the first row names the columns".into()));
    }
    Ok(builder.finish())
}

/// A JSON array of objects whose values are strings or numbers (kept as
/// written); every object has the first one's keys. Errors carry
/// serde_json's `line:column`.
fn parse_json(bytes: &[u8]) -> Result<Table, String> {
    let mut builder = Builder::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = Rows(&mut builder).deserialize(&mut de).and_then(|()| de.end());
    match result {
        Ok(()) => Ok(builder.finish()),
        Err(e) => {
            let message = e.to_string();
            // serde_json ends its messages with " at line L column C".
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            Err(format!("{}:{}: {message}", e.line(), e.column().max(1)))
        }
    }
}

struct Rows<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects, one per row")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Row(self.0))?.is_some() {}
        Ok(())
    }
}

struct Row<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings and numbers (one row)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let builder = self.0;
        let first = builder.columns.is_empty();
        if !first && builder.rows() == MAX_ROWS {
            return Err(de::Error::custom(format!("more than {MAX_ROWS} rows")));
        }
        let mut values: Vec<Option<(Vec<u8>, bool)>> = vec![None; builder.columns.len()];
        while let Some(key) = map.next_key::<String>()? {
            let raw: &RawValue = map.next_value()?;
            let text = raw.get();
            let value = match text.as_bytes().first() {
                Some(b'"') => {
                    let s: String = serde_json::from_str(text).map_err(de::Error::custom)?;
                    (s.into_bytes(), false)
                }
                Some(b'-' | b'0'..=b'9') => (text.as_bytes().to_vec(), true),
                _ => return Err(de::Error::custom(format!("`{key}` must be a string or a number"))),
            };
            if first {
                builder.column(&key).map_err(de::Error::custom)?;
                values.push(Some(value));
                continue;
            }
            let Some(i) = builder.columns.iter().position(|c| *c == key) else {
                return Err(de::Error::custom(format!(
                    "`{key}` is not a column of the first row ({})",
                    builder.columns.join(", ")
                )));
            };
            if values[i].replace(value).is_some() {
                return Err(de::Error::custom(format!("`{key}` is given twice")));
            }
        }
        if first && values.is_empty() {
            return Err(de::Error::custom("the first row has no fields"));
        }
        for (i, value) in values.into_iter().enumerate() {
            let Some((value, number)) = value else {
                return Err(de::Error::custom(format!("this row has no `{}`", builder.columns[i])));
            };
            builder.field(&value, number).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Table, String> {
        parse_csv(text.as_bytes())
    }

    fn cell(t: &Table, row: usize, col: &str) -> String {
        let (bytes, _) = t.cell(row, t.column(col).unwrap()).unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn csv_rows_with_quotes_and_crlf() {
        let t = csv("username,password\r\nann,\"pa,ss\"\r\n\"b\"\"ob\",x\r\n\r\n").unwrap();
        assert_eq!(t.rows(), 2);
        assert_eq!(t.columns(), ["username", "password"]);
        assert_eq!(cell(&t, 0, "password"), "pa,ss");
        assert_eq!(cell(&t, 1, "username"), "b\"ob");
        let t = csv("a\n1\n2").unwrap();
        assert_eq!((t.rows(), cell(&t, 1, "a")), (2, "2".to_string()), "no line break at the end");
        let t = csv("a,b\n,\n").unwrap();
        assert_eq!(cell(&t, 0, "b"), "", "empty fields are fields");
    }

    #[test]
    fn csv_problems_name_line_and_column() {
        for (text, expected) in [
            ("a,b\n1\n", "2:1: 1 fields where the header names 2 columns"),
            ("a,b\n1,\"x", "2:3: a quoted field does not close"),
            ("a,b\n1,\"x\n", "2:3: a field holds a line break"),
            ("a,b\n1,x\"y\n", "2:4: a quote inside an unquoted field"),
            ("a,a\n1,2\n", "1:3: column `a` is given twice"),
            ("a b\n1\n", "1:1: column name \"a b\""),
            ("a\n\"x\"y\n", "2:4: text after"),
            ("a\n1\r2\n", "2:2: a lone CR"),
            ("a\n\"x\ny\"\n", "2:1: a field holds a line break"),
            ("", "1:1: no header row"),
        ] {
            let e = csv(text).expect_err(text);
            assert!(e.starts_with(expected), "{text:?}: {e}");
        }
        let long = format!("a\n{}\n", "x".repeat(MAX_VALUE_BYTES + 1));
        assert!(csv(&long).unwrap_err().starts_with("2:1: a field is longer than 256"));
        assert!(csv("a\n\u{7}\n").unwrap_err().contains("control character"));
        let many: String = std::iter::once("a\n".to_string()).chain((0..=MAX_ROWS).map(|i| format!("{i}\n"))).collect();
        assert!(csv(&many).unwrap_err().contains("more than 100000 rows"));
    }

    #[test]
    fn json_rows_keep_numbers_as_written() {
        let t = parse_json(br#"[{"user":"ann","id":18446744073709551616},{"id":2,"user":"b\u006fb"}]"#).unwrap();
        assert_eq!(t.rows(), 2);
        assert_eq!(t.cell(0, 1), Some((&b"18446744073709551616"[..], true)));
        assert_eq!(cell(&t, 1, "user"), "bob");
        for (text, expected) in [
            (r#"[{"a":1},{"b":2}]"#, "1:16: `b` is not a column"),
            (r#"[{"a":1},{}]"#, "1:11: this row has no `a`"),
            (r#"[{"a":true}]"#, "1:11: `a` must be a string or a number"),
            (r#"{"a":1}"#, "1:1: invalid type"),
            (r#"[{"a":1}"#, "1:8: EOF"),
            (r#"[{"a":1},{"a":2,"a":3}]"#, "1:22: `a` is given twice"),
        ] {
            let e = parse_json(text.as_bytes()).expect_err(text);
            assert!(e.starts_with(expected), "{text}: {e}");
        }
    }

    #[test]
    fn values_never_show_in_debug_output() {
        let t = csv("password\ns3cret\n").unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn only_files_inside_the_directory_are_read() {
        let dir = std::env::temp_dir().join(format!("trafficgen-data-{}", std::process::id()));
        let inside = dir.join("inside");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("ok.csv"), "a\n1\n").unwrap();
        std::fs::write(dir.join("secret.csv"), "a\nsecret\n").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret.csv"), inside.join("link.csv"));
        let def = |file: &str| DataDef {
            name: "t".into(),
            file: file.into(),
            order: DataOrder::Unique,
            pos: Default::default(),
            file_pos: Default::default(),
        };
        let table = read(&inside, &def("ok.csv")).unwrap();
        assert_eq!((table.rows(), table.order), (1, DataOrder::Unique));
        let out = read(&inside, &def("link.csv")).unwrap_err().0;
        assert!(out.contains("leads outside the data directory"), "{out}");
        assert!(read(&inside, &def("missing.csv")).unwrap_err().0.contains("cannot be read"));
        assert!(read(&inside, &def(".")).unwrap_err().0.contains("not a regular file"));
        std::fs::write(inside.join("x.txt"), "a\n1\n").unwrap();
        assert!(read(&inside, &def("x.txt")).unwrap_err().0.contains("must be CSV"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
