//! The exporter's settings as the OpenTelemetry SDK environment spec
//! spells them, each parsed by a pure function (the caller names the
//! setting in its error).

use std::time::Duration;

use crate::base::url::TargetUrl;

/// Most headers `OTEL_EXPORTER_OTLP_HEADERS` may list, and their total size.
pub const MAX_HEADERS: usize = 32;
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Most resource attributes, and the longest value of one.
pub const MAX_RESOURCE_ATTRIBUTES: usize = 64;
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;

/// Where batches are posted: an OTLP/HTTP traces endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address (IPv6 without brackets), looked up per connection.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as given, for `Host`.
    pub authority: String,
    /// The request path, `/v1/traces` by default.
    pub path: String,
}

impl Endpoint {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL the signal's path
    /// `v1/traces` is appended to.
    pub fn from_base(raw: &str) -> Result<Endpoint, String> {
        let url = http_url(raw)?;
        let path = format!("{}/v1/traces", url.path_prefix());
        Ok(Endpoint::of(&url, path))
    }

    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the URL posted to, as is.
    pub fn from_signal(raw: &str) -> Result<Endpoint, String> {
        let url = http_url(raw)?;
        let path = if url.path_prefix().is_empty() { "/".to_string() } else { url.path_prefix().to_string() };
        Ok(Endpoint::of(&url, path))
    }

    fn of(url: &TargetUrl, path: String) -> Endpoint {
        Endpoint { host: url.host().to_string(), port: url.port(), authority: url.authority().to_string(), path }
    }

    /// `http://authority/path`, for logs.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

fn http_url(raw: &str) -> Result<TargetUrl, String> {
    let url = TargetUrl::parse(raw)?;
    if url.is_https() {
        return Err("https is not supported by the span exporter; send to a collector over http (port 4318), \
                    which can forward over TLS"
            .into());
    }
    Ok(url)
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL`: only `http/protobuf` is spoken.
pub fn check_protocol(raw: &str) -> Result<(), String> {
    match raw.trim() {
        "http/protobuf" => Ok(()),
        "grpc" => Err("grpc is not supported; use http/protobuf (the collector's port 4318)".into()),
        "http/json" => Err("http/json is not supported; use http/protobuf".into()),
        _ => Err("must be http/protobuf".into()),
    }
}

/// A `key=value,key=value` list (`OTEL_EXPORTER_OTLP_HEADERS`,
/// `OTEL_RESOURCE_ATTRIBUTES`): W3C baggage's shape, values
/// percent-decoded, blanks around each part ignored.
fn key_values(raw: &str, max: usize) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once('=').ok_or_else(|| format!("'{item}' is not key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("'{item}' has no key"));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of {key} is not valid percent-encoded UTF-8"))?;
        pairs.push((key.to_string(), value));
        if pairs.len() > max {
            return Err(format!("more than {max} entries"));
        }
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: header names are HTTP tokens, values
/// have no control characters (no header can be smuggled in).
pub fn headers(raw: &str) -> Result<Vec<(String, String)>, String> {
    let pairs = key_values(raw, MAX_HEADERS)?;
    let mut total = 0;
    for (name, value) in &pairs {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            return Err(format!("'{name}' is not a header name"));
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(format!("the value of {name} has a control character"));
        }
        let reserved = ["host", "content-length", "content-type", "transfer-encoding", "connection"];
        if reserved.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            return Err(format!("{name} is set by the exporter itself"));
        }
        total += name.len() + value.len() + 4;
    }
    if total > MAX_HEADER_BYTES {
        return Err(format!("the headers take more than {MAX_HEADER_BYTES} bytes"));
    }
    Ok(pairs)
}

/// `OTEL_RESOURCE_ATTRIBUTES`, bounded in count and size.
pub fn resource_attributes(raw: &str) -> Result<Vec<(String, String)>, String> {
    let pairs = key_values(raw, MAX_RESOURCE_ATTRIBUTES)?;
    if let Some((key, _)) = pairs.iter().find(|(_, v)| v.len() > MAX_ATTRIBUTE_VALUE_BYTES) {
        return Err(format!("the value of {key} is longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes"));
    }
    Ok(pairs)
}

/// A boolean the spec's way (`OTEL_SDK_DISABLED`): `true` in any case is
/// true, `false` or empty is false; anything else is a mistake here (the
/// spec would warn and take false).
pub fn boolean(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// What the exporter is given.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    pub endpoint: Endpoint,
    pub headers: Vec<(String, String)>,
    /// One batch's post, connect to the end of the answer.
    pub timeout: Duration,
    /// The resource: `service.name` first, then the others.
    pub resource: Vec<(String, String)>,
    /// Spans waiting to be sent; when full, new ones are dropped.
    pub queue_size: usize,
    /// Most spans per post.
    pub batch_size: usize,
    /// Longest a span waits for a batch to fill before it is sent anyway.
    pub schedule_delay: Duration,
}

impl ExportSettings {
    /// The spec's defaults for everything but where it goes and who sends.
    pub fn new(endpoint: Endpoint, service_name: &str) -> ExportSettings {
        ExportSettings {
            endpoint,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            resource: vec![("service.name".to_string(), service_name.to_string())],
            queue_size: 2048,
            batch_size: 512,
            schedule_delay: Duration::from_secs(5),
        }
    }

    /// The resource from `OTEL_RESOURCE_ATTRIBUTES` with `service_name`
    /// (`OTEL_SERVICE_NAME`, which wins over a `service.name` there, or
    /// the program's own name when neither is given).
    pub fn with_resource(mut self, attributes: Vec<(String, String)>, service_name: Option<&str>) -> ExportSettings {
        let from_attributes = attributes.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone());
        let name = service_name.map(str::to_string).or(from_attributes).unwrap_or_else(|| self.resource[0].1.clone());
        let mut resource = vec![("service.name".to_string(), name)];
        resource.extend(attributes.into_iter().filter(|(k, _)| k != "service.name"));
        self.resource = resource;
        self
    }

    pub fn service_name(&self) -> &str {
        &self.resource[0].1
    }
}

/// Spans on: where they go and which traces are sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanExport {
    pub export: ExportSettings,
    pub sampler: crate::base::trace_context::Sampler,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_spec_paths() {
        let base = Endpoint::from_base("http://collector:4318").unwrap();
        assert_eq!((base.host.as_str(), base.port, base.path.as_str()), ("collector", 4318, "/v1/traces"));
        assert_eq!(Endpoint::from_base("http://c:4318/otlp/").unwrap().path, "/otlp/v1/traces");
        assert_eq!(Endpoint::from_base("http://[::1]:4318").unwrap().host, "::1");
        assert_eq!(Endpoint::from_signal("http://c:4318/custom/traces").unwrap().path, "/custom/traces");
        assert_eq!(
            Endpoint::from_signal("http://c").unwrap(),
            Endpoint { host: "c".into(), port: 80, authority: "c".into(), path: "/".into() }
        );
        assert!(Endpoint::from_base("https://c:4318").unwrap_err().contains("https"));
        assert!(Endpoint::from_base("c:4318").is_err());
        assert!(Endpoint::from_base("http://u:p@c:4318").is_err());
    }

    #[test]
    fn headers_and_attributes_are_lists_with_percent_encoding() {
        assert_eq!(
            headers("api-key=a%20b, x-tenant = t1 ,").unwrap(),
            [("api-key".to_string(), "a b".to_string()), ("x-tenant".to_string(), "t1".to_string())]
        );
        for bad in ["novalue", "=v", "bad name=v", "x=%0d%0aInjected: 1", "host=x", "x=%zz"] {
            assert!(headers(bad).is_err(), "{bad}");
        }
        assert!(headers(&"a=b,".repeat(MAX_HEADERS + 1)).unwrap_err().contains("more than"));
        assert!(headers(&format!("a={}", "x".repeat(MAX_HEADER_BYTES))).is_err());
        let attrs = resource_attributes("deployment.environment=demo,service.name=from-attrs").unwrap();
        let settings = ExportSettings::new(Endpoint::from_base("http://c:4318").unwrap(), "trafficgen");
        assert_eq!(settings.clone().with_resource(attrs.clone(), None).service_name(), "from-attrs");
        let named = settings.clone().with_resource(attrs, Some("named"));
        assert_eq!(
            named.resource,
            [
                ("service.name".to_string(), "named".to_string()),
                ("deployment.environment".to_string(), "demo".to_string())
            ]
        );
        assert_eq!(settings.with_resource(Vec::new(), None).service_name(), "trafficgen");
    }

    #[test]
    fn protocol_and_booleans() {
        assert!(check_protocol("http/protobuf").is_ok());
        assert!(check_protocol("grpc").unwrap_err().contains("http/protobuf"));
        assert!(check_protocol("http/json").is_err());
        assert_eq!(boolean("TRUE"), Ok(true));
        assert_eq!(boolean("false"), Ok(false));
        assert!(boolean("yes").is_err());
    }
}
