//! How a value is written where it goes in a request: percent-encoded in
//! a path or query, escaped in JSON, as is in a header. Used when a
//! template is compiled (its literal parts) and when it is rendered (the
//! values in its holes).

use super::pool::is_unreserved;

/// How a value is written where a hole sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    /// In the path: percent-encoded (all but unreserved characters).
    Path,
    /// A query value or a form body: percent-encoded.
    Query,
    /// A header value: as is (values with control characters never get here).
    Header,
    /// Inside a JSON string: escaped.
    JsonString,
    /// A whole JSON value: a bare number, or a quoted, escaped string.
    JsonValue,
    /// A text body: as is.
    Raw,
}

/// Writes `text` as the context wants it.
pub(crate) fn encode(ctx: Ctx, text: &[u8], number: bool, out: &mut Vec<u8>) {
    match ctx {
        Ctx::Path | Ctx::Query => percent_encode(text, out),
        Ctx::Header | Ctx::Raw => out.extend_from_slice(text),
        Ctx::JsonString => json_escape(text, out),
        Ctx::JsonValue if number => out.extend_from_slice(text),
        Ctx::JsonValue => {
            out.push(b'"');
            json_escape(text, out);
            out.push(b'"');
        }
    }
}

/// Everything but unreserved characters as `%XX`.
pub(crate) fn percent_encode(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text {
        if is_unreserved(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Standard base64 (RFC 4648, with `=` padding), as Basic auth wants it.
pub(crate) fn base64_encode(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| ALPHABET[((n >> shift) & 63) as usize];
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { b'=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { b'=' });
    }
}

/// The inside of a JSON string.
pub(crate) fn json_escape(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in text {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 | 0x7f => {
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            let mut out = Vec::new();
            base64_encode(input.as_bytes(), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{input}");
        }
        let mut out = Vec::new();
        base64_encode(&[0xfb, 0xff], &mut out);
        assert_eq!(out, b"+/8=");
    }
}
