//! Templates: text with holes, `/users/{{ pool(user_ids) }}`, parsed once at
//! load into literal runs and typed holes. Nothing here is parsed again per
//! request.
//!
//! A hole is `{{ function(arguments) }}`; `{{ 'text' }}` is literal text
//! (the way to write `{{` itself).

use std::fmt;

use super::yaml::Pos;

/// Most items of one `choice(…)`.
pub const MAX_CHOICES: usize = 1000;
/// Longest `random_string(n)`.
pub const MAX_RANDOM_STRING: u32 = 1024;
/// Longest value a `choice` item or a pool may hold, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;

/// The template functions, for messages and `workload check`.
pub const FUNCTIONS: &str = "random_int(min, max), choice(a, b, …), random_string(length), uuid(), seq(), now(), unix_time(), unix_time_ms(), pool(name), take(pool), var(name), data(table, column), env(NAME), base64(…)";

/// Most pieces of one `base64(…)`.
pub const MAX_BASE64_PIECES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    /// A hole and where it is written.
    Hole(Hole, Pos),
}

/// A value drawn per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hole {
    /// A whole number from `min` to `max`, both included.
    RandomInt { min: i64, max: i64 },
    /// One of the items, each as likely.
    Choice(Vec<Item>),
    /// Letters and digits.
    RandomString(u32),
    /// A random (version 4) UUID.
    Uuid,
    /// 1, 2, 3… across the whole workload.
    Seq,
    /// The time now, RFC 3339 in UTC with milliseconds.
    Now,
    /// Seconds since 1970.
    UnixTime,
    /// Milliseconds since 1970.
    UnixTimeMs,
    /// A value from the named pool.
    Pool(String),
    /// A value taken out of the named pool: read like `pool`, and gone
    /// from it once the request is rendered (the delete of an id).
    Take(String),
    /// A journey instance's own variable, filled by a capture (`var:`) of
    /// an earlier step.
    Var(String),
    /// A field of the journey instance's row of a data table.
    Data { table: String, column: String },
    /// An environment variable of the sidecar, read once at load (for
    /// credentials); only names under [`ENV_PREFIX`].
    Env(String),
    /// The pieces written one after the other, base64-encoded (Basic auth).
    Base64(Vec<Piece>),
}

/// One piece of a `base64(…)`: text, or a function's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Hole(Hole),
}

/// Only environment variables whose names start with this may be read by
/// `env(…)`: the sidecar's own settings (`CONTROL_TOKEN`, TLS, every other
/// one) never can, so a workload put in over the API cannot send them.
pub const ENV_PREFIX: &str = "TRAFFICGEN_ENV_";

/// One item of a `choice`: a number (written bare; a bare JSON number when
/// it fills a whole JSON value) or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub text: String,
    pub number: bool,
}

/// A problem in a template, at a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub pos: Pos,
    pub message: String,
}

/// Where a template's text starts: exactly (each character one column
/// on), or only roughly (the scalar's start, when escapes or line folding
/// moved things).
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub pos: Pos,
    pub exact: bool,
}

impl Origin {
    fn at(self, text: &str, byte: usize) -> Pos {
        if self.exact { self.pos.right(text[..byte].chars().count()) } else { self.pos }
    }
}

impl Template {
    pub fn literal(text: impl Into<String>) -> Template {
        let text = text.into();
        Template { parts: if text.is_empty() { Vec::new() } else { vec![Part::Literal(text)] } }
    }

    /// A template of one hole, for workloads built in code.
    pub fn hole(hole: Hole) -> Template {
        Template { parts: vec![Part::Hole(hole, Pos::default())] }
    }

    pub fn parse(text: &str, origin: Origin) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut at = 0;
        while let Some(found) = text[at..].find("{{") {
            let open = at + found;
            literal.push_str(&text[at..open]);
            let inner_start = open + 2;
            let close = closing_braces(&text[inner_start..]).map(|i| inner_start + i).ok_or_else(|| TemplateError {
                pos: origin.at(text, open),
                message: format!("template `{}` does not close with `}}}}`", shorten(&text[open..], 40)),
            })?;
            let inner = &text[inner_start..close];
            let pos = origin.at(text, open);
            match expression(inner)
                .map_err(|message| TemplateError { pos, message: format!("in `{{{{{inner}}}}}`: {message}") })?
            {
                Expression::Text(t) => literal.push_str(&t),
                Expression::Hole(hole) => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Hole(hole, pos));
                }
            }
            at = close + 2;
        }
        literal.push_str(&text[at..]);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// The text, if there are no holes.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The hole, if the template is exactly one hole and nothing else.
    pub fn single_hole(&self) -> Option<&Hole> {
        match self.parts.as_slice() {
            [Part::Hole(hole, _)] => Some(hole),
            _ => None,
        }
    }

    /// Every hole, those inside a `base64(…)` too (at the outer one's place).
    pub fn holes(&self) -> impl Iterator<Item = (&Hole, Pos)> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Hole(hole, pos) => Some((hole, *pos)),
                Part::Literal(_) => None,
            })
            .flat_map(|(hole, pos)| {
                let nested: Vec<&Hole> = match hole {
                    Hole::Base64(pieces) => pieces
                        .iter()
                        .filter_map(|p| match p {
                            Piece::Hole(h) => Some(h),
                            Piece::Text(_) => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                std::iter::once((hole, pos)).chain(nested.into_iter().map(move |h| (h, pos)))
            })
    }

    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Literal(text) => Some(text.as_str()),
            Part::Hole(..) => None,
        })
    }
}

/// Written back with each hole in its normal form, `{{ random_int(1, 10) }}`.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) if text.contains("{{") => {
                    // Written so that it reads back as the same literal.
                    for (i, piece) in text.split("{{").enumerate() {
                        if i > 0 {
                            f.write_str("{{ '{{' }}")?;
                        }
                        f.write_str(piece)?;
                    }
                }
                Part::Literal(text) => f.write_str(text)?,
                Part::Hole(hole, _) => write!(f, "{{{{ {hole} }}}}")?,
            }
        }
        Ok(())
    }
}

impl Hole {
    pub fn function(&self) -> &'static str {
        match self {
            Hole::RandomInt { .. } => "random_int",
            Hole::Choice(_) => "choice",
            Hole::RandomString(_) => "random_string",
            Hole::Uuid => "uuid",
            Hole::Seq => "seq",
            Hole::Now => "now",
            Hole::UnixTime => "unix_time",
            Hole::UnixTimeMs => "unix_time_ms",
            Hole::Pool(_) => "pool",
            Hole::Take(_) => "take",
            Hole::Var(_) => "var",
            Hole::Data { .. } => "data",
            Hole::Env(_) => "env",
            Hole::Base64(_) => "base64",
        }
    }

    /// The pool it reads (or takes from), if any.
    pub fn pool(&self) -> Option<&str> {
        match self {
            Hole::Pool(name) | Hole::Take(name) => Some(name),
            _ => None,
        }
    }

    /// The journey variable it reads, if any.
    pub fn var(&self) -> Option<&str> {
        match self {
            Hole::Var(name) => Some(name),
            _ => None,
        }
    }

    /// Whether its values are numbers: a hole that fills a whole JSON value
    /// is then written as a bare JSON number.
    pub fn is_number(&self) -> bool {
        matches!(self, Hole::RandomInt { .. } | Hole::Seq | Hole::UnixTime | Hole::UnixTimeMs)
    }
}

impl fmt::Display for Hole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hole::RandomInt { min, max } => write!(f, "random_int({min}, {max})"),
            Hole::Choice(items) => {
                f.write_str("choice(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match (item.number, item.text.contains('\'')) {
                        (true, _) => f.write_str(&item.text)?,
                        (false, false) => write!(f, "'{}'", item.text)?,
                        (false, true) => write!(f, "\"{}\"", item.text)?,
                    }
                }
                f.write_str(")")
            }
            Hole::RandomString(len) => write!(f, "random_string({len})"),
            Hole::Pool(name) | Hole::Take(name) | Hole::Var(name) | Hole::Env(name) => {
                write!(f, "{}({name})", self.function())
            }
            Hole::Data { table, column } => write!(f, "data({table}, {column})"),
            Hole::Base64(pieces) => {
                f.write_str("base64(")?;
                for (i, piece) in pieces.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match piece {
                        Piece::Text(t) if t.contains('\'') => write!(f, "\"{t}\"")?,
                        Piece::Text(t) => write!(f, "'{t}'")?,
                        Piece::Hole(h) => write!(f, "{h}")?,
                    }
                }
                f.write_str(")")
            }
            other => write!(f, "{}()", other.function()),
        }
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max_chars).collect();
    short.push('…');
    short
}

/// Where `}}` ends the expression starting `inner`, skipping quoted text.
fn closing_braces(inner: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut chars = inner.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '}' && chars.peek().is_some_and(|(_, n)| *n == '}') => return Some(i),
            None => {}
        }
    }
    None
}

enum Expression {
    Text(String),
    Hole(Hole),
}

#[derive(Debug)]
enum Arg {
    /// Quoted text.
    Text(String),
    /// A bare number, as written.
    Number(String),
    /// A bare word.
    Word(String),
    /// A function call, as written: `var(user)` (only `base64` takes one).
    Call(String),
}

impl Arg {
    fn describe(&self) -> String {
        match self {
            Arg::Text(t) => format!("'{t}'"),
            Arg::Number(n) | Arg::Word(n) | Arg::Call(n) => n.clone(),
        }
    }
}

fn expression(inner: &str) -> Result<Expression, String> {
    let inner = inner.trim();
    if inner.is_empty() {
        return Err(format!("empty template; write a function: {FUNCTIONS}"));
    }
    if let Some(text) = quoted(inner)? {
        return Ok(Expression::Text(text));
    }
    let (name, args) = match inner.find('(') {
        Some(open) => {
            let args = inner[open + 1..]
                .strip_suffix(')')
                .ok_or("the arguments must end with `)` and nothing may follow it")?;
            (inner[..open].trim_end(), arguments(args)?)
        }
        None => (inner, Vec::new()),
    };
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
        return Err(format!("`{name}` is not a template function (known: {FUNCTIONS})"));
    }
    let count = |n: usize, usage: &str| {
        if args.len() == n { Ok(()) } else { Err(format!("{name} takes {usage}, got {} argument(s)", args.len())) }
    };
    let hole = match name {
        "random_int" => {
            count(2, "two whole numbers: random_int(min, max)")?;
            let min = integer(&args[0])?;
            let max = integer(&args[1])?;
            if min > max {
                return Err(format!("random_int({min}, {max}): min is above max"));
            }
            Hole::RandomInt { min, max }
        }
        "choice" => {
            if args.is_empty() || args.len() > MAX_CHOICES {
                return Err(format!("choice takes 1 to {MAX_CHOICES} items"));
            }
            let items = args
                .into_iter()
                .map(|arg| {
                    let (text, number) = match arg {
                        Arg::Number(n) => (n, true),
                        Arg::Text(t) | Arg::Word(t) => (t, false),
                        Arg::Call(c) => return Err(format!("choice items are values, not functions: {c}")),
                    };
                    check_value(&text).map_err(|e| format!("choice item '{text}' {e}"))?;
                    Ok(Item { text, number })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Hole::Choice(items)
        }
        "random_string" => {
            count(1, "a length: random_string(16)")?;
            let len = integer(&args[0])?;
            match u32::try_from(len) {
                Ok(n) if (1..=MAX_RANDOM_STRING).contains(&n) => Hole::RandomString(n),
                _ => return Err(format!("random_string length must be from 1 to {MAX_RANDOM_STRING}, not {len}")),
            }
        }
        "uuid" | "seq" | "now" | "unix_time" | "unix_time_ms" => {
            count(0, "no arguments")?;
            match name {
                "uuid" => Hole::Uuid,
                "seq" => Hole::Seq,
                "now" => Hole::Now,
                "unix_time" => Hole::UnixTime,
                _ => Hole::UnixTimeMs,
            }
        }
        "pool" | "take" => {
            count(1, &format!("a pool name: {name}(user_ids)"))?;
            let pool = word(&args[0], "pool name")?;
            if name == "pool" { Hole::Pool(pool) } else { Hole::Take(pool) }
        }
        "var" => {
            count(1, "a variable name: var(user_id)")?;
            Hole::Var(word(&args[0], "variable name")?)
        }
        "data" => {
            count(2, "a table and a column: data(accounts, username)")?;
            Hole::Data { table: word(&args[0], "table name")?, column: word(&args[1], "column name")? }
        }
        "env" => {
            count(1, &format!("a variable name: env({ENV_PREFIX}PASSWORD)"))?;
            let var = word(&args[0], "environment variable name")?;
            if !var.starts_with(ENV_PREFIX) || var.len() == ENV_PREFIX.len() {
                return Err(format!(
                    "env({var}): only environment variables whose names start with {ENV_PREFIX} may be read (the sidecar's own settings, such as CONTROL_TOKEN, never can)"
                ));
            }
            Hole::Env(var)
        }
        "base64" => {
            if args.is_empty() || args.len() > MAX_BASE64_PIECES {
                return Err(format!(
                    "base64 takes 1 to {MAX_BASE64_PIECES} pieces, written one after the other: base64(var(user), ':', var(password))"
                ));
            }
            let pieces = args
                .into_iter()
                .map(|arg| match arg {
                    Arg::Text(t) | Arg::Number(t) => Ok(Piece::Text(t)),
                    Arg::Word(w) => Err(format!("`{w}` in base64: quote text ('{w}'), or call a function (var({w}))")),
                    Arg::Call(call) => match expression(&call)? {
                        Expression::Text(t) => Ok(Piece::Text(t)),
                        Expression::Hole(Hole::Base64(_) | Hole::Take(_)) => {
                            Err(format!("`{call}` cannot be used inside base64"))
                        }
                        Expression::Hole(hole) => Ok(Piece::Hole(hole)),
                    },
                })
                .collect::<Result<Vec<_>, String>>()?;
            Hole::Base64(pieces)
        }
        other => return Err(format!("unknown template function `{other}` (known: {FUNCTIONS})")),
    };
    Ok(Expression::Hole(hole))
}

/// A name given as an argument: a bare word (or quoted text).
fn word(arg: &Arg, what: &str) -> Result<String, String> {
    match arg {
        Arg::Word(w) | Arg::Text(w) if !w.is_empty() => Ok(w.clone()),
        other => Err(format!("{what} expected, found {}", other.describe())),
    }
}

/// `'text'` or `"text"` (no escapes), or `None` if not quoted.
fn quoted(s: &str) -> Result<Option<String>, String> {
    let Some(q) = s.chars().next().filter(|c| *c == '\'' || *c == '"') else { return Ok(None) };
    match s[1..].find(q) {
        Some(end) if end + 2 == s.len() => Ok(Some(s[1..=end].to_string())),
        Some(_) => Err(format!("unexpected text after the quoted text {}", shorten(s, 30))),
        None => Err(format!("the quote {q} does not close")),
    }
}

fn arguments(s: &str) -> Result<Vec<Arg>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut args = Vec::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut start = 0;
    let mut pieces = Vec::new();
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '(' => depth += 1,
            None if c == ')' => depth = depth.checked_sub(1).ok_or("a `)` without its `(`")?,
            None if c == ',' && depth == 0 => {
                pieces.push(&s[start..i]);
                start = i + 1;
            }
            None => {}
        }
    }
    if let Some(q) = quote {
        return Err(format!("the quote {q} does not close"));
    }
    if depth > 0 {
        return Err("a `(` without its `)`".to_string());
    }
    pieces.push(&s[start..]);
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            return Err("an argument is missing (two commas, or one at the end)".to_string());
        }
        if let Some(text) = quoted(piece)? {
            args.push(Arg::Text(text));
        } else if is_number(piece) {
            args.push(Arg::Number(piece.to_string()));
        } else if piece.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            args.push(Arg::Word(piece.to_string()));
        } else if let Some(open) = piece.find('(')
            && piece.ends_with(')')
            && piece[..open].trim_end().chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            args.push(Arg::Call(piece.to_string()));
        } else {
            return Err(format!("`{piece}` is not an argument: quote text, e.g. '{piece}'"));
        }
    }
    Ok(args)
}

/// A number as JSON writes one: `-12`, `3.25`.
fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    all_digits(int) && (int == "0" || !int.starts_with('0')) && frac.is_none_or(all_digits)
}

fn integer(arg: &Arg) -> Result<i64, String> {
    match arg {
        Arg::Number(n) => n.parse::<i64>().map_err(|_| format!("{n} is not a whole number that fits in 64 bits")),
        other => Err(format!("a whole number expected, found {}", other.describe())),
    }
}

/// A value a `choice` item or a pool may hold: at most
/// [`MAX_VALUE_BYTES`], no control characters (it may end up in a header).
pub fn check_value(text: &str) -> Result<(), String> {
    if text.len() > MAX_VALUE_BYTES {
        return Err(format!("is longer than {MAX_VALUE_BYTES} bytes"));
    }
    if text.chars().any(char::is_control) {
        return Err("contains a control character (such as CR or LF)".to_string());
    }
    Ok(())
}

/// Longest `regex` of a capture, in characters.
pub const MAX_REGEX_CHARS: usize = 256;
/// Bound on a capture regex's compiled program (bytes): matching is linear
/// in the answer's length, and this keeps the factor small.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A capture's regular expression, compiled: at most [`MAX_REGEX_CHARS`],
/// exactly one group (the value kept). regex-lite matches in time linear
/// in the text (no backtracking), so no answer can make a capture slow.
pub fn compile_regex(pattern: &str) -> Result<regex_lite::Regex, String> {
    if pattern.chars().count() > MAX_REGEX_CHARS {
        return Err(format!("regex is longer than {MAX_REGEX_CHARS} characters"));
    }
    let regex = regex_lite::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(32)
        .build()
        .map_err(|e| format!("regex {pattern:?} is not a regular expression: {e}"))?;
    match regex.captures_len() {
        2 => Ok(regex),
        n => Err(format!(
            "regex {pattern:?} must have exactly one group `( … )`, whose text is the value kept; it has {}",
            n - 1
        )),
    }
}

pub fn check_regex(pattern: &str) -> Result<(), String> {
    compile_regex(pattern).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { pos: Pos::new(3, 10), exact: true }
    }

    fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse(text, origin())
    }

    #[test]
    fn splits_text_into_literals_and_holes() {
        let t = parse("/users/{{ pool(user_ids) }}/x{{random_int(1,10)}}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("/users/".into()),
                Part::Hole(Hole::Pool("user_ids".into()), Pos::new(3, 17)),
                Part::Literal("/x".into()),
                Part::Hole(Hole::RandomInt { min: 1, max: 10 }, Pos::new(3, 39)),
            ]
        );
        assert_eq!(t.to_string(), "/users/{{ pool(user_ids) }}/x{{ random_int(1, 10) }}");
        assert_eq!(parse("plain").unwrap().as_literal(), Some("plain"));
    }

    #[test]
    fn every_function_parses_and_prints_back() {
        for text in [
            "{{ random_int(-5, 5) }}",
            "{{ choice('a b', 2, \"it's\", 1.5) }}",
            "{{ random_string(12) }}",
            "{{ uuid() }}",
            "{{ seq() }}",
            "{{ now() }}",
            "{{ unix_time() }}",
            "{{ unix_time_ms() }}",
            "{{ pool(tokens) }}",
        ] {
            let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(t.to_string(), text);
            assert_eq!(parse(&t.to_string()).unwrap(), t);
        }
        assert_eq!(parse("{{uuid}}").unwrap().single_hole(), Some(&Hole::Uuid));
        let choice = parse("{{ choice(red, 7) }}").unwrap();
        let Some(Hole::Choice(items)) = choice.single_hole() else { panic!() };
        assert_eq!(items[0], Item { text: "red".into(), number: false });
        assert_eq!(items[1], Item { text: "7".into(), number: true });
    }

    #[test]
    fn a_quoted_expression_is_literal_text() {
        let t = parse("a{{ '{{' }}b").unwrap();
        assert_eq!(t.as_literal(), Some("a{{b"));
        assert_eq!(parse(&t.to_string()).unwrap(), t);
        assert_eq!(parse("{{ '}}' }}").unwrap().as_literal(), Some("}}"));
    }

    #[test]
    fn bad_templates_say_what_and_where() {
        let cases = [
            ("/a/{{ pool(x)", Pos::new(3, 13), "does not close"),
            ("{{ }}", Pos::new(3, 10), "empty template"),
            ("ab{{ nope() }}", Pos::new(3, 12), "unknown template function `nope`"),
            ("{{ random_int(5, 1) }}", Pos::new(3, 10), "min is above max"),
            ("{{ random_int(1) }}", Pos::new(3, 10), "two whole numbers"),
            ("{{ random_int(1.5, 2) }}", Pos::new(3, 10), "not a whole number"),
            ("{{ random_int(a, 2) }}", Pos::new(3, 10), "whole number expected"),
            ("{{ random_string(0) }}", Pos::new(3, 10), "from 1 to 1024"),
            ("{{ random_string(99999999999) }}", Pos::new(3, 10), "from 1 to 1024"),
            ("{{ uuid(1) }}", Pos::new(3, 10), "no arguments"),
            ("{{ pool() }}", Pos::new(3, 10), "pool name"),
            ("{{ pool(3) }}", Pos::new(3, 10), "pool name expected"),
            ("{{ choice() }}", Pos::new(3, 10), "1 to 1000 items"),
            ("{{ choice(a,,b) }}", Pos::new(3, 10), "missing"),
            ("{{ choice('a) }}", Pos::new(3, 10), "does not close"),
            ("{{ choice(a b) }}", Pos::new(3, 10), "not an argument"),
            ("{{ seq() x }}", Pos::new(3, 10), "must end with `)`"),
            ("{{ 'a' b }}", Pos::new(3, 10), "unexpected text"),
            ("{{ a-b() }}", Pos::new(3, 10), "not a template function"),
        ];
        for (text, pos, fragment) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(err.pos, pos, "{text}: {err:?}");
            assert!(err.message.contains(fragment), "{text}: {err:?}");
        }
        let long = format!("{{{{ choice('{}') }}}}", "x".repeat(300));
        assert!(parse(&long).unwrap_err().message.contains("longer than 256"));
        assert!(parse("{{ choice(\"a\u{7}\") }}").unwrap_err().message.contains("control"));
    }

    #[test]
    fn inexact_origins_point_at_the_scalar() {
        let t = Template::parse("xx{{ nope() }}", Origin { pos: Pos::new(2, 4), exact: false });
        assert_eq!(t.unwrap_err().pos, Pos::new(2, 4));
    }

    #[test]
    fn numbers_are_json_numbers() {
        for ok in ["0", "-1", "12.5", "-0.25"] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in ["01", "1.", ".5", "-", "1e3", "+1", "0x1"] {
            assert!(!is_number(bad), "{bad}");
        }
    }
}
