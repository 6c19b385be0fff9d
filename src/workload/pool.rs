//! Pools: bounded rings of values captured from answers (or given in the
//! file), shared by every request of a workload. The order-id ring
//! generalised: the oldest value falls out when a new one comes in and its
//! buffer is reused, so a full pool stores a capture without allocating and
//! memory is fixed however long the run.
//!
//! Values are never printed (`Debug` shows only their length): a pool may
//! hold a login token.

use std::collections::VecDeque;
use std::fmt;

/// One stored value: text, and whether it came as a JSON number (then it is
/// written as a bare number where it fills a whole JSON value).
#[derive(Clone, PartialEq, Eq)]
pub struct PoolValue {
    text: Vec<u8>,
    number: bool,
}

impl PoolValue {
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    pub fn is_number(&self) -> bool {
        self.number
    }
}

impl fmt::Debug for PoolValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolValue(<{} bytes>)", self.text.len())
    }
}

/// The last `capacity` values put in.
#[derive(Debug, Clone)]
pub struct Ring {
    values: VecDeque<PoolValue>,
    capacity: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        let capacity = capacity.max(1);
        // Grown as values come, not reserved up front: a big, rarely filled
        // pool costs nothing.
        Ring { values: VecDeque::new(), capacity }
    }

    /// Stores a value (already accepted), dropping the oldest when full.
    pub fn push(&mut self, text: &[u8], number: bool) {
        let mut value = if self.values.len() >= self.capacity {
            self.values.pop_front().unwrap_or(PoolValue { text: Vec::new(), number })
        } else {
            PoolValue { text: Vec::with_capacity(text.len()), number }
        };
        value.text.clear();
        value.text.extend_from_slice(text);
        value.number = number;
        self.values.push_back(value);
    }

    /// The index a roll lands on (`roll % len`), or `None` while empty.
    pub fn pick(&self, roll: usize) -> Option<usize> {
        (!self.values.is_empty()).then(|| roll % self.values.len())
    }

    pub fn get(&self, index: usize) -> Option<&PoolValue> {
        self.values.get(index)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Takes the value at `index` out (a `take(pool)`): the newest value
    /// moves into its place, so this costs the same at any size. The
    /// eviction order is then only nearly oldest-first.
    pub fn take(&mut self, index: usize) {
        let _ = self.values.swap_remove_back(index);
    }

    /// Changes the capacity, keeping the newest values.
    pub fn resize(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.values.len() > self.capacity {
            self.values.pop_front();
        }
    }

    /// Changes the capacity, keeping the newest values, and hands back a
    /// ring of those that no longer fit (for the caller to free where it
    /// suits it; nothing is copied).
    pub fn cut_to(&mut self, capacity: usize) -> Ring {
        self.capacity = capacity.max(1);
        let excess = self.values.len().saturating_sub(self.capacity);
        let cut: VecDeque<PoolValue> = self.values.drain(..excess).collect();
        if excess > 0 && self.values.capacity() > 2 * self.capacity {
            self.values.shrink_to_fit();
        }
        Ring { values: cut, capacity: excess.max(1) }
    }

    /// Keeps only the values `keep` says yes to.
    pub fn retain(&mut self, keep: impl FnMut(&PoolValue) -> bool) {
        self.values.retain(keep);
    }

    /// The values, oldest first (for carrying them into a new workload).
    pub fn iter(&self) -> impl Iterator<Item = &PoolValue> {
        self.values.iter()
    }
}

/// Why a captured value was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a string or a number (null, a boolean, an object, a list).
    NotAValue,
    Empty,
    TooLong,
    /// CR, LF or another control character: it could inject a header.
    ControlCharacter,
    /// `url_safe` was asked for and it has other characters.
    NotUrlSafe,
    /// `.` or `..`: a path segment that would move up the path.
    DotSegment,
    /// `path` was asked for and it is not a safe absolute path.
    NotAPath,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotAValue => "not_a_value",
            Refusal::Empty => "empty",
            Refusal::TooLong => "too_long",
            Refusal::ControlCharacter => "control_character",
            Refusal::NotUrlSafe => "not_url_safe",
            Refusal::DotSegment => "dot_segment",
            Refusal::NotAPath => "not_a_path",
        }
    }
}

/// Whether a captured text may be kept; `path`: it must be a safe path
/// (see [`is_safe_path`]).
pub fn accept_path(text: &[u8], max_len: usize, url_safe: bool, path: bool) -> Result<(), Refusal> {
    accept(text, max_len, url_safe)?;
    if path && !is_safe_path(text) {
        return Err(Refusal::NotAPath);
    }
    Ok(())
}

/// Whether a captured text may go into a pool.
pub fn accept(text: &[u8], max_len: usize, url_safe: bool) -> Result<(), Refusal> {
    if text.is_empty() {
        return Err(Refusal::Empty);
    }
    if text.len() > max_len {
        return Err(Refusal::TooLong);
    }
    if text == b"." || text == b".." {
        return Err(Refusal::DotSegment);
    }
    if url_safe && !text.iter().all(|b| is_unreserved(*b)) {
        return Err(Refusal::NotUrlSafe);
    }
    // Control characters, also C1 ones in UTF-8 (U+0080…U+009F) and DEL.
    let text = std::str::from_utf8(text).map_err(|_| Refusal::ControlCharacter)?;
    if text.chars().any(char::is_control) {
        return Err(Refusal::ControlCharacter);
    }
    Ok(())
}

/// Whether a captured value may go into a request's path as it is (a
/// `Location` to follow): an absolute path, `/` then segments of RFC 3986
/// path characters (`%` only before two hex digits), no empty segment (no
/// `//`, which some servers read as a host), no `.` or `..` segment
/// however written (`%2e`), no query or fragment. An answer cannot make us
/// leave the target's path, split the request line or add to it.
pub fn is_safe_path(text: &[u8]) -> bool {
    if text.first() != Some(&b'/') || text.len() < 2 {
        return false;
    }
    let pchar = |b: u8| is_unreserved(b) || b"!$&'()*+,;=:@%".contains(&b);
    if !text.iter().all(|b| *b == b'/' || pchar(*b)) {
        return false;
    }
    let percent_ok = text.iter().enumerate().filter(|(_, b)| **b == b'%').all(|(i, _)| {
        text.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && text.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    });
    if !percent_ok {
        return false;
    }
    text[1..].split(|b| *b == b'/').enumerate().all(|(i, segment)| {
        let last = i == text[1..].iter().filter(|b| **b == b'/').count();
        // A trailing slash leaves one empty last segment: allowed.
        if segment.is_empty() {
            return last;
        }
        let mut dots = 0;
        let mut rest = segment;
        while !rest.is_empty() {
            if rest[0] == b'.' {
                rest = &rest[1..];
            } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2].eq_ignore_ascii_case(&b'e') {
                rest = &rest[3..];
            } else {
                return true;
            }
            dots += 1;
        }
        dots > 2
    })
}

/// RFC 3986 unreserved: the characters never percent-encoded.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(ring: &Ring) -> Vec<String> {
        ring.iter().map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap()).collect()
    }

    #[test]
    fn keeps_only_the_newest_values_and_reuses_their_buffers() {
        let mut ring = Ring::new(3);
        for n in 1..=5 {
            ring.push(n.to_string().as_bytes(), true);
        }
        assert_eq!(texts(&ring), ["3", "4", "5"]);
        let before: Vec<*const u8> = ring.iter().map(|v| v.as_bytes().as_ptr()).collect();
        ring.push(b"6", false);
        let after: Vec<*const u8> = ring.iter().map(|v| v.as_bytes().as_ptr()).collect();
        assert_eq!(after[2], before[0], "the evicted value's buffer holds the new one");
        assert!(!ring.get(2).unwrap().is_number());
    }

    #[test]
    fn picks_wrap_around_and_an_empty_ring_has_nothing() {
        let mut ring = Ring::new(4);
        assert_eq!(ring.pick(42), None);
        ring.push(b"a", false);
        ring.push(b"b", false);
        assert_eq!(ring.pick(5), Some(1));
        assert_eq!(ring.pick(usize::MAX), Some(1));
    }

    #[test]
    fn resizing_keeps_the_newest() {
        let mut ring = Ring::new(5);
        for v in [b"a", b"b", b"c", b"d"] {
            ring.push(v, false);
        }
        ring.resize(2);
        assert_eq!(texts(&ring), ["c", "d"]);
        assert_eq!(ring.capacity(), 2);
    }

    #[test]
    fn only_safe_absolute_paths_pass_as_paths() {
        for ok in ["/api/v1/users/12", "/users/12/", "/a%20b/c", "/x:y@z/~a_b-c.d", "/...", "/a.b/..c"] {
            assert!(is_safe_path(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "/",
            "users/12",
            "//evil.example/x",
            "/a//b",
            "/a/../admin",
            "/a/./b",
            "/..",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/a b",
            "/a?x=1",
            "/a#f",
            "/a\r\nX: y",
            "/a%zz",
            "/a%2",
            "/a\\b",
            "http://evil/x",
            "/é",
        ] {
            assert!(!is_safe_path(bad.as_bytes()), "{bad:?}");
        }
        assert_eq!(accept_path(b"/a/../b", 64, false, true), Err(Refusal::NotAPath));
        assert_eq!(accept_path(b"/a/b", 64, false, true), Ok(()));
        assert_eq!(accept_path(b"a b", 64, false, false), Ok(()));
    }

    #[test]
    fn taking_a_value_removes_it() {
        let mut ring = Ring::new(4);
        for v in [b"a", b"b", b"c"] {
            ring.push(v, false);
        }
        ring.take(0);
        assert_eq!(texts(&ring), ["c", "b"]);
        ring.take(7);
        assert_eq!(ring.len(), 2, "an index past the end takes nothing");
    }

    #[test]
    fn values_never_show_in_debug_output() {
        let mut ring = Ring::new(1);
        ring.push(b"s3cret-token", false);
        let shown = format!("{ring:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<12 bytes>"), "{shown}");
    }

    #[test]
    fn accepts_only_safe_bounded_values() {
        assert_eq!(accept(b"a1b2-c3_d.e~", 64, true), Ok(()));
        assert_eq!(accept(b"user 7/x", 256, false), Ok(()));
        assert_eq!(accept("é".as_bytes(), 256, false), Ok(()));
        assert_eq!(accept(b"", 256, false), Err(Refusal::Empty));
        assert_eq!(accept(&[b'x'; 257], 256, false), Err(Refusal::TooLong));
        assert_eq!(accept(&[b'x'; 65], 64, true), Err(Refusal::TooLong));
        assert_eq!(accept(b"a/b", 64, true), Err(Refusal::NotUrlSafe));
        assert_eq!(accept(b"..", 64, false), Err(Refusal::DotSegment));
        assert_eq!(accept(b"v\r\nX-Evil: 1", 256, false), Err(Refusal::ControlCharacter));
        assert_eq!(accept("a\u{85}b".as_bytes(), 256, false), Err(Refusal::ControlCharacter));
        assert_eq!(accept(&[0xff, 0xfe], 256, false), Err(Refusal::ControlCharacter));
    }
}
