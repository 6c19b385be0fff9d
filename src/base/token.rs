//! The control API's shared secret: compared in constant time, never shown.

use std::fmt;

/// The shared secret of the control API. Its `Debug` never shows it, so it
/// cannot leak through a logged config.
#[derive(Clone, PartialEq, Eq)]
pub struct ControlToken(String);

impl ControlToken {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("must not be empty");
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces (it travels in an HTTP header)");
        }
        Ok(ControlToken(raw.to_string()))
    }

    /// The `Authorization` header value that carries it, for requests to
    /// peers. Never log it.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// The token itself, to derive the cluster key from when no
    /// `CLUSTER_SECRET` is set. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is, so
    /// response timing does not reveal the token byte by byte.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut difference = expected.len() ^ candidate.len();
        for (i, e) in expected.iter().enumerate() {
            difference |= usize::from(e ^ candidate.get(i).copied().unwrap_or(0));
        }
        difference == 0
    }
}

impl fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlToken(<redacted>)")
    }
}
