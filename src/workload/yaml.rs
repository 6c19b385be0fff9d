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

/// Most values (scalars, lists, mappings) in a document. A megabyte of
/// `- 1` lines is 260 000 of them, about 100 bytes each once read; a
/// workload (64 requests, pools of up to 100 000 values) needs fewer.
pub const MAX_NODES: usize = 120_000;

/// Most entries in flow collections (`[a, b]`, `{a: 1}`, all of JSON) in
/// a document. saphyr-parser holds every token of a flow collection until
/// it closes, at 400 to 900 bytes an entry: a megabyte of `[1,1,1,…]` took
/// 205 MB. Long lists are cheap in block style (one `- item` a line).
pub const MAX_FLOW_ENTRIES: usize = 10_000;

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
    check_flow_entries(text)?;
    let mut nodes = 0usize;
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
        if matches!(event, Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..)) {
            nodes += 1;
            if nodes > MAX_NODES {
                return refuse(&format!(
                    "more than {MAX_NODES} values (keys, items, scalars) in one document; a workload is much smaller"
                ));
            }
        }
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
                    // A copy of exactly its length: the scanner's string
                    // has room to spare (about 130 bytes for `k1`), which a
                    // document of 100 000 keys would keep 13 MB of.
                    kind: NodeKind::Scalar { value: String::from(&*value), plain: style == ScalarStyle::Plain },
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

/// Refuses a document with more than [`MAX_FLOW_ENTRIES`] entries in flow
/// collections before saphyr-parser reads it (see there why). A quick pass
/// that knows just enough YAML: quoted scalars, comments, and that `[` or
/// `{` starts a collection only where a value starts (`/a[1]` is text).
/// It may count a little more or less than a parser would; it only has to
/// stop the megabyte of commas.
fn check_flow_entries(text: &str) -> Result<(), SyntaxError> {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let (mut state, mut depth, mut entries) = (In::Plain, 0usize, 0usize);
    let (mut line, mut col) = (1usize, 0usize);
    let mut start = Pos::new(1, 1);
    // The last byte that was not white space (b'\n' at a line's start),
    // and whether white space came since.
    let (mut last, mut spaced) = (b'\n', true);
    let mut escaped = false;
    for &b in text.as_bytes() {
        if b == b'\n' {
            line += 1;
            col = 0;
        } else if b & 0xC0 != 0x80 {
            col += 1;
        }
        match state {
            In::Comment if b == b'\n' => state = In::Plain,
            // `''` inside a single-quoted scalar is a quote: it closes and
            // reopens at once, which changes nothing here.
            In::Single if b == b'\'' => state = In::Plain,
            In::Double if escaped => escaped = false,
            In::Double if b == b'\\' => escaped = true,
            In::Double if b == b'"' => state = In::Plain,
            In::Comment | In::Single | In::Double => {}
            In::Plain => {
                let value_start = matches!(last, b'\n' | b':' | b'-' | b'[' | b'{' | b',' | b'?');
                match b {
                    b'#' if spaced => state = In::Comment,
                    b'\'' if value_start => state = In::Single,
                    b'"' if value_start => state = In::Double,
                    b'[' | b'{' if depth > 0 || value_start => {
                        if depth == 0 {
                            start = Pos::new(line, col);
                        }
                        depth += 1;
                    }
                    b']' | b'}' if depth > 0 => depth -= 1,
                    b',' if depth > 0 => {
                        entries += 1;
                        if entries > MAX_FLOW_ENTRIES {
                            return Err(SyntaxError {
                                pos: start,
                                message: format!(
                                    "more than {MAX_FLOW_ENTRIES} entries in flow collections ([…], {{…}}, all of JSON); write long lists in block style, one `- item` a line"
                                ),
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
        match b {
            b'\n' => (last, spaced) = (b'\n', true),
            b' ' | b'\t' | b'\r' => spaced = true,
            _ if state == In::Plain || matches!(b, b'\'' | b'"') => (last, spaced) = (b, false),
            _ => {}
        }
    }
    Ok(())
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
    fn a_megabyte_of_flow_entries_or_values_is_refused_before_it_is_held() {
        // 205 MB were held for a megabyte of `[1,1,…]` before this bound.
        // Entries are counted by their separators.
        let flow = format!("[{}]", vec!["1"; MAX_FLOW_ENTRIES + 2].join(","));
        let Err(err) = parse(&flow) else { panic!("too many flow entries passed") };
        assert!(err.message.contains("flow collections"), "{err:?}");
        assert_eq!(err.pos, Pos::new(1, 1));
        let nested = format!("requests:\n  - {{a: 1, {}}}\n", vec!["b: 2"; MAX_FLOW_ENTRIES + 1].join(", "));
        assert_eq!(parse(&nested).err().map(|e| e.pos), Some(Pos::new(2, 5)));
        let block = "- 1\n".repeat(MAX_NODES + 1);
        let message = parse(&block).err().map(|e| e.message).unwrap_or_default();
        assert!(message.contains("more than 120000 values"), "{message}");
        // Commas in text, quoted or plain, and comments are not entries.
        let text = format!(
            "a: '{}'\nb: \"{}\"\nc: /x[1],{}\n# [{}]\nd: [1, 2]\n",
            ",".repeat(20_000),
            ",\\\",".repeat(20_000),
            ",".repeat(20_000),
            ",".repeat(20_000)
        );
        assert!(parse(&text).is_ok(), "{:?}", parse(&text).err());
        // Just under the bound is fine.
        let fits = format!("[{}]", vec!["1"; MAX_FLOW_ENTRIES + 1].join(","));
        assert!(parse(&fits).is_ok());
    }

    #[test]
    fn json_is_yaml_too() {
        let doc = parse(r#"{"requests": [{"name": "a", "weight": 2}]}"#).unwrap();
        assert_eq!(map_entries(&doc)[0].0.string(), Some("requests"));
    }
}
