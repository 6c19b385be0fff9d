//! The capture step: after a successful answer, values taken out of its
//! JSON body (RFC 6901 pointers), headers or body text (a regular
//! expression's group) go into pools, or into the variables of the journey
//! instance that sent it. A value that is missing, not a string or number,
//! too long, or unsafe is counted and dropped; nothing an answer holds can
//! fail the run.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::Workload;
use super::compile::{Capture, RequestId, Store};
use super::locals::Locals;
use super::model::CaptureSource;
use super::pool::{self, Refusal};
use super::render::RunState;

/// What the captures of one answer came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureReport {
    /// Values stored in pools.
    pub stored: u32,
    /// JSON captures of an answer whose body was not kept (over the body
    /// cap) or empty.
    pub no_body: u32,
    /// JSON captures of a body that is not JSON.
    pub not_json: u32,
    /// The pointer or header found nothing.
    pub missing: u32,
    /// A value was found and refused (see [`Refusal`]).
    pub refused: u32,
    /// Why the last refused value was refused, for a log line (never the value).
    pub last_refusal: Option<Refusal>,
}

impl CaptureReport {
    pub fn failed(&self) -> u32 {
        self.no_body + self.not_json + self.missing + self.refused
    }
}

impl Workload {
    /// Whether answers to `id` must hand their body back: a JSON capture
    /// reads it. Without captures, the body need not be kept at all.
    pub fn wants_body(&self, id: RequestId) -> bool {
        self.compiled.requests[id.index()]
            .captures
            .iter()
            .any(|c| matches!(c.source, CaptureSource::Json(_) | CaptureSource::Body))
            || self.refreshes(id)
    }

    /// The answer headers the captures of `id` read.
    pub fn wanted_headers(&self, id: RequestId) -> impl Iterator<Item = &str> {
        self.compiled.requests[id.index()].captures.iter().filter_map(|c| match &c.source {
            CaptureSource::Header(name) => Some(name.as_str()),
            CaptureSource::Json(_) | CaptureSource::Body => None,
        })
    }

    /// Whether `status` counts as success for `id` (default: any 2xx).
    pub fn is_success(&self, id: RequestId, status: u16) -> bool {
        self.compiled.requests[id.index()].success.contains(status)
    }

    /// Takes the captures of request `id` (the one sent, after fallbacks)
    /// out of its answer. Nothing is taken from an answer that is not a
    /// success. `headers` are the answer's, in any case; `body` is the
    /// answer's body when it was kept.
    pub fn capture(
        &self,
        id: RequestId,
        status: u16,
        headers: &[(&str, &[u8])],
        body: Option<&[u8]>,
        state: &mut RunState,
    ) -> CaptureReport {
        self.capture_in(id, status, headers, body, state, None)
    }

    /// [`Workload::capture`] for a journey step: captures into variables
    /// go into the instance's `locals`.
    pub fn capture_in(
        &self,
        id: RequestId,
        status: u16,
        headers: &[(&str, &[u8])],
        body: Option<&[u8]>,
        state: &mut RunState,
        mut locals: Option<&mut Locals>,
    ) -> CaptureReport {
        let request = &self.compiled.requests[id.index()];
        let mut report = CaptureReport::default();
        if request.captures.is_empty() || !request.success.contains(status) {
            return report;
        }
        for capture in &request.captures {
            let mut into = Into { state: &mut *state, locals: locals.as_deref_mut(), report: &mut report };
            match &capture.source {
                CaptureSource::Header(name) => match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                    None => into.report.missing += 1,
                    Some((_, value)) => into.store(capture, value.trim_ascii(), false),
                },
                CaptureSource::Body => match body.filter(|b| !b.is_empty()) {
                    None => into.report.no_body += 1,
                    Some(body) => into.store(capture, body, false),
                },
                CaptureSource::Json(_) => {
                    let Some(body) = body.filter(|b| !b.is_empty()) else {
                        into.report.no_body += 1;
                        continue;
                    };
                    match find(body, &capture.pointer) {
                        None => into.report.not_json += 1,
                        Some(Found::Missing) => into.report.missing += 1,
                        Some(Found::Other) => refuse(Refusal::NotAValue, into.report),
                        Some(Found::Text(text)) => into.store(capture, text.as_bytes(), false),
                        Some(Found::NumberText(text)) => into.store(capture, text.as_bytes(), true),
                        Some(Found::Number(number)) => {
                            let mut text = [0u8; 40];
                            let mut cursor = std::io::Cursor::new(&mut text[..]);
                            match write!(cursor, "{number}") {
                                Ok(()) => {
                                    let len = usize::try_from(cursor.position()).unwrap_or(0);
                                    into.store(capture, &text[..len], true);
                                }
                                Err(_) => refuse(Refusal::TooLong, into.report),
                            }
                        }
                    }
                }
            }
        }
        report
    }
}

/// Where the captures of one answer store.
struct Into<'a> {
    state: &'a mut RunState,
    locals: Option<&'a mut Locals>,
    report: &'a mut CaptureReport,
}

impl Into<'_> {
    /// Keeps `text` (after the capture's regex, if it has one) where the
    /// capture says, if it passes the capture's rules.
    fn store(&mut self, capture: &Capture, text: &[u8], number: bool) {
        let (text, number) = match &capture.regex {
            None => (text, number),
            Some(regex) => {
                // A regex reads text; the group's text is kept as text.
                let Ok(haystack) = std::str::from_utf8(text) else {
                    refuse(Refusal::ControlCharacter, self.report);
                    return;
                };
                match regex.0.captures(haystack).and_then(|c| c.get(1)) {
                    Some(group) => (&text[group.start()..group.end()], false),
                    None => {
                        self.report.missing += 1;
                        return;
                    }
                }
            }
        };
        match pool::accept_path(text, capture.max_len, capture.url_safe, capture.path) {
            Ok(()) => {
                match capture.store {
                    Store::Pool(pool) => self.state.push(pool, text, number),
                    Store::Var(slot) => match self.locals.as_deref_mut() {
                        Some(locals) => locals.set(slot, text, number),
                        // Only steps capture into variables, and only with their instance.
                        None => return,
                    },
                }
                self.report.stored += 1;
            }
            Err(refusal) => refuse(refusal, self.report),
        }
    }
}

fn refuse(why: Refusal, report: &mut CaptureReport) {
    report.refused += 1;
    report.last_refusal = Some(why);
}

/// What a JSON pointer found in a body.
#[derive(Debug, PartialEq)]
pub(super) enum Found<'de> {
    Missing,
    Text(Cow<'de, str>),
    Number(serde_json::Number),
    /// A number as the answer wrote it.
    NumberText(&'de str),
    /// Null, a boolean, an object or a list.
    Other,
}

/// The value at `pointer` in `body`, or `None` if the body is not JSON.
/// Found while parsing: everything off the pointer's path is skipped, not
/// built, so a capture costs one pass and (usually) no allocation.
pub(super) fn find<'de>(body: &'de [u8], pointer: &[String]) -> Option<Found<'de>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = AtPointer(pointer).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(found)
}

struct AtPointer<'p>(&'p [String]);

impl<'de> DeserializeSeed<'de> for AtPointer<'_> {
    type Value = Found<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AtPointer<'_> {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(if self.0.is_empty() { Found::Text(Cow::Borrowed(v)) } else { Found::Missing })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(if self.0.is_empty() { Found::Text(Cow::Owned(v.to_string())) } else { Found::Missing })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(if self.0.is_empty() { Found::Number(v.into()) } else { Found::Missing })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if self.0.is_empty() { Found::Number(v.into()) } else { Found::Missing })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(match serde_json::Number::from_f64(v) {
            Some(n) if self.0.is_empty() => Found::Number(n),
            _ if self.0.is_empty() => Found::Other,
            _ => Found::Missing,
        })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(if self.0.is_empty() { Found::Other } else { Found::Missing })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(if self.0.is_empty() { Found::Other } else { Found::Missing })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((token, rest)) = self.0.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Found::Other);
        };
        // The last of duplicate keys counts, as when the body is read whole.
        let mut found = Found::Missing;
        while let Some(matches) = map.next_key_seed(KeyIs(token))? {
            if matches && rest.is_empty() {
                found = leaf(map.next_value::<&'de RawValue>()?);
            } else if matches {
                found = map.next_value_seed(AtPointer(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let index = self.0.split_first().and_then(|(token, rest)| Some((array_index(token)?, rest)));
        let mut found = if self.0.is_empty() { Found::Other } else { Found::Missing };
        let mut i = 0usize;
        loop {
            match index {
                Some((wanted, [])) if i == wanted => match seq.next_element::<&'de RawValue>()? {
                    Some(raw) => found = leaf(raw),
                    None => break,
                },
                Some((wanted, rest)) if i == wanted => match seq.next_element_seed(AtPointer(rest))? {
                    Some(value) => found = value,
                    None => break,
                },
                _ => {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                }
            }
            i += 1;
        }
        Ok(found)
    }
}

/// The value a pointer ends on, read from its own text: a number keeps the
/// digits the answer wrote (an id above 2^64 must not turn into
/// `1.8446744073709552e19`).
fn leaf<'de>(raw: &'de RawValue) -> Found<'de> {
    let text = raw.get();
    match text.as_bytes().first() {
        // Borrowed unless it has escapes.
        Some(b'"') => match serde_json::from_str::<&'de str>(text) {
            Ok(s) => Found::Text(Cow::Borrowed(s)),
            Err(_) => serde_json::from_str::<String>(text).map_or(Found::Other, |s| Found::Text(Cow::Owned(s))),
        },
        Some(b'-' | b'0'..=b'9') => Found::NumberText(text),
        _ => Found::Other,
    }
}

/// RFC 6901 array index: `0`, or digits without a leading zero.
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// Reads a map key and says whether it is `self.0`.
struct KeyIs<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::compile::pointer_tokens;

    /// The pointer's value read as it streams by must be what reading the
    /// whole body and following the pointer finds.
    fn same_as_whole(body: &str, pointer: &str) {
        let streamed = find(body.as_bytes(), &pointer_tokens(pointer));
        let whole: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let expected = whole.map(|v| match v.pointer(pointer) {
            None => Found::Missing,
            Some(serde_json::Value::String(s)) => Found::Text(Cow::Owned(s.clone())),
            Some(serde_json::Value::Number(n)) => Found::Number(n.clone()),
            Some(_) => Found::Other,
        });
        // A number found as the answer wrote it is the same number.
        let text = |f: &Option<Found<'_>>| match f {
            Some(Found::NumberText(t)) => match serde_json::from_str::<serde_json::Number>(t) {
                Ok(n) => format!("{:?}", Some(Found::Number(n))),
                Err(_) => format!("{f:?}"),
            },
            _ => format!("{f:?}").replace("Borrowed", "Owned"),
        };
        assert_eq!(text(&streamed), text(&expected), "{body} at {pointer:?}");
    }

    #[test]
    fn numbers_keep_the_digits_the_answer_wrote() {
        let big = br#"{"id":1,"status":"created","id":18446744073709551616}"#;
        assert_eq!(find(big, &pointer_tokens("/id")), Some(Found::NumberText("18446744073709551616")));
        assert_eq!(
            find(br#"[7, 12345678901234567890123]"#, &pointer_tokens("/1")),
            Some(Found::NumberText("12345678901234567890123"))
        );
        assert_eq!(
            find(br#"{"a":{"id":"o\u0072d"}}"#, &pointer_tokens("/a/id")),
            Some(Found::Text(Cow::Borrowed("ord")))
        );
    }

    #[test]
    fn pointers_find_what_reading_the_whole_body_finds() {
        let bodies = [
            r#"{"id": 42, "status": "created"}"#,
            r#"{"status": "created", "id": "ord-7"}"#,
            r#"{"id": -3.5e2}"#,
            r#"{"id": 1.0}"#,
            r#"{"id": 18446744073709551615}"#,
            r#"{"id": null, "x": [1, {"id": 2}]}"#,
            r#"{"data": [{"id": "a"b"}, {"id": 7}], "a/b": {"m~n": true}}"#,
            r#"{"id": 1, "id": 2}"#,
            r#"[10, 20, {"id": "x"}]"#,
            r#""just text""#,
            r#"{"": {"": 5}}"#,
            r#"{"id": 1} trailing"#,
            r#"not json"#,
            r#"{"id": {"deep": [[[[1]]]]}}"#,
        ];
        let pointers = [
            "",
            "/id",
            "/data/0/id",
            "/data/1/id",
            "/data/01/id",
            "/data/-",
            "/a~1b/m~0n",
            "/2/id",
            "/0",
            "/x/1/id",
            "//",
        ];
        for body in bodies {
            for pointer in pointers {
                same_as_whole(body, pointer);
            }
        }
    }

    #[test]
    fn deep_bodies_never_overflow_the_stack() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // Off the pointer's path, nesting is skipped without recursing.
        assert_eq!(find(deep.as_bytes(), &pointer_tokens("/0")), Some(Found::Other));
        // Along it, serde_json's depth limit ends the walk: not JSON to us.
        assert_eq!(find(deep.as_bytes(), &pointer_tokens(&"/0".repeat(1000))), None);
    }
}
