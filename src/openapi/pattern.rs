//! A value for a schema's `pattern`, where the pattern is simple: literal
//! characters, classes (`[a-z0-9_]`, `[^@]`, `\d`, `\w`, `.`) and
//! quantifiers (`?`, `*`, `+`, `{n}`, `{n,m}`), anchored or not. Groups,
//! alternatives, look-arounds and back-references are not simple: the
//! caller says so and leaves the value to an example or a person.
//!
//! Runs that may hold letters and digits become `random_string(n)`, runs of
//! digits `random_int` holes (so values differ per request, and a unique
//! field does not repeat); any other class becomes fixed characters from it.

use super::sample::Text;

/// Longest value made for a pattern.
const MAX_LEN: usize = 256;
/// Length picked for an open repetition (`+`, `*`, `{n,}`) of a class: long
/// enough that random values do not repeat.
const OPEN_RUN: usize = 10;

#[derive(Debug, Clone)]
enum Atom {
    Char(char),
    /// Ranges of characters, possibly negated.
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

/// A value matching `pattern`, or `None` if it is not simple.
pub fn sample(pattern: &str) -> Option<Text> {
    let atoms = parse(pattern)?;
    let mut text = Text::default();
    let mut total = 0usize;
    for (atom, min, max) in atoms {
        let count = match &atom {
            // Literal characters as few times as allowed (an optional `s`
            // stays out), classes long enough to vary.
            Atom::Char(_) => min,
            Atom::Class { .. } => OPEN_RUN.clamp(min, max.unwrap_or(usize::MAX).max(min)),
        };
        total += count;
        if total > MAX_LEN {
            return None;
        }
        if count > 0 {
            text.append(run(&atom, count));
        }
    }
    Some(text)
}

fn run(atom: &Atom, count: usize) -> Text {
    match atom {
        Atom::Char(c) => Text::lit(c.to_string().repeat(count)),
        Atom::Class { ranges, negated } => {
            let has = |c: char| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated;
            let alnum = ('a'..='z').chain('A'..='Z').chain('0'..='9').all(has);
            let digits = ('0'..='9').all(has);
            if alnum {
                Text::hole(format!("random_string({count})"))
            } else if digits {
                digit_run(count)
            } else {
                // Fixed characters of the class, cycling through it.
                let members: Vec<char> = ('a'..='z')
                    .chain('A'..='Z')
                    .chain('0'..='9')
                    .chain((' '..='~').filter(|c| !c.is_ascii_alphanumeric()))
                    .filter(|c| has(*c))
                    .collect();
                let members = if members.is_empty() {
                    // Only non-ASCII characters: take each range's first.
                    ranges.iter().map(|(lo, _)| *lo).filter(|c| has(*c)).collect()
                } else {
                    members
                };
                match members.first() {
                    None => Text::default(),
                    Some(_) => Text::lit((0..count).map(|i| members[(i * 7) % members.len()]).collect::<String>()),
                }
            }
        }
    }
}

/// `count` random digits as two or more `random_int` holes (never a
/// single one, which would be sent as a JSON number where a string is
/// meant); one digit is a fixed `7`.
pub fn digit_run(count: usize) -> Text {
    if count <= 1 {
        return Text::lit("7".repeat(count));
    }
    let mut text = Text::default();
    let mut left = count;
    let pieces = count.div_ceil(18).max(2);
    for i in 0..pieces {
        let n = left / (pieces - i);
        left -= n;
        let low = 10u64.pow(n as u32 - 1);
        text.push_hole(format!("random_int({low}, {})", low * 10 - 1));
    }
    text
}

/// Atoms with their repetition bounds (`None`: open).
fn parse(pattern: &str) -> Option<Vec<(Atom, usize, Option<usize>)>> {
    let mut chars: Vec<char> = pattern.chars().collect();
    if chars.first() == Some(&'^') {
        chars.remove(0);
    }
    if chars.last() == Some(&'$') && !(chars.len() >= 2 && chars[chars.len() - 2] == '\\') {
        chars.pop();
    }
    let mut atoms = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let atom = match c {
            '\\' => {
                let e = *chars.get(i)?;
                i += 1;
                escape(e)?
            }
            '[' => {
                let (atom, next) = class(&chars, i)?;
                i = next;
                atom
            }
            '.' => Atom::Class { ranges: vec![('a', 'z'), ('A', 'Z'), ('0', '9')], negated: false },
            '(' | ')' | '|' | '^' | '$' | '*' | '+' | '?' | '{' | '}' => return None,
            c => Atom::Char(c),
        };
        let (min, max, next) = quantifier(&chars, i)?;
        i = next;
        atoms.push((atom, min, max));
    }
    Some(atoms)
}

fn escape(e: char) -> Option<Atom> {
    let digits = vec![('0', '9')];
    let word = vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
    let space = vec![(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')];
    Some(match e {
        'd' => Atom::Class { ranges: digits, negated: false },
        'D' => Atom::Class { ranges: digits, negated: true },
        'w' => Atom::Class { ranges: word, negated: false },
        'W' => Atom::Class { ranges: word, negated: true },
        's' => Atom::Class { ranges: space, negated: false },
        'S' => Atom::Class { ranges: space, negated: true },
        // Escaped punctuation is itself; letters and digits escape into
        // something else (\b, \1, \p{…}): not simple.
        c if c.is_ascii_punctuation() => Atom::Char(c),
        _ => return None,
    })
}

/// A `[…]` class starting after its `[`; returns the index after `]`.
fn class(chars: &[char], mut i: usize) -> Option<(Atom, usize)> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        i += 1;
        let lo = match c {
            ']' if !first => return Some((Atom::Class { ranges, negated }, i)),
            '\\' => {
                let e = *chars.get(i)?;
                i += 1;
                match escape(e)? {
                    Atom::Char(c) => c,
                    Atom::Class { ranges: inner, negated: false } => {
                        ranges.extend(inner);
                        first = false;
                        continue;
                    }
                    Atom::Class { negated: true, .. } => return None,
                }
            }
            '[' => return None,
            c => c,
        };
        first = false;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            let hi = *chars.get(i + 1)?;
            if hi == '\\' || hi < lo {
                return None;
            }
            i += 2;
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
}

/// The quantifier at `i`, if any: (min, max, index after it).
fn quantifier(chars: &[char], i: usize) -> Option<(usize, Option<usize>, usize)> {
    Some(match chars.get(i) {
        Some('?') => (0, Some(1), i + 1),
        Some('*') => (0, None, i + 1),
        Some('+') => (1, None, i + 1),
        Some('{') => {
            let close = i + chars[i..].iter().position(|c| *c == '}')?;
            let inner: String = chars[i + 1..close].iter().collect();
            let (min, max) = match inner.split_once(',') {
                None => {
                    let n = inner.trim().parse().ok()?;
                    (n, Some(n))
                }
                Some((lo, hi)) => {
                    let lo: usize = lo.trim().parse().ok()?;
                    let hi = if hi.trim().is_empty() { None } else { Some(hi.trim().parse().ok()?) };
                    if hi.is_some_and(|h| h < lo) {
                        return None;
                    }
                    (lo, hi)
                }
            };
            (min, max, close + 1)
        }
        _ => (1, Some(1), i),
    })
    // A lazy or possessive marker after a quantifier changes nothing here.
    .map(|(min, max, next)| {
        let next = if matches!(chars.get(next), Some('?' | '+')) && next > i { next + 1 } else { next };
        (min, max, next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::sample::Piece;

    fn literal(pattern: &str) -> String {
        sample(pattern).and_then(|t| t.as_literal()).unwrap_or_else(|| panic!("{pattern}: {:?}", sample(pattern)))
    }

    #[test]
    fn simple_patterns_give_matching_values() {
        assert_eq!(literal("^password$"), "password");
        assert_eq!(literal("^[a-z]{3}-[A-Z]{2}$").len(), 6);
        assert!(literal("^[a-z]{3}-[A-Z]{2}$").chars().nth(3) == Some('-'));
        let lower = literal("^[a-z]+$");
        assert!(lower.len() == OPEN_RUN && lower.chars().all(|c| c.is_ascii_lowercase()), "{lower}");
        let not_at = literal("^[^@ a-zA-Z0-9]+$");
        assert!(!not_at.contains('@') && !not_at.contains(' ') && !not_at.is_empty(), "{not_at}");
        assert_eq!(sample("^[^@ ]+$").unwrap().template(), format!("{{{{ random_string({OPEN_RUN}) }}}}"));
        assert_eq!(literal(r"^v\d?\.x$"), "v7.x");
        assert_eq!(literal(r"^a\.b$"), "a.b");
    }

    #[test]
    fn letter_and_digit_runs_vary() {
        let t = sample("^[A-Za-z0-9_]{4,20}$").unwrap();
        assert_eq!(t.0, vec![Piece::Hole(format!("random_string({OPEN_RUN})"))]);
        let t = sample(r"^\d{3}-\d{4}$").unwrap();
        assert_eq!(
            t.template(),
            "{{ random_int(1, 9) }}{{ random_int(10, 99) }}-{{ random_int(10, 99) }}{{ random_int(10, 99) }}"
        );
        assert_eq!(digit_run(36).0.len(), 2);
        assert_eq!(digit_run(40).0.len(), 3);
    }

    #[test]
    fn anything_else_is_not_simple() {
        for p in ["^(a|b)$", "a|b", r"\bword", r"(?=x)", r"\1", "[[:alpha:]]", "a{3,1}", "x{100000}", r"\p{L}"] {
            assert!(sample(p).is_none(), "{p}");
        }
    }
}
