//! The derived workload as YAML text: an ordinary workload file, each
//! request under a comment saying where it came from. Every string is
//! written double-quoted and escaped, every key too, so no text from the
//! document can change the file's structure.

use std::fmt::Write as _;

use super::sample::{Piece, Sample, Text};
use crate::workload::Method;

/// A request as written.
#[derive(Debug, Clone)]
pub struct Request {
    pub comment: Vec<String>,
    pub name: String,
    /// `None` for a setup request.
    pub weight: Option<u32>,
    pub method: Method,
    /// Template source.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
    pub success: Option<String>,
    pub captures: Vec<Capture>,
    pub fallback: Option<String>,
}

/// A value taken from a JSON answer: into a pool, or (in a journey) into
/// the instance's own variable.
#[derive(Debug, Clone)]
pub struct Capture {
    /// `pool` or `var`.
    pub key: &'static str,
    pub target: String,
    pub pointer: String,
}

impl Capture {
    pub fn pool(pool: &str, pointer: &str) -> Capture {
        Capture { key: "pool", target: pool.to_string(), pointer: pointer.to_string() }
    }

    pub fn var(var: &str, pointer: &str) -> Capture {
        Capture { key: "var", target: var.to_string(), pointer: pointer.to_string() }
    }
}

/// A journey as written.
#[derive(Debug, Clone)]
pub struct Journey {
    pub comment: Vec<String>,
    pub name: String,
    pub weight: u32,
    pub steps: Vec<Request>,
}

#[derive(Debug, Clone)]
pub enum Body {
    /// A JSON object or list, written as YAML; the media type when it is
    /// not `application/json`.
    Json(Sample, Option<String>),
    /// Text sent as written, with its media type.
    Text(String, String),
}

/// A pool as written.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub size: usize,
    pub comment: String,
}

/// The whole file.
#[derive(Debug, Clone, Default)]
pub struct File {
    pub header: Vec<String>,
    pub pools: Vec<Pool>,
    pub setup_every_secs: Option<u64>,
    pub setup: Vec<Request>,
    pub requests: Vec<Request>,
    pub journeys: Vec<Journey>,
}

/// A YAML double-quoted scalar: printable characters as they are,
/// everything else escaped (YAML 1.2 §5.1).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}') => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A mapping key: bare when it is a plain word YAML reads as text,
/// quoted otherwise.
pub fn key(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain { s.to_string() } else { quoted(s) }
}

/// One comment line: no line breaks or other control characters, at most
/// about 160 characters.
pub fn comment_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') { ' ' } else { c })
        .take(160)
        .collect();
    if s.chars().count() > 160 {
        out.push('…');
    }
    out
}

impl File {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            let line = comment_text(line);
            if line.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {line}");
            }
        }
        if !self.pools.is_empty() {
            out.push_str("\npools:\n");
            for pool in &self.pools {
                let _ = writeln!(out, "  # {}", comment_text(&pool.comment));
                let _ = writeln!(out, "  {}:\n    size: {}", pool.name, pool.size);
            }
        }
        if !self.setup.is_empty() {
            out.push_str("\nsetup:\n");
            if let Some(every) = self.setup_every_secs {
                let _ = writeln!(out, "  every_secs: {every}");
            }
            out.push_str("  requests:\n");
            for request in &self.setup {
                request.render("    ", &mut out);
            }
        }
        out.push_str("\nrequests:\n");
        for (i, request) in self.requests.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            request.render("  ", &mut out);
        }
        if !self.journeys.is_empty() {
            out.push_str("\njourneys:\n");
            for (i, journey) in self.journeys.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                for line in &journey.comment {
                    let _ = writeln!(out, "  # {}", comment_text(line));
                }
                let _ = writeln!(out, "  - name: {}\n    weight: {}\n    steps:", journey.name, journey.weight);
                for step in &journey.steps {
                    step.render("      ", &mut out);
                }
            }
        }
        out
    }
}

impl Request {
    fn render(&self, indent: &str, out: &mut String) {
        for line in &self.comment {
            let _ = writeln!(out, "{indent}# {}", comment_text(line));
        }
        let _ = writeln!(out, "{indent}- name: {}", self.name);
        let inner = format!("{indent}  ");
        if let Some(weight) = self.weight {
            let _ = writeln!(out, "{inner}weight: {weight}");
        }
        let _ = writeln!(out, "{inner}method: {}", self.method);
        let _ = writeln!(out, "{inner}path: {}", quoted(&self.path));
        for (key, entries) in [("query", &self.query), ("headers", &self.headers)] {
            if entries.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{inner}{key}:");
            for (name, value) in entries {
                let _ = writeln!(out, "{inner}  {}: {}", self::key(name), quoted(value));
            }
        }
        match &self.body {
            None => {}
            Some(Body::Json(sample, content_type)) => {
                if let Some(ct) = content_type {
                    let _ = writeln!(out, "{inner}content_type: {}", quoted(ct));
                }
                let _ = write!(out, "{inner}body:");
                json(sample, &format!("{inner}  "), out);
            }
            Some(Body::Text(text, content_type)) => {
                let _ = writeln!(out, "{inner}content_type: {}", quoted(content_type));
                let _ = writeln!(out, "{inner}body: {}", quoted(text));
            }
        }
        if let Some(success) = &self.success {
            let _ = writeln!(out, "{inner}success: {success}");
        }
        if !self.captures.is_empty() {
            let _ = writeln!(out, "{inner}capture:");
            for capture in &self.captures {
                let _ = writeln!(out, "{inner}  - {}: {}", capture.key, capture.target);
                let _ = writeln!(out, "{inner}    json: {}", quoted(&capture.pointer));
            }
        }
        if let Some(fallback) = &self.fallback {
            let _ = writeln!(out, "{inner}fallback: {fallback}");
        }
    }
}

/// A value after `key:` (the line already written up to the colon): a
/// scalar on the same line, a mapping or list on the lines below.
fn json(sample: &Sample, indent: &str, out: &mut String) {
    match sample {
        Sample::Null => out.push_str(" null\n"),
        Sample::Bool(b) => {
            let _ = writeln!(out, " {b}");
        }
        Sample::Number(n) => {
            let _ = writeln!(out, " {n}");
        }
        Sample::Text(text) => {
            let _ = writeln!(out, " {}", quoted(&text.template()));
        }
        Sample::Array(items) if items.is_empty() => out.push_str(" []\n"),
        Sample::Object(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Sample::Array(items) => {
            out.push('\n');
            for item in items {
                let _ = write!(out, "{indent}-");
                json(item, &format!("{indent}  "), out);
            }
        }
        Sample::Object(entries) => {
            out.push('\n');
            for (key, value) in entries {
                let _ = write!(out, "{indent}{}:", self::key(key));
                json(value, &format!("{indent}  "), out);
            }
        }
    }
}

/// A JSON scalar body as text: strings quoted and escaped around their holes.
pub fn json_text(sample: &Sample) -> Option<String> {
    Some(match sample {
        Sample::Null => "null".to_string(),
        Sample::Bool(b) => b.to_string(),
        Sample::Number(n) => n.clone(),
        Sample::Text(text) if matches!(text.0.as_slice(), [Piece::Hole(call)] if call.starts_with("random_int(")) => {
            text.template()
        }
        Sample::Text(text) => {
            let mut escaped = Text::default();
            for piece in &text.0 {
                match piece {
                    Piece::Lit(l) => {
                        let json = serde_json::to_string(l).ok()?;
                        escaped.push_lit(json.strip_prefix('"')?.strip_suffix('"')?);
                    }
                    Piece::Hole(h) => escaped.push_hole(h.clone()),
                }
            }
            format!("\"{}\"", escaped.template())
        }
        Sample::Array(_) | Sample::Object(_) => return None,
    })
}

/// Characters a path may hold as they are (RFC 3986 `pchar` and `/`).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/".contains(c)
}

/// Literal path text, percent-encoded where it must be.
pub fn path_literal(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_path_char(c) && (keep_slash || c != '/') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A path value: literal pieces percent-encoded (a `/` too: it is one
/// segment), holes as they are (trafficgen encodes their values).
pub fn path_value(text: &Text) -> String {
    let mut encoded = Text::default();
    for piece in &text.0 {
        match piece {
            Piece::Lit(l) => encoded.push_lit(&path_literal(l, false)),
            Piece::Hole(h) => encoded.push_hole(h.clone()),
        }
    }
    encoded.template()
}

/// `a=1&b=x` for a form body: literal pieces percent-encoded, holes as
/// they are (trafficgen encodes their values in a form body).
pub fn form(fields: &[(String, Text)]) -> String {
    let mut out = Text::default();
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_lit("&");
        }
        out.push_lit(&form_encode(name));
        out.push_lit("=");
        for piece in &value.0 {
            match piece {
                Piece::Lit(l) => out.push_lit(&form_encode(l)),
                Piece::Hole(h) => out.push_hole(h.clone()),
            }
        }
    }
    out.template()
}

fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Header values: no control characters (a line break would end the
/// header; the workload refuses them).
pub fn header_value(text: &Text) -> String {
    let mut clean = Text::default();
    for piece in &text.0 {
        match piece {
            Piece::Lit(l) => {
                clean.push_lit(&l.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>())
            }
            Piece::Hole(h) => clean.push_hole(h.clone()),
        }
    }
    clean.template()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_so_nothing_breaks_out() {
        assert_eq!(quoted("a\"b\\c\nd: e # f"), r#""a\"b\\c\nd: e # f""#);
        assert_eq!(comment_text("x\ny"), "x y");
        assert_eq!(path_literal("/a b/ü/{x}", true), "/a%20b/%C3%BC/%7Bx%7D");
        assert_eq!(path_value(&Text::lit("a/b")), "a%2Fb");
        let mut t = Text::lit("a b&");
        t.push_hole("uuid()");
        assert_eq!(form(&[("x y".into(), t)]), "x%20y=a%20b%26{{ uuid() }}");
    }

    #[test]
    fn json_scalars_become_json_text() {
        assert_eq!(json_text(&Sample::Text(Text::lit("a\"b"))).unwrap(), r#""a\"b""#);
        assert_eq!(json_text(&Sample::Text(Text::lit("say \"hi\""))).unwrap(), r#""say \"hi\"""#);
        assert_eq!(json_text(&Sample::Text(Text::hole("random_int(1, 2)"))).unwrap(), "{{ random_int(1, 2) }}");
        let mut t = Text::lit("{{x");
        t.push_hole("uuid()");
        assert_eq!(json_text(&Sample::Text(t)).unwrap(), "\"{{ '{{' }}x{{ uuid() }}\"");
    }
}
