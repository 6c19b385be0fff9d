//! The document as a small tree of our own, read from JSON (serde_json) or
//! YAML (the workload's saphyr-based reader) under a node budget, so a
//! hostile document costs memory in proportion to a fixed bound, not to
//! whatever `serde_json::Value` or a YAML tree would make of it; and
//! `$ref`s resolved inside the document only.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::workload::yaml::{self, NodeKind, Plain};

/// Most values (every scalar, list, mapping and key counts one) a document
/// may hold: a large real API description (Stripe's, ~6 MB) has well under
/// half a million.
pub const MAX_NODES: usize = 1 << 20;

/// Longest chain of `$ref`s to `$ref`s followed before giving up.
const MAX_REF_HOPS: usize = 32;

/// A JSON value. Objects keep their order (paths are written in document
/// order) and look keys up by binary search once they are large.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// As the document writes it (JSON number syntax).
    Number(Box<str>),
    String(Box<str>),
    Array(Box<[Value]>),
    Object(Box<Object>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    entries: Box<[(Box<str>, Value)]>,
    /// Entry indexes sorted by key, for objects with many entries.
    sorted: Option<Box<[u32]>>,
}

/// Objects with more entries than this get a sorted index.
const LINEAR_LOOKUP: usize = 12;

impl Object {
    fn new(entries: Vec<(Box<str>, Value)>) -> Object {
        let sorted = (entries.len() > LINEAR_LOOKUP).then(|| {
            let mut index: Vec<u32> = (0..entries.len() as u32).collect();
            // Stable: of duplicate keys, the first written is found first.
            index.sort_by(|a, b| entries[*a as usize].0.cmp(&entries[*b as usize].0));
            index.into_boxed_slice()
        });
        Object { entries: entries.into_boxed_slice(), sorted }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.sorted {
            None => self.entries.iter().find(|(k, _)| &**k == key).map(|(_, v)| v),
            Some(index) => {
                let at = index.partition_point(|i| &*self.entries[*i as usize].0 < key);
                index.get(at).map(|i| &self.entries[*i as usize]).filter(|(k, _)| &**k == key).map(|(_, v)| v)
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_true(&self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool) == Some(true)
    }
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(o) => o.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.parse().ok().filter(|f: &f64| f.is_finite()),
            _ => None,
        }
    }

    /// A key's string value.
    pub fn str_at(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn is_true(&self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool) == Some(true)
    }

    /// What kind of value this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        }
    }
}

/// Why a text is not a document we can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError(pub String);

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads JSON (the text starts with `{`) or YAML.
pub fn read(text: &str) -> Result<Value, ReadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') { read_json(text) } else { read_yaml(text) }
}

fn read_json(text: &str) -> Result<Value, ReadError> {
    let budget = Cell::new(MAX_NODES);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Builder { budget: &budget }
        .deserialize(&mut deserializer)
        .and_then(|v| deserializer.end().map(|()| v))
        .map_err(|e| ReadError(format!("not valid JSON: {e}")))?;
    Ok(value)
}

/// Counts one node against the budget.
fn spend<E: de::Error>(budget: &Cell<usize>) -> Result<(), E> {
    let left = budget.get();
    if left == 0 {
        return Err(E::custom(format!("more than {MAX_NODES} values; an API description is much smaller")));
    }
    budget.set(left - 1);
    Ok(())
}

/// Builds a [`Value`] straight from serde_json's events, counting nodes.
/// serde_json's own recursion limit (128) bounds the nesting.
#[derive(Clone, Copy)]
struct Builder<'b> {
    budget: &'b Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for Builder<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Builder<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        spend(self.budget)?;
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        spend(self.budget)?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        spend(self.budget)?;
        Ok(Value::Number(n.to_string().into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        spend(self.budget)?;
        Ok(Value::Number(n.to_string().into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        spend(self.budget)?;
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, |n| Value::Number(n.to_string().into())))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        spend(self.budget)?;
        Ok(Value::String(s.into()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        spend(self.budget)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items.into_boxed_slice()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        spend(self.budget)?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            spend(self.budget)?;
            let value = map.next_value_seed(self)?;
            entries.push((key.into_boxed_str(), value));
        }
        Ok(Value::Object(Box::new(Object::new(entries))))
    }
}

fn read_yaml(text: &str) -> Result<Value, ReadError> {
    // The YAML tree costs more per node than ours: count the events first,
    // in constant memory, so a document of a million tiny items is refused
    // before any tree is built.
    let mut events = 0usize;
    for event in saphyr_parser::Parser::new_from_str(text) {
        if event.is_err() {
            break; // the parse below reports it, with its place
        }
        events += 1;
        if events > MAX_NODES + 8 {
            return Err(ReadError(format!("more than {MAX_NODES} values; an API description is much smaller")));
        }
    }
    let root = yaml::parse(text).map_err(|e| ReadError(format!("not valid YAML at {}: {}", e.pos, e.message)))?;
    from_yaml(&root)
}

fn from_yaml(node: &yaml::Node) -> Result<Value, ReadError> {
    Ok(match &node.kind {
        NodeKind::Seq(items) => Value::Array(items.iter().map(from_yaml).collect::<Result<Vec<_>, _>>()?.into()),
        NodeKind::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let Some(key_text) = key.scalar() else {
                    return Err(ReadError(format!("{}: a mapping key must be text", key.pos)));
                };
                out.push((key_text.into(), from_yaml(value)?));
            }
            Value::Object(Box::new(Object::new(out)))
        }
        NodeKind::Scalar { .. } => match node.typed() {
            Some(Plain::Null) | None => Value::Null,
            Some(Plain::Bool(b)) => Value::Bool(b),
            Some(Plain::Int(n)) => Value::Number(n.to_string().into()),
            Some(Plain::Float(f)) => {
                serde_json::Number::from_f64(f).map_or(Value::Null, |n| Value::Number(n.to_string().into()))
            }
            Some(Plain::Str(s)) => Value::String(s.into()),
        },
    })
}

/// A JSON pointer token written into a pointer: `~` as `~0`, `/` as `~1`.
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Why a `$ref` cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    /// Another file or a URL: never fetched.
    External(String),
    /// Points at nothing in this document.
    Missing(String),
    /// `$ref`s pointing at `$ref`s for too long (or in a circle).
    TooLong(String),
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefError::External(r) => {
                write!(f, "$ref `{}` points outside this document; external references are not fetched", short(r))
            }
            RefError::Missing(r) => write!(f, "$ref `{}` points at nothing in this document", short(r)),
            RefError::TooLong(r) => {
                write!(f, "$ref `{}` leads to more than {MAX_REF_HOPS} $refs in a row (a circle?)", short(r))
            }
        }
    }
}

/// At most 80 characters of a text quoted in a message.
pub fn short(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(80)
        .map(|c| if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') { ' ' } else { c })
        .collect::<String>();
    if text.chars().nth(80).is_some() {
        out.push('…');
    }
    out
}

/// The value a local reference (`#/components/schemas/User`) points at.
pub fn pointer<'d>(root: &'d Value, reference: &str) -> Result<&'d Value, RefError> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Err(RefError::External(reference.to_string()));
    };
    let fragment = percent_decode(fragment).ok_or_else(|| RefError::Missing(reference.to_string()))?;
    if fragment.is_empty() {
        return Ok(root);
    }
    let Some(path) = fragment.strip_prefix('/') else { return Err(RefError::Missing(reference.to_string())) };
    let mut at = root;
    for token in path.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        at = match at {
            Value::Object(o) => o.get(&token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| RefError::Missing(reference.to_string()))?;
    }
    Ok(at)
}

/// `value` itself, or what its `$ref` (and theirs) point at; `via` gets
/// the last reference followed (for cycle checks and messages).
pub fn follow<'d>(root: &'d Value, value: &'d Value) -> Result<(&'d Value, Option<&'d str>), RefError> {
    let mut at = value;
    let mut last = None;
    for _ in 0..=MAX_REF_HOPS {
        match at.str_at("$ref") {
            Some(reference) => {
                last = Some(reference);
                at = pointer(root, reference)?;
            }
            None => return Ok((at, last)),
        }
    }
    Err(RefError::TooLong(last.unwrap_or_default().to_string()))
}

/// `%XX` escapes decoded (a reference is a URI fragment); `None` if that
/// is not UTF-8 or an escape is broken.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_read_to_the_same_tree() {
        let json = read(r#"{"a": [1, 2.5, "x", null, true], "b": {"c": "d"}}"#).unwrap();
        let yaml = read("a: [1, 2.5, x, null, true]\nb:\n  c: d\n").unwrap();
        assert_eq!(json, yaml);
        assert_eq!(json.get("b").unwrap().str_at("c"), Some("d"));
        assert_eq!(json.get("a").unwrap().as_array().unwrap()[1].as_f64(), Some(2.5));
    }

    #[test]
    fn large_objects_find_keys_by_search_and_keep_their_order() {
        let entries: Vec<String> = (0..100).rev().map(|i| format!("\"k{i}\": {i}")).collect();
        let doc = read(&format!("{{{}}}", entries.join(","))).unwrap();
        let object = doc.as_object().unwrap();
        assert_eq!(object.iter().next().unwrap().0, "k99");
        for i in 0..100 {
            assert_eq!(object.get(&format!("k{i}")), Some(&Value::Number(i.to_string().into())));
        }
        assert_eq!(object.get("k100"), None);
    }

    #[test]
    fn references_resolve_inside_the_document_only() {
        let doc = read(
            r##"{"components": {"schemas": {"a/b": {"type": "string"}, "L": {"$ref": "#/components/schemas/M"},
                "M": {"$ref": "#/components/schemas/L"}, "U": {"$ref": "#/components/schemas/a~1b"}}}}"##,
        )
        .unwrap();
        let string = pointer(&doc, "#/components/schemas/a~1b").unwrap();
        assert_eq!(string.str_at("type"), Some("string"));
        assert_eq!(pointer(&doc, "#/components/schemas/a%7E1b"), Ok(string));
        let via_ref = doc.get("components").unwrap().get("schemas").unwrap().get("U").unwrap();
        assert_eq!(follow(&doc, via_ref).unwrap().0, string);
        assert!(matches!(pointer(&doc, "other.yaml#/x"), Err(RefError::External(_))));
        assert!(matches!(pointer(&doc, "#/nothing"), Err(RefError::Missing(_))));
        let circle = doc.get("components").unwrap().get("schemas").unwrap().get("L").unwrap();
        assert!(matches!(follow(&doc, circle), Err(RefError::TooLong(_))));
    }

    #[test]
    fn too_many_values_are_refused_before_a_tree_is_built() {
        let many = format!("[{}0]", "0,".repeat(MAX_NODES + 1));
        let err = read(&format!("{{\"a\": {many}}}")).unwrap_err();
        assert!(err.0.contains("more than"), "{err}");
        let yaml = format!("a: {many}\n");
        let err = read(&yaml).unwrap_err();
        assert!(err.0.contains("more than"), "{err}");
    }

    #[test]
    fn bad_text_says_where() {
        assert!(read("{\"a\": ").unwrap_err().0.contains("JSON"));
        assert!(read("a: [1,\n").unwrap_err().0.contains("YAML"));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(read(&format!("{{\"a\": {deep}}}")).is_err());
    }
}
