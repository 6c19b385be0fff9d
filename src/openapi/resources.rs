//! Which operation creates what another one reads: a path parameter such
//! as `{id}` in `/users/{id}` names a resource created elsewhere. Found by
//! the document's `links` first (an answer's `$response.body#/id` feeds an
//! operation's parameter), else by shape: `POST /users` answers an object
//! with an `id` (or the parameter's own name), and `/users/{id}` reads it.
//! Without a create, a list (`GET /users` answering `[{"id": …}]`) can
//! supply ids of what already exists.
//!
//! Each becomes a [`Source`]: the operation whose answer is captured into
//! a pool, and the JSON pointer captured. Per resource, the create → read
//! → update (→ delete) flow is kept as a [`CrudFlow`].

use std::collections::HashMap;

use super::doc::{self, Value, escape_token};
use super::operations::{self, Operation, Segment};
use super::schema::{self, Walker};
use crate::workload::Method;

/// How a source was found, for the comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// An OpenAPI link.
    Link,
    /// A create and the path's shape.
    Create,
    /// A list of what exists.
    List,
}

/// An answer whose value feeds a parameter elsewhere.
#[derive(Debug, Clone)]
pub struct Source {
    /// The operation (index into the list) whose answer is captured.
    pub op: usize,
    /// RFC 6901 pointer into its JSON answer.
    pub pointer: String,
    /// What it is called: `users` (a resource) or the operation's name.
    pub resource: String,
    /// The parameter it was found for: `id`.
    pub param: String,
    pub found: Found,
}

/// A resource's life: create, then read, update and (when asked) delete
/// what was created. Emitted as pools and fallbacks; a journey per flow
/// once the workload language has journeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrudFlow {
    pub resource: String,
    /// Index into [`Resources::sources`].
    pub source: usize,
    pub create: usize,
    pub read: Option<usize>,
    pub update: Option<usize>,
    pub delete: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Resources {
    pub sources: Vec<Source>,
    /// (operation, parameter name) → source, from links.
    links: HashMap<(usize, String), usize>,
    /// Collection shape (`/users`, `/users/{}/notes`) → source.
    collections: HashMap<String, usize>,
    pub flows: Vec<CrudFlow>,
}

impl Resources {
    /// The source of `param` of operation `op`, if another operation
    /// supplies it.
    pub fn source_for(&self, op: usize, operation: &Operation<'_>, param: &str) -> Option<usize> {
        if let Some(source) = self.links.get(&(op, param.to_string())) {
            return Some(*source);
        }
        let prefix = collection_before(operation.path, param)?;
        self.collections.get(&prefix).copied().filter(|s| self.sources[*s].op != op)
    }
}

/// The shape of the path before `{param}`, when the parameter is a whole
/// segment: `/users/{id}/notes`, `id` → `/users`.
fn collection_before(path: &str, param: &str) -> Option<String> {
    let marker = format!("{{{param}}}");
    let at = path.find(&marker)?;
    let after = &path[at + marker.len()..];
    if !path[..at].ends_with('/') || !(after.is_empty() || after.starts_with('/')) {
        return None;
    }
    Some(operations::shape(&path[..at]))
}

/// The last literal segment of a path: `/users/{id}/notes` → `notes`.
fn last_word(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').find(|s| !s.is_empty() && !s.contains('{')).unwrap_or("item")
}

/// Finds the sources among `ops` (only those `usable`).
pub fn find<'d>(root: &'d Value, ops: &[Operation<'d>], usable: &[bool], walker: &mut Walker<'d>) -> Resources {
    let mut found = Resources::default();
    let mut by_shape: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate().filter(|(i, _)| usable[*i]) {
        by_shape.entry(operations::shape(op.path)).or_default().push(i);
    }
    links(root, ops, usable, walker, &mut found);

    // Creates: POST /users with /users/{x} beside it.
    let mut shapes: Vec<&String> = by_shape.keys().collect();
    shapes.sort(); // a stable order, whatever the hash map's
    for collection in shapes {
        if collection.ends_with("{}") {
            continue;
        }
        let item_shape = format!("{collection}/{{}}");
        let Some(item_ops) = by_shape.get(&item_shape) else { continue };
        let Some(param) = item_ops.first().and_then(|i| item_param(ops[*i].path)) else { continue };
        let at_collection = &by_shape[collection];
        let create = at_collection.iter().copied().find(|i| ops[*i].method == Method::Post);
        let list = at_collection.iter().copied().find(|i| ops[*i].method == Method::Get);
        let from_create =
            create.and_then(|c| Some((c, answer_pointer(root, &ops[c], param, walker, false)?, Found::Create)));
        let from_list =
            || list.and_then(|l| Some((l, answer_pointer(root, &ops[l], param, walker, true)?, Found::List)));
        let Some((op, pointer, kind)) = from_create.or_else(from_list) else { continue };
        let resource = last_word(collection).to_string();
        let source =
            found.add(Source { op, pointer, resource: resource.clone(), param: param.to_string(), found: kind });
        found.collections.insert(collection.clone(), source);
        if kind == Found::Create {
            let pick = |methods: &[Method]| {
                methods.iter().find_map(|m| item_ops.iter().copied().find(|i| ops[*i].method == *m))
            };
            found.flows.push(CrudFlow {
                resource,
                source,
                create: op,
                read: pick(&[Method::Get]),
                update: pick(&[Method::Patch, Method::Put]),
                delete: pick(&[Method::Delete]),
            });
        }
    }
    found.flows.sort_by_key(|f| f.create);
    found
}

impl Resources {
    fn add(&mut self, source: Source) -> usize {
        if let Some(i) = self.sources.iter().position(|s| s.op == source.op && s.pointer == source.pointer) {
            return i;
        }
        self.sources.push(source);
        self.sources.len() - 1
    }
}

/// The parameter of `/users/{id}` (the last segment).
fn item_param(path: &str) -> Option<&str> {
    match operations::segments(path)?.last()? {
        Segment::Param(name) => Some(name),
        Segment::Lit(_) => None,
    }
}

/// Where the id for `param` is in the operation's success answer: `/id`,
/// `/user_id`, `/data/id`; in a list, `/0/id` or `/items/0/id`.
fn answer_pointer<'d>(
    root: &'d Value,
    operation: &Operation<'d>,
    param: &str,
    walker: &mut Walker<'d>,
    list: bool,
) -> Option<String> {
    let schema = operations::success_schema(root, operation)?;
    walker.reset();
    let flat = walker.flatten(schema, 0).ok()?;
    let object_pointer = |walker: &mut Walker<'d>, flat: &schema::Flat<'d>| -> Option<String> {
        if let Some(name) = id_property(flat, param) {
            return Some(format!("/{}", escape_token(name)));
        }
        for wrapper in ["data", "item", "result", "resource"] {
            let Some((_, inner)) = flat.properties.iter().find(|(n, _)| *n == wrapper) else { continue };
            let inner = walker.flatten(inner, 1).ok()?;
            if let Some(name) = id_property(&inner, param) {
                return Some(format!("/{wrapper}/{}", escape_token(name)));
            }
        }
        None
    };
    if !list {
        return (schema::primary_type(&flat) == "object").then(|| object_pointer(walker, &flat)).flatten();
    }
    if schema::primary_type(&flat) == "array" {
        let items = walker.flatten(flat.items?, 1).ok()?;
        return id_property(&items, param).map(|name| format!("/0/{}", escape_token(name)));
    }
    for wrapper in ["items", "data", "results", "content", "records"] {
        let Some((_, inner)) = flat.properties.iter().find(|(n, _)| *n == wrapper) else { continue };
        let inner = walker.flatten(inner, 1).ok()?;
        let items = walker.flatten(inner.items?, 2).ok()?;
        if let Some(name) = id_property(&items, param) {
            return Some(format!("/{wrapper}/0/{}", escape_token(name)));
        }
    }
    None
}

/// The property holding the id: the parameter's own name (`user_id`, or
/// `userId` for `user_id`), else `id`.
fn id_property<'d>(flat: &schema::Flat<'d>, param: &str) -> Option<&'d str> {
    let camel = snake_to_camel(param);
    let snake = camel_to_snake(param);
    [param, camel.as_str(), snake.as_str(), "id"]
        .into_iter()
        .find_map(|candidate| flat.properties.iter().find(|(n, _)| *n == candidate).map(|(n, _)| *n))
}

fn snake_to_camel(s: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in s.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn camel_to_snake(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An RFC 6901 pointer a capture takes: empty or from `/`, `~` only as
/// `~0` or `~1`, short.
fn pointer_ok(pointer: &str) -> bool {
    let bytes = pointer.as_bytes();
    (pointer.is_empty() || pointer.starts_with('/'))
        && pointer.len() <= 256
        && !pointer.chars().any(char::is_control)
        && bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'~')
            .all(|(i, _)| matches!(bytes.get(i + 1), Some(b'0' | b'1')))
}

/// OpenAPI `links` on success answers: `{"operationId": "getUser",
/// "parameters": {"userId": "$response.body#/id"}}`.
fn links<'d>(root: &'d Value, ops: &[Operation<'d>], usable: &[bool], walker: &mut Walker<'d>, found: &mut Resources) {
    let _ = walker;
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate().filter(|(i, _)| usable[*i]) {
        if let Some(id) = op.operation_id {
            by_id.entry(id).or_insert(i);
        }
    }
    // Operations by where they are in the tree, for `operationRef`.
    let by_value: HashMap<*const Value, usize> =
        ops.iter().enumerate().filter(|(i, _)| usable[*i]).map(|(i, o)| (std::ptr::from_ref(o.op), i)).collect();
    let mut seen_links = 0usize;
    for (source_op, op) in ops.iter().enumerate().filter(|(i, _)| usable[*i]) {
        for response in operations::success_responses(root, op) {
            let Some(links) = response.get("links").and_then(Value::as_object) else { continue };
            for (_, link) in links.iter() {
                seen_links += 1;
                if seen_links > 10_000 {
                    return;
                }
                let Ok((link, _)) = doc::follow(root, link) else { continue };
                let target = match (link.str_at("operationId"), link.str_at("operationRef")) {
                    (Some(id), _) => by_id.get(id).copied(),
                    (None, Some(reference)) => {
                        doc::pointer(root, reference).ok().and_then(|v| by_value.get(&std::ptr::from_ref(v)).copied())
                    }
                    _ => None,
                };
                let (Some(target), Some(parameters)) = (target, link.get("parameters").and_then(Value::as_object))
                else {
                    continue;
                };
                for (name, expression) in parameters.iter() {
                    let Some(pointer) = expression.as_str().and_then(|e| e.strip_prefix("$response.body#")) else {
                        continue;
                    };
                    if !pointer_ok(pointer) || target == source_op {
                        continue;
                    }
                    // `path.id` names the place too.
                    let name = name.split_once('.').map_or(name, |(_, n)| n);
                    let source = found.add(Source {
                        op: source_op,
                        pointer: pointer.to_string(),
                        resource: last_word(op.path).to_string(),
                        param: name.to_string(),
                        found: Found::Link,
                    });
                    found.links.entry((target, name.to_string())).or_insert(source);
                }
            }
        }
    }
}
