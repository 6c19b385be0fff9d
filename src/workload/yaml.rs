//! YAML text into a small tree of nodes that remember where they start, so
//! every later complaint can name `line:column`. Built on saphyr-parser's
//! event stream; anchors/aliases, tags and multiple documents are refused
//! (a workload needs none of them, and aliases are how a small file expands
//! into a huge one).

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting accepted; a file of `[[[[…` must not exhaust the stack of
/// whoever walks the tree.
pub const MAX_DEPTH: usize = 64;

/// A place in the file: line and column from 1. Line 0 means "not from a
/// file" (the built-in workload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: usize, col: usize) -> Pos {
        Pos { line: u32::try_from(line).unwrap_or(u32::MAX), col: u32::try_from(col).unwrap_or(u32::MAX) }
    }

    /// `chars` characters further along the same line.
    pub fn right(self, chars: usize) -> Pos {
        if self.line == 0 {
            return self;
        }
        Pos { line: self.line, col: self.col.saturating_add(u32::try_from(chars).unwrap_or(u32::MAX)) }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar as written; `plain` scalars are typed by the YAML 1.2 core
    /// schema (`null`, `true`, `42`…), quoted and block scalars are strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
    /// Where the scalar's value text starts when it maps character for
    /// character onto one source line (no escapes, no folding), so a
    /// problem inside it can be pointed at exactly.
    pub text_pos: Option<Pos>,
}

/// The typed reading of a plain scalar (YAML 1.2 core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Plain<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
}

impl Node {
    /// The scalar's text, whatever its style.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A string: a quoted scalar, or a plain one that is not null, a
    /// boolean or a number.
    pub fn string(&self) -> Option<&str> {
        match self.typed()? {
            Plain::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn typed(&self) -> Option<Plain<'_>> {
        match &self.kind {
            NodeKind::Scalar { value, plain: true } => Some(plain_type(value)),
            NodeKind::Scalar { value, plain: false } => Some(Plain::Str(value)),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.typed(), Some(Plain::Null))
    }

    /// What kind of node this is, for messages ("expected a list, found a mapping").
    pub fn describe(&self) -> &'static str {
        match (&self.kind, self.typed()) {
            (NodeKind::Map(_), _) => "a mapping",
            (NodeKind::Seq(_), _) => "a list",
            (_, Some(Plain::Null)) => "nothing (null)",
            (_, Some(Plain::Bool(_))) => "a boolean",
            (_, Some(Plain::Int(_))) => "a whole number",
            (_, Some(Plain::Float(_))) => "a number",
            _ => "a string",
        }
    }
}

fn plain_type(s: &str) -> Plain<'_> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Plain::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits(unsigned, 10)
        && let Ok(n) = s.parse::<i128>()
    {
        return Plain::Int(n);
    }
    for (prefix, radix) in [("0x", 16), ("0o", 8)] {
        if let Some(rest) = s.strip_prefix(prefix)
            && digits(rest, radix)
            && let Ok(n) = i128::from_str_radix(rest, radix)
        {
            return Plain::Int(n);
        }
    }
    if is_core_float(unsigned)
        && let Ok(f) = s.parse::<f64>()
    {
        return Plain::Float(f);
    }
    Plain::Str(s)
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` without the sign.
fn is_core_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Why a text is not a usable YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

enum Open {
    Seq(Vec<Node>, Pos),
    /// Entries so far, and a key waiting for its value.
    Map(Vec<(Node, Node)>, Option<Node>, Pos),
}

/// Parses one YAML document into a [`Node`] tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut locator = Locator::new(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError {
            // At the end of the text the scanner may stand on a line after
            // the last: point at the end of the text instead.
            pos: Pos::new(e.marker().line(), e.marker().col() + 1).min(end_of(text)),
            message: e.info().to_string(),
        })?;
        let pos = Pos::new(span.start.line(), span.start.col() + 1);
        let refuse = |message: &str| Err(SyntaxError { pos, message: message.to_string() });
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return refuse("only one YAML document is allowed (remove the second `---`)");
                }
                continue;
            }
            Event::Alias(_) => return refuse("aliases (`*name`) are not supported; write the value out"),
            Event::Scalar(_, _, _, Some(_)) | Event::SequenceStart(_, Some(_)) | Event::MappingStart(_, Some(_)) => {
                return refuse("tags (`!name`) are not supported; quote the value to make it a string");
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if stack.len() >= MAX_DEPTH => {
                return refuse(&format!("nested more than {MAX_DEPTH} levels deep"));
            }
            Event::SequenceStart(..) => {
                stack.push(Open::Seq(Vec::new(), pos));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push(Open::Map(Vec::new(), None, pos));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq(items, start)) => Node { kind: NodeKind::Seq(items), pos: start, text_pos: None },
                _ => return refuse("unbalanced list"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map(entries, None, start)) => {
                    Node { kind: NodeKind::Map(entries), pos: start, text_pos: None }
                }
                _ => return refuse("unbalanced mapping"),
            },
            Event::Scalar(value, style, _, None) => {
                let text_pos = if value.contains("{{") { locator.text_pos(&value, style, span) } else { None };
                Node {
                    kind: NodeKind::Scalar { value: value.into_owned(), plain: style == ScalarStyle::Plain },
                    pos,
                    text_pos,
                }
            }
        };
        match stack.last_mut() {
            Some(Open::Seq(items, _)) => items.push(node),
            Some(Open::Map(entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
            None => root = Some(node),
        }
    }
    root.ok_or(SyntaxError { pos: Pos::new(1, 1), message: "the document is empty".to_string() })
}

/// The place just after the last character (YAML breaks lines at LF,
/// CRLF and a lone CR).
fn end_of(text: &str) -> Pos {
    let last_break = text.rfind(['\n', '\r']);
    let breaks = text.replace("\r\n", "\n").matches(['\r', '\n']).count();
    let last_line = last_break.map_or(text, |i| &text[i + 1..]);
    Pos::new(breaks + 1, last_line.chars().count() + 1)
}

/// Maps saphyr's character positions back to the text, moving forward
/// from the last place asked about (events come in file order), so finding
/// every template's exact column costs one pass over the text.
struct Locator<'a> {
    text: &'a str,
    char_index: usize,
    byte_index: usize,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator { text, char_index: 0, byte_index: 0 }
    }

    fn byte_at(&mut self, char_index: usize) -> Option<usize> {
        if char_index < self.char_index {
            self.char_index = 0;
            self.byte_index = 0;
        }
        let mut chars = self.text[self.byte_index..].char_indices();
        while self.char_index < char_index {
            let (_, c) = chars.next()?;
            self.char_index += 1;
            self.byte_index += c.len_utf8();
        }
        Some(self.byte_index)
    }

    /// Where `value` starts in the text, if it is there verbatim on one line.
    fn text_pos(&mut self, value: &str, style: ScalarStyle, span: Span) -> Option<Pos> {
        let quote = match style {
            ScalarStyle::Plain => 0,
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => 1,
            _ => return None,
        };
        if value.contains('\n') {
            return None;
        }
        let start = self.byte_at(span.start.index() + quote)?;
        self.text[start..].starts_with(value).then(|| Pos::new(span.start.line(), span.start.col() + 1 + quote))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_entries(node: &Node) -> &[(Node, Node)] {
        match &node.kind {
            NodeKind::Map(entries) => entries,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let doc = parse("a: 1\nlist:\n  - x\n  - 'y'\n").unwrap();
        let entries = map_entries(&doc);
        assert_eq!(entries[0].0.pos, Pos::new(1, 1));
        assert_eq!(entries[0].1.pos, Pos::new(1, 4));
        let NodeKind::Seq(items) = &entries[1].1.kind else { panic!() };
        assert_eq!(items[1].pos, Pos::new(4, 5));
        assert_eq!(items[1].string(), Some("y"));
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        for (text, expected) in [
            ("~", Plain::Null),
            ("null", Plain::Null),
            ("true", Plain::Bool(true)),
            ("False", Plain::Bool(false)),
            ("42", Plain::Int(42)),
            ("-7", Plain::Int(-7)),
            ("+3", Plain::Int(3)),
            ("0x1f", Plain::Int(31)),
            ("0o17", Plain::Int(15)),
            ("1.5", Plain::Float(1.5)),
            ("1e3", Plain::Float(1000.0)),
            (".5", Plain::Float(0.5)),
            ("1.2.3", Plain::Str("1.2.3")),
            ("+-5", Plain::Str("+-5")),
            ("yes", Plain::Str("yes")),
            ("0x", Plain::Str("0x")),
        ] {
            assert_eq!(plain_type(text), expected, "{text}");
        }
        let quoted = parse("'42'").unwrap();
        assert_eq!(quoted.string(), Some("42"));
    }

    #[test]
    fn template_scalars_know_where_their_text_starts() {
        let doc = parse("p: /a/{{ x }}\nq: \"/b/{{ y }}\"\nr: \"\\t{{ z }}\"\n").unwrap();
        let entries = map_entries(&doc);
        assert_eq!(entries[0].1.text_pos, Some(Pos::new(1, 4)));
        assert_eq!(entries[1].1.text_pos, Some(Pos::new(2, 5)));
        // An escape changes the length: only the scalar's start is known.
        assert_eq!(entries[2].1.text_pos, None);
        assert_eq!(entries[2].1.pos, Pos::new(3, 4));
    }

    #[test]
    fn refuses_what_a_workload_never_needs() {
        let cases = [
            ("a: &x 1\nb: *x\n", "aliases"),
            ("a: !custom 1\n", "tags"),
            ("a: 1\n---\nb: 2\n", "one YAML document"),
            ("", "empty"),
            ("a: [1, 2\n", ""),
            ("a: 'unclosed\n", ""),
        ];
        for (text, fragment) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.message.contains(fragment), "{text:?}: {err:?}");
            assert!(err.pos.line >= 1, "{text:?}: {err:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // saphyr-parser has a recursion limit of its own for the deepest.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep).is_err());
        let over = format!("{}{}", "{a: ".repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
        let err = parse(&over).expect_err("too deep");
        assert!(err.message.contains("nested more than 64"), "{err:?}");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn errors_at_the_end_point_inside_the_text() {
        for text in ["\u{a1}:\ra", "a: [\r", "a: [\n", "a: [", "x:\r\n  - [\r\n"] {
            let err = parse(text).expect_err(text);
            assert!(err.pos <= end_of(text), "{text:?}: {err:?} after {:?}", end_of(text));
        }
        assert_eq!(end_of("ab\r\ncd\re"), Pos::new(3, 2));
        assert_eq!(end_of(""), Pos::new(1, 1));
    }

    #[test]
    fn json_is_yaml_too() {
        let doc = parse(r#"{"requests": [{"name": "a", "weight": 2}]}"#).unwrap();
        assert_eq!(map_entries(&doc)[0].0.string(), Some("requests"));
    }
}
