//! Log lines: one JSON object per line (default) or plain text, on stdout;
//! and the most recent ones, as JSON, in a bounded ring for `GET /logs`.

use std::collections::VecDeque;
use std::io::Write;

use log::kv::{self, VisitSource};
use parking_lot::Mutex;

/// Level filter used when `RUST_LOG` is not set: our own lines, and only
/// warnings from actix's start-up chatter.
const DEFAULT_FILTER: &str = "info,actix_server=warn,actix_http=warn";

/// Installs the logger for the whole process. Safe to call more than once
/// (later calls do nothing), which in-process tests rely on.
/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

pub fn init(format: LogFormat, service: &'static str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_string());
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter).target(env_logger::Target::Stdout);
    builder.format(move |buf, record| {
        let timestamp = buf.timestamp_millis().to_string();
        let json = json_line(&timestamp, service, record);
        let line = match format {
            LogFormat::Json => json.clone(),
            LogFormat::Text => text_line(&timestamp, record),
        };
        RECENT.push(ring_entry(json, &timestamp, service, record));
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

/// Lines `GET /logs` can return.
pub const RECENT_LINES: usize = 1000;
/// A longer line is kept as its fixed keys and the start of its message.
pub const RECENT_LINE_BYTES: usize = 2048;

/// The process's recent log lines, fed by the logger.
pub static RECENT: LogRing = LogRing::new(RECENT_LINES);

/// The newest log lines, as JSON objects whatever `LOG_FORMAT` says: at
/// most `capacity` lines of at most [`RECENT_LINE_BYTES`], so at most 2 MiB.
pub struct LogRing {
    lines: Mutex<VecDeque<String>>,
    capacity: usize,
}

impl LogRing {
    pub const fn new(capacity: usize) -> LogRing {
        LogRing { lines: Mutex::new(VecDeque::new()), capacity }
    }

    /// Keeps `line` (one JSON object), forgetting the oldest beyond capacity.
    pub fn push(&self, line: String) {
        let mut lines = self.lines.lock();
        while lines.len() >= self.capacity.max(1) {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// `{"lines":[…]}` with the newest `limit` lines, oldest first: the
    /// stored lines are JSON objects already, so they are put together as
    /// they are, without being parsed again.
    pub fn recent_answer(&self, limit: usize) -> String {
        let lines = self.lines.lock();
        let skip = lines.len().saturating_sub(limit);
        let size: usize = lines.iter().skip(skip).map(|l| l.len() + 1).sum();
        let mut answer = String::with_capacity(size + 16);
        answer.push_str("{\"lines\":[");
        for (i, line) in lines.iter().skip(skip).enumerate() {
            if i > 0 {
                answer.push(',');
            }
            if line.starts_with('{') && line.ends_with('}') {
                answer.push_str(line);
            } else {
                // Never the case for lines the logger kept; still JSON.
                answer.push_str(&serde_json::Value::from(line.as_str()).to_string());
            }
        }
        answer.push_str("]}");
        answer
    }

    /// The newest `limit` lines, oldest first, as JSON.
    pub fn recent(&self, limit: usize) -> Vec<serde_json::Value> {
        let lines = self.lines.lock();
        let skip = lines.len().saturating_sub(limit);
        lines.iter().skip(skip).map(|l| serde_json::from_str(l).unwrap_or_else(|_| l.as_str().into())).collect()
    }
}

/// What the ring keeps of a line: the JSON line with bearer credentials
/// masked (none are ever logged; this is a second lock on the door), or,
/// for an overlong line, its fixed keys, the start of its message and
/// `"truncated": true`.
fn ring_entry(json: String, timestamp: &str, service: &str, record: &log::Record<'_>) -> String {
    let json = redact_bearer(json);
    if json.len() <= RECENT_LINE_BYTES {
        return json;
    }
    let message = record.args().to_string();
    let cut: String = message.chars().take(RECENT_LINE_BYTES / 4).collect();
    serde_json::json!({
        "timestamp": timestamp,
        "level": record.level().as_str().to_ascii_lowercase(),
        "service": service,
        "message": redact_bearer(cut),
        "truncated": true,
    })
    .to_string()
}

/// `Bearer <anything>` → `Bearer <redacted>`, any case.
fn redact_bearer(line: String) -> String {
    const SCHEME: &[u8] = b"bearer ";
    let bytes = line.as_bytes();
    let found = bytes.windows(SCHEME.len()).position(|w| w.eq_ignore_ascii_case(SCHEME));
    let Some(start) = found else { return line };
    let mut out = String::with_capacity(line.len());
    let mut rest = line.as_str();
    let mut offset = start;
    loop {
        let (before, after) = rest.split_at(offset + SCHEME.len());
        out.push_str(before);
        // The credentials run to the next space, quote or backslash.
        let end = after.find(|c: char| c.is_whitespace() || c == '"' || c == '\\').unwrap_or(after.len());
        if end > 0 {
            out.push_str("<redacted>");
        }
        rest = &after[end..];
        match rest.as_bytes().windows(SCHEME.len()).position(|w| w.eq_ignore_ascii_case(SCHEME)) {
            Some(next) => offset = next,
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// `GET /logs?limit=N`: 1 to [`RECENT_LINES`], 100 without one.
pub fn parse_limit(query: &str) -> Result<usize, String> {
    let mut limit = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "limit" || limit.is_some() {
            let key: String = key.chars().take(64).collect();
            return Err(format!("unexpected parameter '{key}'; GET /logs takes limit=1..{RECENT_LINES} once"));
        }
        let n = value.parse::<usize>().ok().filter(|n| (1..=RECENT_LINES).contains(n));
        limit = Some(n.ok_or_else(|| {
            let value: String = value.chars().take(64).collect();
            format!("limit must be a whole number from 1 to {RECENT_LINES}, not '{value}'")
        })?);
    }
    Ok(limit.unwrap_or(100))
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
    fn a_float_without_a_value_is_null() {
        let fields: [(&str, kv::Value<'_>); 2] = [("value", kv::Value::from(f64::NAN)), ("ms", kv::Value::from(4.73))];
        let args = format_args!("SLO flipped");
        let record = log::Record::builder().args(args).level(log::Level::Info).key_values(&fields).build();
        let v: serde_json::Value = serde_json::from_str(&json_line("t", "s", &record)).expect("valid JSON");
        assert_eq!(v["value"], serde_json::Value::Null);
        assert_eq!(v["ms"], 4.73);
    }

    #[test]
    fn the_ring_keeps_the_newest_lines_oldest_first() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(format!(r#"{{"message":"{i}"}}"#));
        }
        let messages = |v: Vec<serde_json::Value>| v.iter().map(|l| l["message"].clone()).collect::<Vec<_>>();
        assert_eq!(messages(ring.recent(10)), ["2", "3", "4"]);
        assert_eq!(messages(ring.recent(2)), ["3", "4"]);
        assert!(ring.recent(0).is_empty());
    }

    #[test]
    fn the_ring_keeps_an_overlong_line_short_and_valid() {
        let long = "x".repeat(10_000);
        let args = format_args!("{long}");
        let record = log::Record::builder().args(args).level(log::Level::Warn).target("trafficgen::engine").build();
        let json = json_line("T", "traffic-generator", &record);
        let kept = ring_entry(json, "T", "traffic-generator", &record);
        assert!(kept.len() <= RECENT_LINE_BYTES, "{} bytes", kept.len());
        let v: serde_json::Value = serde_json::from_str(&kept).unwrap();
        assert_eq!((v["level"].as_str(), v["truncated"].as_bool()), (Some("warn"), Some(true)));
        with_record(|r| {
            let json = json_line("T", "svc", r);
            assert_eq!(ring_entry(json.clone(), "T", "svc", r), json, "a short line is kept as is");
        });
    }

    #[test]
    fn bearer_credentials_never_reach_the_ring() {
        assert_eq!(
            redact_bearer(r#"{"message":"sent Authorization: Bearer abc.def-123 to x","h":"bearer Q"}"#.into()),
            r#"{"message":"sent Authorization: Bearer <redacted> to x","h":"bearer <redacted>"}"#
        );
        assert_eq!(redact_bearer("no credentials here".into()), "no credentials here");
        // What the ring keeps goes through it.
        let args = format_args!("upstream said: Authorization: Bearer s3cr3t");
        let record = log::Record::builder().args(args).level(log::Level::Warn).build();
        let kept = ring_entry(json_line("T", "svc", &record), "T", "svc", &record);
        assert!(!kept.contains("s3cr3t") && kept.contains("Bearer <redacted>"), "{kept}");
        assert_eq!(redact_bearer("ends with Bearer ".into()), "ends with Bearer ");
        assert_eq!(redact_bearer("BEARER é\u{1F600}x".into()), "BEARER <redacted>");
    }

    #[test]
    fn the_logger_feeds_the_ring_in_either_format() {
        init(LogFormat::Text, "traffic-generator");
        let probe = format!("ring probe {}", std::process::id());
        log::info!(mode = "burst"; "{probe}");
        let found = RECENT.recent(RECENT_LINES).into_iter().find(|l| l["message"] == probe.as_str());
        let line = found.expect("the line is in the ring");
        assert_eq!((line["level"].as_str(), line["mode"].as_str()), (Some("info"), Some("burst")));
    }

    #[test]
    fn logs_limit_is_checked() {
        assert_eq!(parse_limit(""), Ok(100));
        assert_eq!(parse_limit("limit=5"), Ok(5));
        assert_eq!(parse_limit("limit=1000"), Ok(1000));
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=x", "limit", "limit=5&limit=6", "lines=5"] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_line_puts_fields_after_the_message() {
        let line = with_record(|r| text_line("T", r));
        assert_eq!(line, "T INFO  mode changed \"quoted\" mode=burst rps=20.5 count=3 level=sneaky");
    }
}
