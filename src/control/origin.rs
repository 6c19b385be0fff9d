//! Which web pages may change state: the `Origin` guard.
//!
//! A body-less `POST /mode/overload` is a CORS "simple request": any page a
//! user has open can fire it at the control port, and browsers mark it
//! with `Origin` (curl and scripts send none). Comparing `Origin` with the
//! request's own `Host` is not enough: after DNS rebinding
//! (`evil.example` re-resolved to 127.0.0.1) the attacker's page sends
//! `Host: evil.example:8089` and `Origin: http://evil.example:8089`, a
//! perfect match. So the allow-list comes from the settings, never from the
//! request:
//!
//! - loopback origins, any port: `localhost`, `*.localhost`, `127.0.0.0/8`,
//!   `[::1]` (browsers never ask DNS for `localhost`, so these cannot be
//!   rebound, and a page on them runs on the user's own machine);
//! - an IP-address origin equal to the request's `Host`, such as
//!   `http://10.0.0.5:8089` for a page served by this sidecar at its pod
//!   address (rebinding needs a name: a request to an IP literal went to
//!   that address, and only our own address reaches us);
//! - whatever `ALLOWED_ORIGINS` lists.
//!
//! Any other origin, `null`, or a malformed one is refused, and every
//! `Origin` header of a request is checked, not just the first.

use std::fmt;
use std::net::IpAddr;

/// One origin: scheme, host and port, compared case-insensitively with
/// default ports filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Scheme,
    /// Lower case; an IPv6 address without brackets.
    host: String,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl Origin {
    /// Parses `scheme://host[:port]` (what browsers send; one trailing `/`
    /// is tolerated in settings).
    pub fn parse(raw: &str) -> Result<Origin, String> {
        let lower = raw.trim().to_ascii_lowercase();
        let (scheme, rest) = if let Some(rest) = lower.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = lower.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err(format!("{raw:?} is not an origin: it must start with http:// or https://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = authority(rest, scheme.default_port())
            .ok_or_else(|| format!("{raw:?} is not an origin: expected scheme://host[:port] and nothing more"))?;
        Ok(Origin { scheme, host, port })
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.ends_with(".localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| match ip {
                IpAddr::V4(v4) => v4.is_loopback(),
                IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
            })
    }

    /// True when the origin's host is an IP literal and it names exactly
    /// the authority the request was sent to.
    fn is_ip_literal_of(&self, host_header: &str) -> bool {
        self.host.parse::<IpAddr>().is_ok()
            && authority(&host_header.to_ascii_lowercase(), self.scheme.default_port())
                .is_some_and(|(host, port)| host == self.host && port == self.port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{}://{host}:{}", self.scheme.as_str(), self.port)
    }
}

/// `host[:port]` or `[v6][:port]`, nothing else: no path, user, query or
/// spaces. Returns the host (IPv6 unbracketed) and the port.
fn authority(raw: &str, default_port: u16) -> Option<(String, u16)> {
    let forbidden = |c: char| c.is_ascii_whitespace() || c.is_ascii_control() || "/?#@\\,\"".contains(c);
    if raw.is_empty() || raw.contains(forbidden) {
        return None;
    }
    let (host, port) = if let Some(bracketed) = raw.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (v6, port)
    } else {
        match raw.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (raw, None),
        }
    };
    let plain_name = |h: &str| h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if host.is_empty() || !(raw.starts_with('[') || plain_name(host)) {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|p| *p > 0)?
        }
        Some(_) => return None,
    };
    Some((host.to_string(), port))
}

/// The origins, besides the built-in ones, that may change state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    listed: Vec<Origin>,
}

impl AllowedOrigins {
    /// Parses `ALLOWED_ORIGINS`: origins separated by commas.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let listed =
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Origin::parse).collect::<Result<_, _>>()?;
        Ok(AllowedOrigins { listed })
    }

    pub fn listed(&self) -> &[Origin] {
        &self.listed
    }

    /// Whether a request with this `Origin` value, sent to this `Host`, may
    /// change state.
    pub fn allows(&self, origin: &[u8], host_header: Option<&[u8]>) -> bool {
        let Some(origin) = std::str::from_utf8(origin).ok().and_then(|o| Origin::parse(o).ok()) else {
            return false;
        };
        origin.is_loopback()
            || self.listed.contains(&origin)
            || host_header.and_then(|h| std::str::from_utf8(h).ok()).is_some_and(|h| origin.is_ip_literal_of(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &str, origin: &str, host: &str) -> bool {
        AllowedOrigins::parse(list).unwrap().allows(origin.as_bytes(), Some(host.as_bytes()))
    }

    #[test]
    fn loopback_origins_on_any_port_are_allowed_by_default() {
        for origin in [
            "http://localhost:8089",
            "http://LOCALHOST:3000",
            "https://localhost",
            "http://panel.localhost:8089",
            "http://127.0.0.1:8089",
            "http://127.1.2.3",
            "http://[::1]:8089",
            "http://[::ffff:127.0.0.1]:8089",
        ] {
            assert!(allowed("", origin, "whatever:8089"), "{origin}");
        }
    }

    #[test]
    fn dns_rebinding_and_other_sites_are_refused() {
        for (origin, host) in [
            ("http://evil.example:8089", "evil.example:8089"),
            ("http://evil.example", "127.0.0.1:8089"),
            ("http://traffic-generator:8089", "traffic-generator:8089"),
            ("http://localhost.evil.example", "localhost:8089"),
            ("http://127.0.0.1.evil.example", "127.0.0.1:8089"),
            ("null", "127.0.0.1:8089"),
            ("file://", "127.0.0.1:8089"),
            ("chrome-extension://abc", "127.0.0.1:8089"),
            ("http://203.0.113.9", "127.0.0.1:8089"),
            ("http://10.0.0.5:8089", "10.0.0.6:8089"),
            ("http://10.0.0.5:8089", "10.0.0.5:9999"),
            ("http://localhost:8089/path", "localhost:8089"),
            ("http://user@localhost:8089", "localhost:8089"),
            ("http://localhost:8089 http://evil.example", "localhost:8089"),
            ("http://localhost:0", "localhost:8089"),
            ("http://localhost:99999", "localhost:8089"),
            ("", "localhost:8089"),
        ] {
            assert!(!allowed("", origin, host), "{origin} with Host {host}");
        }
    }

    #[test]
    fn an_ip_literal_origin_is_allowed_when_it_is_the_address_asked() {
        assert!(allowed("", "http://10.0.0.5:8089", "10.0.0.5:8089"));
        assert!(allowed("", "http://10.0.0.5", "10.0.0.5"));
        assert!(allowed("", "http://[fd00::5]:8089", "[fd00::5]:8089"));
        assert!(allowed("", "https://10.0.0.5", "10.0.0.5"), "a Host without port has the scheme's");
        assert!(allowed("", "https://10.0.0.5", "10.0.0.5:443"));
        assert!(!allowed("", "http://10.0.0.5", "10.0.0.5:443"));
    }

    #[test]
    fn listed_origins_are_allowed_exactly() {
        let list = "http://panel.example:8089, https://ops.example/";
        assert!(allowed(list, "http://panel.example:8089", "x"));
        assert!(allowed(list, "HTTP://Panel.Example:8089", "x"));
        assert!(allowed(list, "https://ops.example:443", "x"));
        assert!(allowed(list, "https://ops.example", "x"));
        assert!(!allowed(list, "http://ops.example", "x"), "scheme differs");
        assert!(!allowed(list, "http://panel.example", "x"), "port differs");
        assert!(!allowed(list, "http://sub.panel.example:8089", "x"));
    }

    #[test]
    fn bad_settings_say_which_entry() {
        for bad in ["panel.example", "http://panel.example/ui", "*", "http://*.example", "http://a:b"] {
            let err = AllowedOrigins::parse(&format!("http://ok.example,{bad}")).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        assert_eq!(AllowedOrigins::parse(" , ").unwrap(), AllowedOrigins::default());
    }

    #[test]
    fn non_utf8_or_missing_hosts_are_refused() {
        let list = AllowedOrigins::default();
        assert!(!list.allows(b"http://\xff", Some(b"localhost")));
        assert!(!list.allows(b"http://10.0.0.5", None));
        assert!(!list.allows(b"http://10.0.0.5", Some(b"\xff")));
    }
}
