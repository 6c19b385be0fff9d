//! Character-level checks and the "did you mean" of the reader: pure
//! functions over text, kept apart from the walk over the YAML tree.

use super::super::yaml::{Node, NodeKind};

/// RFC 3986 `pchar` and `/`: unreserved, sub-delims, `:`, `@`, `%`.
pub(super) fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c)
}

pub(super) fn percent_escapes_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().filter(|(_, b)| **b == b'%').all(|(i, _)| {
        bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    })
}

/// RFC 9110 `tchar`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The hint for a template written without quotes, which YAML reads as a
/// mapping whose key is a mapping (`{{ x }}` is `{ {x: null}: null }`).
pub(super) fn unquoted_template(node: &Node) -> &'static str {
    match &node.kind {
        NodeKind::Map(entries) if entries.first().is_some_and(|(key, _)| matches!(key.kind, NodeKind::Map(_))) => {
            ": a template used as a value must be quoted: \"{{ … }}\" (unquoted, YAML reads `{` as a mapping)"
        }
        _ => "",
    }
}

pub(super) fn json_pointer_ok(p: &str) -> bool {
    if !(p.is_empty() || p.starts_with('/')) {
        return false;
    }
    let bytes = p.as_bytes();
    bytes.iter().enumerate().filter(|(_, b)| **b == b'~').all(|(i, _)| matches!(bytes.get(i + 1), Some(b'0' | b'1')))
}

/// The allowed key nearest to a mistyped one, if it is near.
pub(super) fn closest<'a>(typed: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(typed, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
