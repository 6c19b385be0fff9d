//! A schema into a value to send: its `example`/`examples` first, then
//! `const`, `enum`, and what its type and constraints allow (`format`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, simple `pattern`s,
//! `required`). `$ref`, `allOf` (merged), the first branch of
//! `oneOf`/`anyOf`, 3.0 `nullable` and 3.1 type lists are followed.
//!
//! Every walk is bounded: schema steps (a budget shared by the whole
//! document and one per value), nesting depth, `$ref` chains and the size
//! of the value; a `$ref` met again while inside itself is a cycle. What
//! cannot be made is an error for a required part and a note for an
//! optional one (left out).

use std::cell::Cell;

use super::doc::{self, RefError, Value};
use super::pattern;
use super::sample::{Sample, Text};

/// Deepest nesting of schemas (properties, items, `allOf`, `$ref`s) walked.
pub const MAX_DEPTH: usize = 24;
/// Schema steps one value may take.
pub const STEPS_PER_VALUE: usize = 4_000;
/// Largest value made for one body, in bytes as written.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
/// Most optional properties sent in one object.
const MAX_OPTIONAL: usize = 24;
/// Most properties (and required names) of one schema read.
const MAX_PROPERTIES: usize = 256;
/// Most items of an array sent.
const MAX_ITEMS: usize = 4;
/// Longest example text used as is.
const MAX_EXAMPLE_TEXT: usize = 1024;
/// Most notes kept per value.
const MAX_NOTES: usize = 8;

/// Why a value cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(pub String);

impl From<RefError> for SchemaError {
    fn from(e: RefError) -> Self {
        SchemaError(e.to_string())
    }
}

/// What a value is for: a request leaves `readOnly` properties out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Request,
    Response,
}

/// Walks schemas of one document.
pub struct Walker<'d> {
    root: &'d Value,
    /// Steps left for the whole document.
    global: &'d Cell<usize>,
    /// Steps left for the current value.
    steps: usize,
    /// `$ref`s being walked, outermost first.
    stack: Vec<&'d str>,
    /// What was left out or guessed, for the request's comment.
    pub notes: Vec<String>,
    /// Size of the value so far.
    size: usize,
}

/// A schema with its `$ref`s followed and its `allOf` branches (and first
/// `oneOf`/`anyOf` branch) merged in: the keywords generation reads.
#[derive(Debug, Default)]
pub struct Flat<'d> {
    pub refs: Vec<&'d str>,
    pub example: Option<&'d Value>,
    pub constant: Option<&'d Value>,
    pub enumeration: Option<&'d [Value]>,
    pub default: Option<&'d Value>,
    pub types: Vec<&'d str>,
    pub nullable: bool,
    pub format: Option<&'d str>,
    pub pattern: Option<&'d str>,
    pub min_length: Option<f64>,
    pub max_length: Option<f64>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub properties: Vec<(&'d str, &'d Value)>,
    pub required: Vec<&'d str>,
    pub items: Option<&'d Value>,
    pub min_items: Option<f64>,
    pub max_items: Option<f64>,
    pub additional: Option<&'d Value>,
    pub min_properties: Option<f64>,
    pub read_only: bool,
    pub write_only: bool,
    /// `false` schema (3.1): nothing is valid.
    pub nothing: bool,
    /// A discriminator's property and the value the chosen branch needs.
    pub discriminator: Option<(&'d str, String)>,
}

impl<'d> Walker<'d> {
    pub fn new(root: &'d Value, global: &'d Cell<usize>) -> Walker<'d> {
        Walker { root, global, steps: STEPS_PER_VALUE, stack: Vec::new(), notes: Vec::new(), size: 0 }
    }

    /// Starts a new value: its own step budget, size and notes.
    pub fn reset(&mut self) {
        self.steps = STEPS_PER_VALUE;
        self.stack.clear();
        self.notes.clear();
        self.size = 0;
    }

    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES && !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    fn spend(&mut self) -> Result<(), SchemaError> {
        let global = self.global.get();
        if self.steps == 0 || global == 0 {
            return Err(SchemaError(format!(
                "too complex: more than {} schema steps for one value",
                if global == 0 { "the document's" } else { "its" }
            )));
        }
        self.steps -= 1;
        self.global.set(global - 1);
        Ok(())
    }

    /// `schema` flattened: `$ref`s followed, `allOf` merged.
    pub fn flatten(&mut self, schema: &'d Value, depth: usize) -> Result<Flat<'d>, SchemaError> {
        let mut flat = Flat::default();
        self.merge(schema, depth, &mut flat)?;
        Ok(flat)
    }

    fn merge(&mut self, schema: &'d Value, depth: usize, flat: &mut Flat<'d>) -> Result<(), SchemaError> {
        self.spend()?;
        if depth > MAX_DEPTH {
            return Err(SchemaError(format!("schemas nested more than {MAX_DEPTH} deep (allOf, $ref, properties)")));
        }
        let (schema, via) = doc::follow(self.root, schema)?;
        let Some(reference) = via else { return self.merge_object(schema, depth, flat) };
        // A cycle is a reference met again inside itself (the same schema
        // twice side by side in an `allOf` is not one).
        if let Some(from) = self.stack.iter().position(|r| *r == reference) {
            let mut shown: Vec<String> = self.stack[from..].iter().map(|r| doc::short(r)).collect();
            shown.push(doc::short(reference));
            return Err(SchemaError(format!("$ref cycle: {}", shown.join(" → "))));
        }
        if !flat.refs.contains(&reference) {
            flat.refs.push(reference);
        }
        self.stack.push(reference);
        let merged = self.merge_object(schema, depth, flat);
        self.stack.pop();
        merged
    }

    fn merge_object(&mut self, schema: &'d Value, depth: usize, flat: &mut Flat<'d>) -> Result<(), SchemaError> {
        let object = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => {
                flat.nothing = true;
                return Ok(());
            }
            Value::Object(o) => o,
            other => return Err(SchemaError(format!("a schema must be an object, not {}", other.describe()))),
        };
        let number = |key: &str| object.get(key).and_then(Value::as_f64);
        flat.example = flat
            .example
            .or_else(|| object.get("example"))
            .or_else(|| object.get("examples").and_then(Value::as_array).and_then(|items| items.first()));
        flat.constant = flat.constant.or_else(|| object.get("const"));
        flat.enumeration = flat.enumeration.or_else(|| object.get("enum").and_then(Value::as_array));
        flat.default = flat.default.or_else(|| object.get("default"));
        match object.get("type") {
            Some(Value::String(t)) => push_type(&mut flat.types, t),
            Some(Value::Array(list)) => {
                list.iter().filter_map(Value::as_str).for_each(|t| push_type(&mut flat.types, t))
            }
            _ => {}
        }
        if object.get("type").and_then(Value::as_array).is_some_and(|l| l.iter().any(|t| t.as_str() == Some("null")))
            || object.is_true("nullable")
        {
            flat.nullable = true;
        }
        flat.format = flat.format.or_else(|| object.get("format").and_then(Value::as_str));
        flat.pattern = flat.pattern.or_else(|| object.get("pattern").and_then(Value::as_str));
        tighter_min(&mut flat.min_length, number("minLength"));
        tighter_max(&mut flat.max_length, number("maxLength"));
        tighter_min(&mut flat.min_items, number("minItems"));
        tighter_max(&mut flat.max_items, number("maxItems"));
        tighter_min(&mut flat.min_properties, number("minProperties"));
        // 3.0: exclusiveMinimum is a flag on minimum; 3.1: the bound itself.
        let (minimum, exclusive_min) = match (number("minimum"), object.get("exclusiveMinimum")) {
            (m, Some(Value::Bool(b))) => (m, *b),
            (m, Some(v)) if v.as_f64().is_some() => match (m, v.as_f64()) {
                (Some(m), Some(e)) if m > e => (Some(m), false),
                (_, e) => (e, true),
            },
            (m, _) => (m, false),
        };
        let (maximum, exclusive_max) = match (number("maximum"), object.get("exclusiveMaximum")) {
            (m, Some(Value::Bool(b))) => (m, *b),
            (m, Some(v)) if v.as_f64().is_some() => match (m, v.as_f64()) {
                (Some(m), Some(e)) if m < e => (Some(m), false),
                (_, e) => (e, true),
            },
            (m, _) => (m, false),
        };
        if minimum.is_some() && flat.minimum.is_none_or(|old| minimum > Some(old)) {
            flat.minimum = minimum;
            flat.exclusive_minimum = exclusive_min;
        }
        if maximum.is_some() && flat.maximum.is_none_or(|old| maximum < Some(old)) {
            flat.maximum = maximum;
            flat.exclusive_maximum = exclusive_max;
        }
        flat.multiple_of = flat.multiple_of.or_else(|| number("multipleOf").filter(|m| *m > 0.0));
        flat.read_only |= object.is_true("readOnly");
        flat.write_only |= object.is_true("writeOnly");
        // At most MAX_PROPERTIES of each: a value sends far fewer, and the
        // checks for duplicates stay small.
        if let Some(properties) = object.get("properties").and_then(Value::as_object) {
            for (name, property) in properties.iter() {
                if flat.properties.len() == MAX_PROPERTIES {
                    break;
                }
                if !flat.properties.iter().any(|(n, _)| *n == name) {
                    flat.properties.push((name, property));
                }
            }
        }
        if let Some(required) = object.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if flat.required.len() == MAX_PROPERTIES {
                    break;
                }
                if !flat.required.contains(&name) {
                    flat.required.push(name);
                }
            }
        }
        flat.items = flat.items.or_else(|| object.get("items").filter(|i| !matches!(i, Value::Array(_))));
        if flat.items.is_none()
            && let Some(first) = object.get("prefixItems").and_then(Value::as_array).and_then(|p| p.first())
        {
            flat.items = Some(first);
        }
        flat.additional = flat.additional.or_else(|| object.get("additionalProperties"));
        if let Some(all) = object.get("allOf").and_then(Value::as_array) {
            for branch in all.iter() {
                self.merge(branch, depth + 1, flat)?;
            }
        }
        for key in ["oneOf", "anyOf"] {
            let Some(branches) = object.get(key).and_then(Value::as_array) else { continue };
            // The first branch that is not just `null` (FastAPI writes
            // Optional[X] as anyOf [X, null]).
            let is_null = |b: &Value| {
                doc::follow(self.root, b)
                    .is_ok_and(|(s, _)| s.str_at("type") == Some("null") && s.as_object().is_some_and(|o| o.len() == 1))
            };
            if branches.iter().any(&is_null) {
                flat.nullable = true;
            }
            if let Some(branch) = branches.iter().find(|b| !is_null(b)) {
                if let Some(property) = object.get("discriminator").and_then(|d| d.str_at("propertyName")) {
                    let mapped = branch.str_at("$ref").map(|r| {
                        let mapping =
                            object.get("discriminator").and_then(|d| d.get("mapping")).and_then(Value::as_object);
                        mapping
                            .and_then(|m| m.iter().find(|(_, v)| v.as_str() == Some(r)).map(|(k, _)| k.to_string()))
                            .unwrap_or_else(|| r.rsplit('/').next().unwrap_or(r).to_string())
                    });
                    if let Some(value) = mapped {
                        flat.discriminator = Some((property, value));
                    }
                }
                self.merge(branch, depth + 1, flat)?;
            } else if !branches.is_empty() {
                flat.types.push("null");
            }
        }
        Ok(())
    }
}

/// Whether a schema allows `null` (3.0 `nullable`, a 3.1 type list with
/// `null`, or a `oneOf`/`anyOf` branch of type `null`), without merging it.
fn may_be_null(root: &Value, schema: &Value) -> bool {
    let Ok((schema, _)) = doc::follow(root, schema) else { return false };
    let null_type = |s: &Value| match s.get("type") {
        Some(Value::String(t)) => &**t == "null",
        Some(Value::Array(list)) => list.iter().any(|t| t.as_str() == Some("null")),
        _ => false,
    };
    schema.is_true("nullable")
        || null_type(schema)
        || ["oneOf", "anyOf"].iter().any(|key| {
            schema.get(key).and_then(Value::as_array).is_some_and(|branches| {
                branches.iter().take(64).any(|b| doc::follow(root, b).is_ok_and(|(b, _)| null_type(b)))
            })
        })
}

fn push_type<'d>(types: &mut Vec<&'d str>, t: &'d str) {
    if !types.contains(&t) {
        types.push(t);
    }
}

fn tighter_min(slot: &mut Option<f64>, new: Option<f64>) {
    if let Some(n) = new {
        *slot = Some(slot.map_or(n, |old| old.max(n)));
    }
}

fn tighter_max(slot: &mut Option<f64>, new: Option<f64>) {
    if let Some(n) = new {
        *slot = Some(slot.map_or(n, |old| old.min(n)));
    }
}

/// The type to make: the first one that is not `null`, else one guessed
/// from the keywords present.
pub fn primary_type<'a>(flat: &Flat<'a>) -> &'a str {
    if let Some(t) = flat.types.iter().find(|t| **t != "null") {
        return t;
    }
    if flat.types.contains(&"null") {
        return "null";
    }
    if !flat.properties.is_empty() || flat.additional.is_some() || !flat.required.is_empty() {
        "object"
    } else if flat.items.is_some() || flat.min_items.is_some() {
        "array"
    } else if flat.minimum.is_some() || flat.maximum.is_some() || flat.multiple_of.is_some() {
        "number"
    } else if flat.pattern.is_some() || flat.format.is_some() || flat.min_length.is_some() || flat.max_length.is_some()
    {
        "string"
    } else {
        "object"
    }
}

mod values;

pub use values::{from_json, key_ok};

#[cfg(test)]
mod tests;
