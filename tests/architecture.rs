//! Keeps the layers of ARCHITECTURE.md: reads every `crate::` and `super::`
//! path under `src/` and fails on an import a layer may not make, and on a
//! circle between sibling files. Plain text reading, no parser: paths in
//! comments are skipped, everything else counts (a path in a test module or
//! a doc-less expression is an import like any other).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module and what it may import, top-down. The order is the
/// layering: a module may import only modules listed after it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "app",
        &[
            "control",
            "cluster",
            "state",
            "jobs",
            "export",
            "engine",
            "openapi",
            "workload",
            "observe",
            "base",
            "demo_target",
        ],
    ),
    ("control", &["cluster", "state", "jobs", "export", "engine", "workload", "observe", "base"]),
    ("cluster", &["state", "jobs", "engine", "workload", "observe", "base"]),
    ("state", &["jobs", "engine", "workload", "observe", "base"]),
    ("export", &["jobs", "workload", "observe", "base"]),
    ("jobs", &["engine", "workload", "observe", "base"]),
    ("engine", &["workload", "observe", "base"]),
    ("openapi", &["workload", "base"]),
    ("workload", &["observe", "base"]),
    ("observe", &["base"]),
    ("demo_target", &["base"]),
    ("base", &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `src/engine/worker.rs` → `["engine", "worker"]`; `src/engine/mod.rs` → `["engine"]`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).expect("under src/");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        fs::read_dir(dir).expect("readable src/").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without `//` comments (a `//` inside a string such as
/// `"http://x"` is kept: quotes are tracked).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut escaped = false;
        let mut cut = line.len();
        let bytes = line.as_bytes();
        for i in 0..bytes.len() {
            let b = bytes[i];
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
            } else if b == b'"' && !(i > 0 && bytes[i - 1] == b'\'') {
                in_string = true;
            } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
                cut = i;
                break;
            }
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

/// Every path after `prefix` (`crate::`, `super::`), with `{a, b::c}`
/// groups expanded one level: `crate::{x::Y, z}` gives `x::Y` and `z`.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let path = segments(item.trim());
                if !path.is_empty() {
                    found.push(path);
                }
            }
        } else {
            let path = segments(rest);
            if !path.is_empty() {
                found.push(path);
            }
        }
    }
    found
}

/// The leading `a::b::c` of `text`.
fn segments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_string());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    out
}

/// The longest prefix of `path` that names a module file.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p))
}

struct Import {
    from: Vec<String>,
    file: String,
    to: Vec<String>,
    written: String,
}

fn imports() -> (Vec<Import>, BTreeSet<Vec<String>>) {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut all = Vec::new();
    for file in &files {
        let from = module_of(file);
        let text = without_comments(&fs::read_to_string(file).expect("readable source"));
        let shown = file.strip_prefix(src().parent().expect("project")).expect("in project").display().to_string();
        for path in paths_after(&text, "crate::") {
            if let Some(to) = resolve(&path, &modules) {
                all.push(Import {
                    from: from.clone(),
                    file: shown.clone(),
                    to,
                    written: format!("crate::{}", path.join("::")),
                });
            }
        }
        // `super::` from `a/b.rs` and from `a/b/mod.rs` is `a` (in a test
        // module inside them it is the file itself: an edge to an ancestor
        // either way, which the rules allow).
        let parent = from[..from.len().saturating_sub(1)].to_vec();
        for path in paths_after(&text, "super::") {
            let full: Vec<String> = parent.iter().cloned().chain(path.iter().cloned()).collect();
            if let Some(to) = resolve(&full, &modules) {
                all.push(Import {
                    from: from.clone(),
                    file: shown.clone(),
                    to,
                    written: format!("super::{}", path.join("::")),
                });
            }
        }
    }
    (all, modules)
}

#[test]
fn the_layer_table_is_a_dag_listed_top_down() {
    for (i, (name, allowed)) in LAYERS.iter().enumerate() {
        for dep in *allowed {
            let at = LAYERS.iter().position(|(n, _)| n == dep).unwrap_or_else(|| panic!("{name} allows unknown {dep}"));
            assert!(at > i, "{name} may import {dep}, which is listed above it");
        }
    }
}

#[test]
fn every_top_level_module_has_a_place_in_the_layers() {
    let (_, modules) = imports();
    for module in modules.iter().filter(|m| m.len() == 1) {
        assert!(
            LAYERS.iter().any(|(n, _)| *n == module[0]),
            "src/{} is in no layer: add it to ARCHITECTURE.md and to LAYERS in tests/architecture.rs",
            module[0]
        );
    }
}

#[test]
fn no_layer_imports_one_it_may_not() {
    let (imports, _) = imports();
    let mut wrong = Vec::new();
    for import in &imports {
        let (Some(from), Some(to)) = (import.from.first(), import.to.first()) else { continue };
        if from == to {
            continue;
        }
        let allowed = LAYERS.iter().find(|(n, _)| n == from).map_or(&[][..], |(_, a)| *a);
        if !allowed.contains(&to.as_str()) {
            wrong.push(format!(
                "{} uses {} — `{from}` may import only: {}",
                import.file,
                import.written,
                if allowed.is_empty() { "nothing of ours".to_string() } else { allowed.join(", ") }
            ));
        }
    }
    assert!(wrong.is_empty(), "imports against the layers of ARCHITECTURE.md:\n{}", wrong.join("\n"));
}

#[test]
fn no_circle_between_sibling_files() {
    let (imports, _) = imports();
    // Edges between files that are not each other's ancestor: a module's
    // own mod.rs is its face, used by its children and using them.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for import in &imports {
        let (a, b) = (&import.from, &import.to);
        if a == b || a.starts_with(b) || b.starts_with(a) {
            continue;
        }
        edges.entry(a.clone()).or_default().insert(b.clone());
    }
    let mut circles = Vec::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    // Each circle once, from its smallest member.
                    let mut names: Vec<String> = path.iter().map(|m| m.join("::")).collect();
                    let first = names.iter().enumerate().min_by_key(|(_, n)| *n).map_or(0, |(i, _)| i);
                    names.rotate_left(first);
                    names.push(names[0].clone());
                    circles.push(names.join(" → "));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    circles.sort();
    circles.dedup();
    assert!(circles.is_empty(), "modules that import each other in a circle:\n{}", circles.join("\n"));
}

#[test]
fn the_reader_sees_what_the_test_reads() {
    // The reader must find real imports, or every test above passes on nothing.
    let text = "use crate::engine::mode::{Mode, Plan};\nuse crate::{base::url::TargetUrl, observe};\n// crate::app::x\nlet s = \"http://x\"; crate::jobs::y();";
    let found = paths_after(&without_comments(text), "crate::");
    let joined: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(joined, ["engine::mode", "base::url::TargetUrl", "observe", "jobs::y"]);
    let (imports, _) = imports();
    assert!(imports.iter().any(|i| i.from == ["engine", "worker"] && i.to.first().is_some_and(|t| t == "workload")));
}
