//! Log lines: one JSON object per line (default) or plain text, on stdout.

use std::io::Write;

use log::kv::{self, VisitSource};

use crate::cli::LogFormat;

/// Level filter used when `RUST_LOG` is not set: our own lines, and only
/// warnings from actix's start-up chatter.
const DEFAULT_FILTER: &str = "info,actix_server=warn,actix_http=warn";

/// Installs the logger for the whole process. Safe to call more than once
/// (later calls do nothing), which in-process tests rely on.
pub fn init(format: LogFormat, service: &'static str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_string());
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter).target(env_logger::Target::Stdout);
    builder.format(move |buf, record| {
        let timestamp = buf.timestamp_millis().to_string();
        let line = match format {
            LogFormat::Json => json_line(&timestamp, service, record),
            LogFormat::Text => text_line(&timestamp, record),
        };
        writeln!(buf, "{line}")
    });
    let _ = builder.try_init();
}

/// `{"timestamp":…,"level":"info","service":…,"message":…, fields…}`, the
/// fixed keys first and in that order, so a human scanning the raw lines
/// reads them the same way every time.
pub fn json_line(timestamp: &str, service: &str, record: &log::Record<'_>) -> String {
    let mut line = String::with_capacity(160);
    line.push('{');
    push_pair(&mut line, "timestamp", &timestamp.into());
    push_pair(&mut line, "level", &record.level().as_str().to_ascii_lowercase().into());
    push_pair(&mut line, "service", &service.into());
    push_pair(&mut line, "message", &record.args().to_string().into());
    if record.level() <= log::Level::Warn || !record.target().starts_with("trafficgen") {
        push_pair(&mut line, "module", &record.target().into());
    }
    let _ = record.key_values().visit(&mut JsonFields(&mut line));
    line.push('}');
    line
}

fn push_pair(line: &mut String, key: &str, value: &serde_json::Value) {
    if !line.ends_with('{') {
        line.push(',');
    }
    line.push_str(&serde_json::Value::from(key).to_string());
    line.push(':');
    line.push_str(&value.to_string());
}

/// `2026-01-01T00:00:00.000Z INFO  message key=value …`
pub fn text_line(timestamp: &str, record: &log::Record<'_>) -> String {
    let mut line = format!("{timestamp} {:<5} {}", record.level(), record.args());
    let mut fields = TextFields(&mut line);
    let _ = record.key_values().visit(&mut fields);
    line
}

struct JsonFields<'a>(&'a mut String);

/// Keys a field may not take: they would make a second key in the object.
const FIXED_KEYS: [&str; 5] = ["timestamp", "level", "service", "message", "module"];

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let json = if let Some(v) = value.to_u64() {
            v.into()
        } else if let Some(v) = value.to_i64() {
            v.into()
        } else if let Some(v) = value.to_f64() {
            serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
        } else if let Some(v) = value.to_bool() {
            v.into()
        } else {
            value.to_string().into()
        };
        if !FIXED_KEYS.contains(&key.as_str()) {
            push_pair(self.0, key.as_str(), &json);
        }
        Ok(())
    }
}

struct TextFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextFields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        self.0.push_str(&format!(" {key}={value}"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_record<R>(f: impl FnOnce(&log::Record<'_>) -> R) -> R {
        let fields: [(&str, kv::Value<'_>); 4] = [
            ("mode", kv::Value::from("burst")),
            ("rps", kv::Value::from(20.5)),
            ("count", kv::Value::from(3u64)),
            ("level", kv::Value::from("sneaky")),
        ];
        let args = format_args!("mode changed \"quoted\"");
        let record = log::Record::builder()
            .args(args)
            .level(log::Level::Info)
            .target("trafficgen::control")
            .key_values(&fields)
            .build();
        f(&record)
    }

    #[test]
    fn json_line_has_the_fixed_keys_and_typed_fields() {
        let line = with_record(|r| json_line("2026-01-01T00:00:00.000Z", "traffic-generator", r));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00.000Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["service"], "traffic-generator");
        assert_eq!(v["message"], "mode changed \"quoted\"");
        assert_eq!(v["mode"], "burst");
        assert_eq!(v["rps"], 20.5);
        assert_eq!(v["count"], 3);
        assert!(!line.contains('\n'));
        assert!(line.starts_with(
            r#"{"timestamp":"2026-01-01T00:00:00.000Z","level":"info","service":"traffic-generator","message":"#
        ));
        assert_eq!(line.matches("\"level\"").count(), 1, "a field must not repeat a fixed key: {line}");
    }

    #[test]
    fn text_line_puts_fields_after_the_message() {
        let line = with_record(|r| text_line("T", r));
        assert_eq!(line, "T INFO  mode changed \"quoted\" mode=burst rps=20.5 count=3 level=sneaky");
    }
}
