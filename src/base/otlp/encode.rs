//! Building the protobuf messages: a span's frame, its attributes, and a
//! batch with its resource.

use prost::Message;

use super::ToSpan;
use super::proto::collector::trace::v1::ExportTraceServiceRequest;
use super::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use super::proto::resource::v1::Resource;
use super::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use crate::base::trace_context::{SpanId, TraceId};

/// The span's `flags`: W3C trace flags (sampled) and whether the parent
/// is known to be remote (OTLP's `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE` and
/// `_IS_REMOTE` bits).
pub fn flags(sampled: bool, remote_parent: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    u32::from(sampled) | HAS_IS_REMOTE | if remote_parent { IS_REMOTE } else { 0 }
}

/// A span's frame; the caller adds attributes and a status.
pub fn span(
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    name: String,
    kind: SpanKind,
    start_unix_nanos: u64,
    end_unix_nanos: u64,
) -> Span {
    Span {
        trace_id: trace_id.to_bytes().to_vec(),
        span_id: span_id.to_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_bytes().to_vec()).unwrap_or_default(),
        name,
        kind: kind as i32,
        start_time_unix_nano: start_unix_nanos,
        end_time_unix_nano: end_unix_nanos.max(start_unix_nanos),
        ..Span::default()
    }
}

/// An attribute: anything that becomes an `AnyValue` (text, integer, bool).
pub fn attribute(key: &str, value: impl Into<Value>) -> KeyValue {
    let value = match value.into() {
        Value::Text(text) => any_value::Value::StringValue(text),
        Value::Int(n) => any_value::Value::IntValue(n),
        Value::Bool(b) => any_value::Value::BoolValue(b),
    };
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
}

/// An attribute's value.
pub enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::Text(text.to_string())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Text(text)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// The resource and scope every batch carries, made once.
pub(super) struct BatchFrame {
    resource: Resource,
    scope: InstrumentationScope,
}

impl BatchFrame {
    pub(super) fn new(resource: &[(String, String)]) -> BatchFrame {
        let mut attributes: Vec<KeyValue> = resource.iter().map(|(k, v)| attribute(k, v.as_str())).collect();
        // What the spec asks every SDK to say about itself.
        for (key, value) in [("telemetry.sdk.name", "trafficgen"), ("telemetry.sdk.language", "rust")] {
            if !resource.iter().any(|(k, _)| k == key) {
                attributes.push(attribute(key, value));
            }
        }
        attributes.push(attribute("telemetry.sdk.version", env!("CARGO_PKG_VERSION")));
        BatchFrame {
            resource: Resource { attributes, ..Resource::default() },
            scope: InstrumentationScope {
                name: "trafficgen".to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                ..InstrumentationScope::default()
            },
        }
    }

    /// The request body for `records`.
    pub(super) fn encode<S: ToSpan>(&self, records: &[S], out: &mut Vec<u8>) {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(self.scope.clone()),
                    spans: records.iter().map(ToSpan::to_span).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        out.clear();
        out.reserve(request.encoded_len());
        // Encoding into a Vec only fails when it lacks room; it was reserved.
        let _ = request.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::otlp::proto::common::v1::any_value::Value as Any;

    struct Record(u64);

    impl ToSpan for Record {
        fn to_span(&self) -> Span {
            let mut s =
                span(TraceId::from_random(7), SpanId::from_random(self.0), None, "GET".into(), SpanKind::Client, 10, 5);
            s.attributes.push(attribute("n", self.0 as i64));
            s
        }
    }

    #[test]
    fn a_batch_decodes_back_with_its_resource_and_spans() {
        let frame = BatchFrame::new(&[("service.name".into(), "svc".into())]);
        let mut body = Vec::new();
        frame.encode(&[Record(1), Record(2)], &mut body);
        let decoded = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        let resource_spans = &decoded.resource_spans[0];
        let resource = resource_spans.resource.as_ref().unwrap();
        let names: Vec<&str> = resource.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(names, ["service.name", "telemetry.sdk.name", "telemetry.sdk.language", "telemetry.sdk.version"]);
        let spans = &resource_spans.scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].span_id, 2u64.to_be_bytes());
        assert_eq!(spans[0].trace_id, 7u128.to_be_bytes());
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[0].end_time_unix_nano, 10, "never ends before it starts");
        assert_eq!(spans[1].attributes[0].value.as_ref().unwrap().value, Some(Any::IntValue(2)));
        assert_eq!(flags(true, true), 0x301);
        assert_eq!(flags(false, false), 0x100);
    }
}
