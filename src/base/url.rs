//! The target's base URL, parsed once: the engine, the workload and the
//! exports take it apart the same way.

use std::fmt;

/// The base URL traffic goes to (`http[s]://host[:port][/prefix]`), with
/// its parts taken apart once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// As given, without a trailing slash.
    url: String,
    https: bool,
    /// Host name or address, IPv6 without brackets.
    host: String,
    port: u16,
    /// `host[:port]` as given, for the `Host` header.
    authority: String,
    /// Path before `/orders`, without a trailing slash (often empty).
    path_prefix: String,
}

impl TargetUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let uri: actix_web::http::Uri = trimmed.parse().map_err(|e| format!("not a URL ({e})"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("must start with http:// or https://".into()),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("has no host")?;
        if uri.query().is_some() || trimmed.contains('#') {
            return Err("must not have a query or fragment; give the base URL the orders API lives under".into());
        }
        let authority = uri.authority().map_or("", |a| a.as_str());
        if authority.contains('@') {
            return Err("must not carry credentials".into());
        }
        // The URI parser takes any digits after the colon (and `port()` then
        // reports none), so read the port off the authority ourselves.
        let after_host = &authority[authority.rfind(']').map_or(0, |i| i + 1)..];
        let port = match after_host.rsplit_once(':') {
            None if https => 443,
            None => 80,
            Some((_, port)) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port {port} is not from 1 to 65535"))?,
        };
        Ok(TargetUrl {
            url: trimmed.trim_end_matches('/').to_string(),
            https,
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            authority: authority.to_string(),
            path_prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}
