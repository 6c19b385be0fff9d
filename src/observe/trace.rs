//! The sidecar's spans: one CLIENT span per sampled request, named and
//! attributed by the OpenTelemetry HTTP client semantic conventions plus
//! trafficgen's own attributes, handed to the OTLP exporter's queue.
//!
//! The engine builds a [`ClientSpan`] when a sampled request completes
//! (ids from the `traceparent` it sent, times, outcome, labels shared per
//! request) and calls [`SpanSink::finish`], which never blocks. The
//! attributes are only made on the exporter's thread. Without export the
//! engine holds no sink and builds nothing.

use std::sync::Arc;

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::base::otlp::proto::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};
use crate::base::otlp::{self, DropReason, ExportCounters, SpanQueue, ToSpan, attribute};
use crate::base::trace_context::{SpanId, TraceId};

/// Where the engine hands its finished spans.
#[derive(Clone)]
pub struct SpanSink {
    queue: SpanQueue<SidecarSpan>,
}

impl SpanSink {
    pub fn new(queue: SpanQueue<SidecarSpan>) -> SpanSink {
        SpanSink { queue }
    }

    /// Queues the span of a completed request (dropped and counted if the
    /// exporter is behind).
    pub fn finish(&self, span: ClientSpan) {
        self.queue.push(SidecarSpan::Request(span));
    }

    /// Queues the span of a journey instance, its steps' parent.
    pub fn finish_journey(&self, span: JourneySpan) {
        self.queue.push(SidecarSpan::Journey(span));
    }
}

/// What the exporter queue holds.
pub enum SidecarSpan {
    Request(ClientSpan),
    Journey(JourneySpan),
}

impl ToSpan for SidecarSpan {
    fn to_span(&self) -> Span {
        match self {
            SidecarSpan::Request(span) => span.to_span(),
            SidecarSpan::Journey(span) => span.to_span(),
        }
    }
}

/// What stays the same for every request of one workload request: made
/// once per workload, shared by its spans.
#[derive(Debug)]
pub struct RequestLabels {
    /// The workload's name for it (`trafficgen.request`).
    pub name: String,
    pub method: &'static str,
    /// The path with the target's prefix, each `{{ … }}` written as
    /// `{name}` (`url.template`).
    pub template: String,
    /// `METHOD template`.
    pub span_name: String,
}

impl RequestLabels {
    pub fn new(name: &str, method: &'static str, template: String) -> RequestLabels {
        RequestLabels { name: name.to_string(), method, span_name: format!("{method} {template}"), template }
    }
}

/// The target, as every span names it.
#[derive(Debug)]
pub struct ServerLabels {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `server.address`.
    pub address: String,
    /// `server.port`.
    pub port: u16,
    /// `host[:port]`, for `url.full`.
    pub authority: String,
}

/// Where a span stands in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// A journey step's: the instance's span.
    pub parent: Option<SpanId>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanOutcome {
    Answered(u16),
    /// No answer: `error.type` (timeout, connect, dns, tls, reused, other).
    Failed(&'static str),
}

/// A journey step's journey (`trafficgen.journey`); `trafficgen.step` is
/// the step's name, its request's without the `journey/` before it.
#[derive(Debug, Clone)]
pub struct StepLabels {
    pub journey: Arc<str>,
}

/// One sampled request, completed.
#[derive(Debug)]
pub struct ClientSpan {
    pub ids: SpanIds,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub request: Arc<RequestLabels>,
    pub server: Arc<ServerLabels>,
    /// The request target as sent (path and query), for `url.full`.
    pub target: Box<str>,
    pub outcome: SpanOutcome,
    /// `trafficgen.mode`.
    pub mode: &'static str,
    /// `trafficgen.job_id`, while a job runs.
    pub job_id: Option<Arc<str>>,
    pub step: Option<StepLabels>,
}

impl ClientSpan {
    fn to_span(&self) -> Span {
        let SpanIds { trace_id, span_id, parent } = self.ids;
        let request = &self.request;
        let server = &self.server;
        let mut span = otlp::span(
            trace_id,
            span_id,
            parent,
            request.span_name.clone(),
            SpanKind::Client,
            self.start_unix_nanos,
            self.end_unix_nanos,
        );
        span.flags = otlp::flags(true, false);
        let attributes = &mut span.attributes;
        attributes.push(attribute("http.request.method", request.method));
        attributes.push(attribute("url.full", format!("{}://{}{}", server.scheme, server.authority, self.target)));
        attributes.push(attribute("url.template", request.template.as_str()));
        attributes.push(attribute("server.address", server.address.as_str()));
        attributes.push(attribute("server.port", i64::from(server.port)));
        attributes.push(attribute("trafficgen.request", request.name.as_str()));
        attributes.push(attribute("trafficgen.mode", self.mode));
        if let Some(job) = &self.job_id {
            attributes.push(attribute("trafficgen.job_id", &**job));
        }
        if let Some(step) = &self.step {
            let name = request.name.strip_prefix(&*step.journey).and_then(|n| n.strip_prefix('/'));
            attributes.push(attribute("trafficgen.journey", &*step.journey));
            attributes.push(attribute("trafficgen.step", name.unwrap_or(&request.name)));
        }
        // An HTTP client span is an error from 400 up, or without an answer.
        let error = match self.outcome {
            SpanOutcome::Answered(status) => {
                attributes.push(attribute("http.response.status_code", i64::from(status)));
                (status >= 400).then(|| status.to_string())
            }
            SpanOutcome::Failed(kind) => Some(kind.to_string()),
        };
        if let Some(kind) = error {
            attributes.push(attribute("error.type", kind));
            span.status = Some(Status { code: StatusCode::Error as i32, message: String::new() });
        }
        span
    }
}

/// A journey instance: the parent of its steps' spans.
#[derive(Debug)]
pub struct JourneySpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub journey: Arc<str>,
    pub mode: &'static str,
    pub job_id: Option<Arc<str>>,
    /// Every step was answered with a success.
    pub completed: bool,
    /// Steps sent.
    pub steps: u32,
}

impl JourneySpan {
    fn to_span(&self) -> Span {
        let mut span = otlp::span(
            self.trace_id,
            self.span_id,
            None,
            format!("journey {}", self.journey),
            SpanKind::Internal,
            self.start_unix_nanos,
            self.end_unix_nanos,
        );
        span.flags = otlp::flags(true, false);
        span.attributes.push(attribute("trafficgen.journey", &*self.journey));
        span.attributes.push(attribute("trafficgen.mode", self.mode));
        span.attributes.push(attribute("trafficgen.steps", i64::from(self.steps)));
        if let Some(job) = &self.job_id {
            span.attributes.push(attribute("trafficgen.job_id", &**job));
        }
        if !self.completed {
            span.attributes.push(attribute("error.type", "journey_ended_early"));
            span.status = Some(Status { code: StatusCode::Error as i32, message: String::new() });
        }
        span
    }
}

/// `{{ pool(order_ids) }}` as `{order_ids}`, `{{ uuid() }}` as `{uuid}`:
/// a template hole as `url.template` writes it (low cardinality, no
/// value). `hole` is the hole's text between the braces.
pub fn template_hole(hole: &str) -> String {
    let hole = hole.trim();
    let (function, argument) = match hole.split_once('(') {
        Some((f, rest)) => (f.trim(), rest.trim_end_matches(')').trim()),
        None => (hole, ""),
    };
    let is_name = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    let name = if is_name(argument) { argument } else { function };
    format!("{{{name}}}")
}

/// `trafficgen_spans_exported_total` and `trafficgen_spans_dropped_total{reason}`.
pub struct SpanCounters {
    exported: IntCounter,
    dropped: [IntCounter; DropReason::ALL.len()],
}

impl SpanCounters {
    pub fn register(registry: &Registry) -> Result<Arc<SpanCounters>, prometheus::Error> {
        let exported = IntCounter::new(
            "trafficgen_spans_exported_total",
            "Client spans the OTLP collector accepted (requests sampled while span export is on)",
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "trafficgen_spans_dropped_total",
                "Spans not exported, by reason (queue_full, connect, timeout, status, rejected, io, shutdown)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(exported.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        let dropped = DropReason::ALL.map(|reason| dropped.with_label_values(&[reason.as_str()]));
        Ok(Arc::new(SpanCounters { exported, dropped }))
    }

    pub fn exported_total(&self) -> u64 {
        self.exported.get()
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(IntCounter::get).sum()
    }
}

impl ExportCounters for SpanCounters {
    fn exported(&self, spans: u64) {
        self.exported.inc_by(spans);
    }

    fn dropped(&self, reason: DropReason, spans: u64) {
        self.dropped[reason as usize].inc_by(spans);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::otlp::proto::common::v1::any_value::Value;

    fn text(span: &Span, key: &str) -> Option<Value> {
        span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()).and_then(|v| v.value)
    }

    fn client(outcome: SpanOutcome, step: Option<StepLabels>) -> Span {
        ClientSpan {
            ids: SpanIds { trace_id: TraceId::from_random(1), span_id: SpanId::from_random(2), parent: None },
            start_unix_nanos: 100,
            end_unix_nanos: 200,
            request: Arc::new(RequestLabels::new("get_order", "GET", "/api/orders/{order_ids}".into())),
            server: Arc::new(ServerLabels {
                scheme: "http",
                address: "nginx".into(),
                port: 80,
                authority: "nginx".into(),
            }),
            target: "/api/orders/7?x=1".into(),
            outcome,
            mode: "steady",
            job_id: Some("job-1".into()),
            step,
        }
        .to_span()
    }

    #[test]
    fn a_client_span_has_the_http_semantic_conventions_and_ours() {
        let span = client(SpanOutcome::Answered(200), None);
        assert_eq!(span.name, "GET /api/orders/{order_ids}");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(text(&span, "http.request.method"), Some(Value::StringValue("GET".into())));
        assert_eq!(text(&span, "url.full"), Some(Value::StringValue("http://nginx/api/orders/7?x=1".into())));
        assert_eq!(text(&span, "server.port"), Some(Value::IntValue(80)));
        assert_eq!(text(&span, "http.response.status_code"), Some(Value::IntValue(200)));
        assert_eq!(text(&span, "trafficgen.request"), Some(Value::StringValue("get_order".into())));
        assert_eq!(text(&span, "trafficgen.job_id"), Some(Value::StringValue("job-1".into())));
        assert_eq!((text(&span, "error.type"), span.status.clone()), (None, None));
        assert_eq!(text(&span, "trafficgen.journey"), None);
    }

    #[test]
    fn failures_and_error_statuses_are_errors_with_a_type() {
        let span = client(SpanOutcome::Answered(503), None);
        assert_eq!(text(&span, "error.type"), Some(Value::StringValue("503".into())));
        assert_eq!(span.status.unwrap().code, StatusCode::Error as i32);
        let span = client(SpanOutcome::Failed("timeout"), Some(StepLabels { journey: "get".into() }));
        assert_eq!(text(&span, "error.type"), Some(Value::StringValue("timeout".into())));
        assert_eq!(text(&span, "http.response.status_code"), None);
        assert_eq!(text(&span, "trafficgen.journey"), Some(Value::StringValue("get".into())));
        assert_eq!(
            text(&span, "trafficgen.step"),
            Some(Value::StringValue("get_order".into())),
            "get_order is not get/…: its whole name"
        );
    }

    #[test]
    fn template_holes_keep_a_name_and_no_value() {
        assert_eq!(template_hole(" pool(order_ids) "), "{order_ids}");
        assert_eq!(template_hole("uuid()"), "{uuid}");
        assert_eq!(template_hole("random_int(1, 10)"), "{random_int}");
        assert_eq!(template_hole("choice('a', 'b')"), "{choice}");
    }
}
