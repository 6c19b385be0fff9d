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

    /// A value for `schema`; `hint` is an example of the whole value
    /// (a media type's), which wins over the schema's own examples.
    pub fn value(
        &mut self,
        schema: &'d Value,
        purpose: Purpose,
        depth: usize,
        hint: Option<&'d Value>,
    ) -> Result<Sample, SchemaError> {
        let flat = self.flatten(schema, depth)?;
        self.value_of(&flat, purpose, depth, None, hint)
    }

    /// A value for a flattened schema; `name` is its property name, if any.
    pub fn value_of(
        &mut self,
        flat: &Flat<'d>,
        purpose: Purpose,
        depth: usize,
        name: Option<&str>,
        hint: Option<&'d Value>,
    ) -> Result<Sample, SchemaError> {
        if flat.nothing {
            return Err(SchemaError("the schema is `false`: no value is valid".to_string()));
        }
        let unique = name.is_some_and(looks_unique) || matches!(flat.format, Some("email" | "uuid"));
        // An example of a whole object or list is followed part by part
        // (below), so that its unique fields can vary.
        let example = hint.or(flat.example);
        if let Some(example) = example.filter(|e| !matches!(e, Value::Object(_) | Value::Array(_)))
            && let Some(sample) = self.from_example(example, flat, unique)
        {
            return self.sized(sample);
        }
        if let Some(constant) = flat.constant
            && let Some(sample) = from_json(constant, 0)
        {
            return self.sized(sample);
        }
        if let Some(values) = flat.enumeration.filter(|v| !v.is_empty()) {
            return self.sized(enumeration(values));
        }
        let depth = depth + 1;
        let pushed = flat.refs.len();
        self.stack.extend(flat.refs.iter().copied());
        let result = match primary_type(flat) {
            "null" => Ok(Sample::Null),
            "boolean" => Ok(flat.default.and_then(Value::as_bool).map_or(Sample::Bool(true), Sample::Bool)),
            "integer" => integer(flat),
            "number" => number(flat),
            "string" => Ok(Sample::Text(self.string(flat, unique))),
            "array" => self.array(flat, purpose, depth, example),
            _ if example.is_some_and(|e| matches!(e, Value::Array(_))) => from_json(example.unwrap_or(&Value::Null), 0)
                .ok_or_else(|| SchemaError("the example is too large".into())),
            _ => self.object(flat, purpose, depth, example),
        };
        self.stack.truncate(self.stack.len() - pushed);
        self.sized(result?)
    }

    fn sized(&mut self, sample: Sample) -> Result<Sample, SchemaError> {
        self.size += sample.size();
        if self.size > MAX_VALUE_BYTES {
            return Err(SchemaError(format!("the value would be larger than {} KiB", MAX_VALUE_BYTES / 1024)));
        }
        Ok(sample)
    }

    /// The example as it is, except that a value meant to be unique (an
    /// email, a username…) gets random digits, so creates do not collide.
    fn from_example(&mut self, example: &Value, flat: &Flat<'d>, unique: bool) -> Option<Sample> {
        let sample = from_json(example, 0)?;
        if sample.size() > MAX_VALUE_BYTES {
            return None;
        }
        if !unique {
            return Some(sample);
        }
        let Sample::Text(text) = &sample else { return Some(sample) };
        let text = text.as_literal()?;
        if flat.pattern.is_some() || flat.format == Some("uuid") {
            return None; // made from the pattern or format instead
        }
        let room = flat.max_length.is_none_or(|max| text.chars().count() + 8 <= max as usize);
        if !room {
            return None;
        }
        let mut varied = Text::default();
        match text.split_once('@') {
            Some((local, domain)) => {
                varied.push_lit(local);
                varied.append(pattern::digit_run(8));
                varied.push_lit("@");
                varied.push_lit(domain);
            }
            None => {
                varied.push_lit(&text);
                varied.append(pattern::digit_run(8));
            }
        }
        Some(Sample::Text(varied))
    }

    fn string(&mut self, flat: &Flat<'d>, unique: bool) -> Text {
        let min = flat.min_length.map_or(0, |n| n.max(0.0) as usize);
        let max = flat.max_length.map(|n| n.max(0.0) as usize);
        if let Some(p) = flat.pattern {
            match pattern::sample(p) {
                Some(text) => return text,
                None => self.note(format!("pattern `{}` is not simple: check the value", doc::short(p))),
            }
        }
        if let Some(text) = format_value(flat.format) {
            return text;
        }
        if max == Some(0) {
            return Text::default();
        }
        if max.is_some_and(|max| max < min) {
            self.note(format!("minLength {min} is above maxLength {}: check the value", max.unwrap_or_default()));
        }
        let length = 8usize.max(if unique { 10 } else { 0 }).max(min).min(max.unwrap_or(usize::MAX)).max(1);
        if length <= 1024 {
            Text::hole(format!("random_string({length})"))
        } else {
            Text::lit("x".repeat(length.min(MAX_VALUE_BYTES)))
        }
    }

    fn array(
        &mut self,
        flat: &Flat<'d>,
        purpose: Purpose,
        depth: usize,
        example: Option<&'d Value>,
    ) -> Result<Sample, SchemaError> {
        let example_items = example.and_then(Value::as_array).filter(|items| !items.is_empty());
        let min = flat.min_items.map_or(0, |n| n.max(0.0) as usize);
        let max = flat.max_items.map(|n| n.max(0.0) as usize);
        if min > MAX_ITEMS * 4 {
            return Err(SchemaError(format!("minItems {min} is more than a load test should send")));
        }
        let count = min.max(1).min(max.unwrap_or(usize::MAX)).min(MAX_ITEMS.max(min));
        let Some(items) = flat.items else {
            if let Some(listed) = example.and_then(|e| from_json(e, 0)) {
                return Ok(listed);
            }
            return Ok(Sample::Array((0..count).map(|_| Sample::Text(Text::hole("random_string(8)"))).collect()));
        };
        let count = example_items.map_or(count, |listed| listed.len().clamp(min, MAX_ITEMS.max(min)));
        let mut out = Vec::new();
        for i in 0..count {
            let hint = example_items.and_then(|listed| listed.get(i % listed.len()));
            match self.value(items, purpose, depth, hint) {
                Ok(item) => out.push(item),
                Err(e) if out.len() >= min => {
                    self.note(format!("an array's items left out: {}", e.0));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Sample::Array(out))
    }

    fn object(
        &mut self,
        flat: &Flat<'d>,
        purpose: Purpose,
        depth: usize,
        example: Option<&'d Value>,
    ) -> Result<Sample, SchemaError> {
        let example = example.filter(|e| e.as_object().is_some());
        if flat.properties.is_empty()
            && let Some(whole) = example.and_then(|e| from_json(e, 0))
        {
            return Ok(whole); // nothing to follow it by
        }
        let mut entries: Vec<(String, Sample)> = Vec::new();
        let mut optional = 0;
        for (name, property) in &flat.properties {
            if !key_ok(name) || entries.iter().any(|(n, _)| n == name) {
                self.note(format!("property `{}` cannot be written as a key: left out", doc::short(name)));
                continue;
            }
            let required = flat.required.contains(name);
            // With an example of the object, its optional properties are
            // the ones it shows.
            let hint = example.and_then(|e| e.get(name));
            if !required && example.is_some() && hint.is_none() {
                continue;
            }
            let property_flat = match self.flatten(property, depth) {
                Ok(f) => f,
                Err(e) if !required => {
                    self.note(format!("optional `{}` left out: {}", doc::short(name), e.0));
                    continue;
                }
                Err(_) if may_be_null(self.root, property) => {
                    entries.push((name.to_string(), Sample::Null));
                    continue;
                }
                Err(e) => return Err(SchemaError(format!("`{}`: {}", doc::short(name), e.0))),
            };
            let skip = match purpose {
                Purpose::Request => property_flat.read_only,
                Purpose::Response => property_flat.write_only,
            };
            if skip || (!required && optional >= MAX_OPTIONAL) {
                continue;
            }
            if let Some((discriminator, value)) = &flat.discriminator
                && discriminator == name
            {
                entries.push((name.to_string(), Sample::Text(Text::lit(value.clone()))));
                continue;
            }
            match self.value_of(&property_flat, purpose, depth, Some(name), hint) {
                Ok(value) => {
                    if !required {
                        optional += 1;
                    }
                    entries.push((name.to_string(), value));
                }
                Err(e) if !required => self.note(format!("optional `{}` left out: {}", doc::short(name), e.0)),
                Err(_) if property_flat.nullable => entries.push((name.to_string(), Sample::Null)),
                Err(e) => return Err(SchemaError(format!("`{}`: {}", doc::short(name), e.0))),
            }
        }
        // Required without a schema of their own.
        for name in &flat.required {
            if key_ok(name)
                && !entries.iter().any(|(n, _)| n == name)
                && !flat.properties.iter().any(|(n, _)| n == name)
            {
                entries.push((name.to_string(), Sample::Text(Text::hole("random_string(8)"))));
            }
        }
        if let Some((discriminator, value)) = &flat.discriminator
            && key_ok(discriminator)
            && !entries.iter().any(|(n, _)| n == discriminator)
        {
            entries.push((discriminator.to_string(), Sample::Text(Text::lit(value.clone()))));
        }
        if entries.is_empty()
            && flat.min_properties.is_some_and(|m| m >= 1.0)
            && let Some(additional) = flat.additional.filter(|a| a.as_object().is_some())
        {
            entries.push(("key".to_string(), self.value(additional, purpose, depth, None)?));
        }
        Ok(Sample::Object(entries))
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

/// Names of properties whose values are usually unique per record.
fn looks_unique(name: &str) -> bool {
    let plain: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    matches!(plain.as_str(), "email" | "mail" | "emailaddress" | "username" | "login" | "handle" | "slug" | "nickname")
}

/// A JSON value as a sample (strings literal), if it is small.
pub fn from_json(value: &Value, depth: usize) -> Option<Sample> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match value {
        Value::Null => Sample::Null,
        Value::Bool(b) => Sample::Bool(*b),
        Value::Number(n) => Sample::Number(n.to_string()),
        Value::String(s) if s.len() <= MAX_EXAMPLE_TEXT => Sample::Text(Text::lit(s.to_string())),
        Value::String(_) => return None,
        Value::Array(items) if items.len() <= 64 => {
            Sample::Array(items.iter().map(|i| from_json(i, depth + 1)).collect::<Option<Vec<_>>>()?)
        }
        Value::Object(o) if o.len() <= 64 => {
            let mut entries: Vec<(String, Sample)> = Vec::new();
            for (key, value) in o.iter() {
                if key_ok(key) && !entries.iter().any(|(k, _)| k == key) {
                    entries.push((key.to_string(), from_json(value, depth + 1)?));
                }
            }
            Sample::Object(entries)
        }
        _ => return None,
    })
}

/// A key a workload body can hold: a template cannot be a key, so none
/// with `{{` (and none too long to be one).
pub fn key_ok(key: &str) -> bool {
    !key.contains("{{") && key.len() <= 256
}

/// One of the values, drawn per request when they are all text or all
/// whole numbers; otherwise the first.
fn enumeration(values: &[Value]) -> Sample {
    let listed: Vec<&Value> = values.iter().filter(|v| !matches!(v, Value::Null)).take(100).collect();
    let first = || listed.first().and_then(|v| from_json(v, 0)).unwrap_or(Sample::Null);
    if listed.len() < 2 {
        return first();
    }
    let items: Option<Vec<String>> = listed
        .iter()
        .map(|v| match v {
            Value::String(s) if choice_item_ok(s) => {
                Some(if s.contains('\'') { format!("\"{s}\"") } else { format!("'{s}'") })
            }
            Value::Number(n) if !n.contains(['.', 'e', 'E']) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    let all_text = listed.iter().all(|v| matches!(v, Value::String(_)));
    let all_numbers = listed.iter().all(|v| matches!(v, Value::Number(_)));
    match items {
        Some(items) if all_text || all_numbers => Sample::Text(Text::hole(format!("choice({})", items.join(", ")))),
        _ => first(),
    }
}

/// A text a `choice(…)` can hold quoted: no control characters, not both
/// quotes, not empty, not too long, and no `}}` (which would end the hole).
fn choice_item_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && !(s.contains('\'') && s.contains('"'))
        && !s.contains("}}")
        && !s.chars().any(char::is_control)
}

/// Text for a known `format`.
fn format_value(format: Option<&str>) -> Option<Text> {
    let mut t = Text::default();
    match format? {
        "uuid" => t.push_hole("uuid()"),
        "date-time" => t.push_hole("now()"),
        "date" => {
            t.push_lit("20");
            t.push_hole("random_int(20, 29)");
            t.push_lit("-");
            t.push_hole("random_int(10, 12)");
            t.push_lit("-");
            t.push_hole("random_int(10, 28)");
        }
        "time" => {
            t.push_hole("random_int(10, 23)");
            t.push_lit(":");
            t.push_hole("random_int(10, 59)");
            t.push_lit(":");
            t.push_hole("random_int(10, 59)");
        }
        "email" | "idn-email" => {
            t.push_lit("user");
            t.append(pattern::digit_run(8));
            t.push_lit("@example.com");
        }
        "uri" | "url" | "iri" | "uri-reference" | "iri-reference" => {
            t.push_lit("https://example.com/");
            t.push_hole("random_string(8)");
        }
        "hostname" | "idn-hostname" => {
            t.push_lit("host");
            t.append(pattern::digit_run(6));
            t.push_lit(".example.com");
        }
        "ipv4" => {
            t.push_lit("10.");
            t.push_hole("random_int(0, 255)");
            t.push_lit(".");
            t.push_hole("random_int(0, 255)");
            t.push_lit(".");
            t.push_hole("random_int(1, 254)");
        }
        "ipv6" => {
            t.push_lit("2001:db8::");
            t.push_hole("random_int(1000, 9999)");
        }
        "byte" => t.push_lit("dHJhZmZpY2dlbg=="),
        "duration" => {
            t.push_lit("PT");
            t.push_hole("random_int(10, 59)");
            t.push_lit("S");
        }
        _ => return None,
    }
    Some(t)
}

/// Whole-number bounds from the flat schema, within `i64`.
fn integer_bounds(flat: &Flat<'_>) -> Result<(i64, i64), SchemaError> {
    let lo = flat.minimum.map(|m| if flat.exclusive_minimum { (m + 1.0).floor() } else { m.ceil() });
    let hi = flat.maximum.map(|m| if flat.exclusive_maximum { (m - 1.0).ceil() } else { m.floor() });
    let clamp = |f: f64| f.clamp(-9.0e18, 9.0e18) as i64;
    let (lo, hi) = match (lo.map(clamp), hi.map(clamp)) {
        (Some(lo), Some(hi)) => (lo, hi),
        (Some(lo), None) => (lo, lo.saturating_add(100)),
        (None, Some(hi)) => (hi.saturating_sub(100).max(hi.min(1)), hi),
        (None, None) => (1, 100),
    };
    let (lo, hi) = match flat.format {
        Some("int32") => (lo.max(i64::from(i32::MIN)), hi.min(i64::from(i32::MAX))),
        _ => (lo, hi),
    };
    if lo > hi {
        return Err(SchemaError(format!("no whole number lies between the minimum and the maximum ({lo} > {hi})")));
    }
    Ok((lo, hi))
}

fn integer(flat: &Flat<'_>) -> Result<Sample, SchemaError> {
    let (lo, hi) = integer_bounds(flat)?;
    if let Some(step) = flat.multiple_of.filter(|m| m.fract() == 0.0 && *m >= 1.0) {
        let step = step.min(9.0e18) as i64;
        let first = lo.div_euclid(step).saturating_add(i64::from(lo.rem_euclid(step) != 0)).saturating_mul(step);
        if first > hi {
            return Err(SchemaError(format!("no multiple of {step} lies between {lo} and {hi}")));
        }
        return Ok(Sample::Number(first.to_string()));
    }
    Ok(if lo == hi {
        Sample::Number(lo.to_string())
    } else {
        Sample::Text(Text::hole(format!("random_int({lo}, {hi})")))
    })
}

fn number(flat: &Flat<'_>) -> Result<Sample, SchemaError> {
    if flat.multiple_of.is_none_or(|m| m.fract() == 0.0) && integer_bounds(flat).is_ok() {
        return integer(flat);
    }
    // No whole number fits (0.1 to 0.9) or a fractional step: a fixed value.
    let lo = flat.minimum.unwrap_or(0.0);
    let hi = flat.maximum.unwrap_or(lo + 1.0);
    let mut value = (lo + hi) / 2.0;
    if let Some(step) = flat.multiple_of {
        value = (value / step).round() * step;
    }
    match serde_json::Number::from_f64(value) {
        Some(n) if lo <= value && value <= hi => Ok(Sample::Number(n.to_string())),
        _ => Err(SchemaError(format!("no number satisfies minimum {lo}, maximum {hi} and the step"))),
    }
}

#[cfg(test)]
mod tests;
