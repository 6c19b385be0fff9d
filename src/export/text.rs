//! Writing values into the three script languages: string literals that
//! no workload text can break out of, one-line comments, numbers and
//! durations as each tool reads them.

use std::fmt::Write as _;

/// A JavaScript string literal. JSON's escapes plus U+2028/U+2029 (line
/// terminators in older JavaScript) and every control character.
pub fn js_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Python string literal (double-quoted, UTF-8 source).
pub fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A YAML double-quoted scalar: only printable characters stay as they
/// are (YAML 1.2 §5.1), everything else is an escape.
pub fn yaml_str(s: &str) -> String {
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

/// Text made safe for a one-line comment: control characters (a newline
/// would end the comment) become spaces.
pub fn comment_text(s: &str) -> String {
    s.chars().map(|c| if c.is_control() || c == '\u{2028}' || c == '\u{2029}' { ' ' } else { c }).collect()
}

/// Writes `text` as comment lines starting with `prefix` (`// `, `# `),
/// wrapped at about 100 columns.
pub fn comment(out: &mut String, indent: &str, prefix: &str, text: &str) {
    let text = comment_text(text);
    let width = 100usize.saturating_sub(indent.len() + prefix.len()).max(40);
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            let _ = writeln!(out, "{indent}{prefix}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    let _ = writeln!(out, "{indent}{prefix}{line}");
}

/// A number as people write it: `50`, `2.5`, `0.001`.
pub fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    let rounded = (x * 1e9).round() / 1e9;
    let x = if rounded.is_finite() && (rounded - x).abs() < 1e-9 * x.abs().max(1.0) { rounded } else { x };
    format!("{x}")
}

/// Seconds as a Go-style duration (k6): `60s`, `1.25s`, `250ms`.
pub fn go_duration(secs: f64) -> String {
    let ms = (secs * 1000.0).round();
    if ms % 1000.0 == 0.0 { format!("{}s", num(ms / 1000.0)) } else { format!("{}ms", num(ms)) }
}

/// Seconds as people read them: `60 s`, `1.5 s`.
pub fn secs(secs: f64) -> String {
    format!("{} s", num((secs * 1000.0).round() / 1000.0))
}

/// A JSON pointer's reference tokens, unescaped (RFC 6901).
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
}

/// A Rust regex as a JavaScript `RegExp` source and flags: leading inline
/// flags (`(?i)`, `(?s)`, `(?m)`) become flags, `(?P<name>` becomes `(?<name>`.
pub fn js_regex(pattern: &str) -> (String, String) {
    let mut source = pattern;
    let mut flags = String::new();
    if let Some(rest) = source.strip_prefix("(?")
        && let Some(end) = rest.find(')')
        && end > 0
        && rest[..end].chars().all(|f| matches!(f, 'i' | 's' | 'm'))
    {
        for f in rest[..end].chars() {
            if !flags.contains(f) {
                flags.push(f);
            }
        }
        source = &rest[end + 1..];
    }
    let mut flags: Vec<char> = flags.chars().collect();
    flags.sort_unstable();
    (source.replace("(?P<", "(?<"), flags.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_literals_escape_everything_that_could_end_them() {
        let hostile = "a\"b\\c\nd\re\tf\u{0}g\u{7f}h\u{85}i\u{2028}j\u{2029}k'l`m${n}</script>é😀";
        let js = js_str(hostile);
        // JSON is a subset of JavaScript string syntax once U+2028/9 are escaped: it reads back.
        assert_eq!(serde_json::from_str::<String>(&js).unwrap(), hostile);
        assert!(!js.contains('\n') && !js.contains('\u{2028}'));
        let py = py_str(hostile);
        assert!(!py.contains('\n') && !py.contains('\r') && !py.contains('\u{85}'));
        assert!(py.starts_with('"') && py.ends_with('"'));
        let yaml = yaml_str(hostile);
        assert!(!yaml.contains('\n') && !yaml.contains('\u{0}') && !yaml.contains('\u{85}'));
        assert!(yaml.contains("\\u0000") && yaml.contains("\\u2028"));
    }

    #[test]
    fn comments_stay_on_their_lines() {
        let mut out = String::new();
        comment(&mut out, "  ", "// ", "one\ntwo\r\nthree\u{2028}four");
        assert_eq!(out, "  // one two three four\n");
        let mut out = String::new();
        comment(&mut out, "", "# ", &"word ".repeat(40));
        assert!(out.lines().count() > 1 && out.lines().all(|l| l.starts_with("# ") && l.len() <= 100), "{out}");
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(num(50.0), "50");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(-0.0), "0");
        assert_eq!(go_duration(60.0), "60s");
        assert_eq!(go_duration(1.25), "1250ms");
        assert_eq!(secs(30.0), "30 s");
        assert_eq!(pointer_tokens("/a~1b/0"), ["a/b", "0"]);
        assert_eq!(pointer_tokens(""), Vec::<String>::new());
    }

    #[test]
    fn rust_inline_flags_become_javascript_flags() {
        assert_eq!(js_regex("(?i)id=(\\d+)"), ("id=(\\d+)".into(), "i".into()));
        assert_eq!(js_regex("(?si)a(?P<x>b)"), ("a(?<x>b)".into(), "is".into()));
        assert_eq!(js_regex("(?:a)(b)"), ("(?:a)(b)".into(), String::new()));
        assert_eq!(js_regex("(b)"), ("(b)".into(), String::new()));
    }
}
