//! Server spans (issue 28): every API request the demo target answers
//! continues the caller's trace from its `traceparent` (a SERVER span,
//! child of the caller's span), or starts one; exported over OTLP like
//! the sidecar's, so one request is one trace end to end. Named and
//! attributed by the OpenTelemetry HTTP server semantic conventions.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::{ServiceRequest, ServiceResponse};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use rand::RngExt;

use crate::base::otlp::proto::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};
use crate::base::otlp::{self, DropReason, ExportCounters, Exporter, SpanExport, SpanQueue, ToSpan, attribute};
use crate::base::trace_context::{Sampler, SpanId, TraceId, TraceParent};

/// The span export of a running demo target.
pub struct ServerSpans {
    queue: SpanQueue<ServerSpan>,
    sampler: Sampler,
    port: u16,
}

impl ServerSpans {
    /// Starts the exporter, counting into `registry`.
    pub fn start(settings: &SpanExport, registry: &Registry, port: u16) -> anyhow::Result<(ServerSpans, Exporter)> {
        let counters = Counters::register(registry)?;
        let (queue, exporter) = otlp::start(settings.export.clone(), counters)?;
        Ok((ServerSpans { queue, sampler: settings.sampler, port }, exporter))
    }

    /// Where this request's span would stand, if it is sampled.
    pub fn begin(&self, req: &ServiceRequest) -> Option<Begun> {
        let parent = req.headers().get("traceparent").and_then(|v| TraceParent::parse(v.as_bytes()));
        let trace_id = parent.map_or_else(|| TraceId::from_random(rand::rng().random()), |p| p.trace_id);
        if !self.sampler.sample(parent.map(|p| p.sampled), trace_id) {
            return None;
        }
        Some(Begun {
            trace_id,
            parent: parent.map(|p| p.parent_id),
            span_id: SpanId::from_random(rand::rng().random()),
            wall: SystemTime::now(),
            at: Instant::now(),
        })
    }

    /// Queues the span of an answered request.
    pub fn end<B>(&self, begun: Begun, res: &ServiceResponse<B>) {
        let req = res.request();
        let took = begun.at.elapsed();
        let start = begun.wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let host = req.connection_info().host().to_string();
        let address = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).to_string();
        self.queue.push(ServerSpan {
            trace_id: begun.trace_id,
            span_id: begun.span_id,
            parent: begun.parent,
            start_unix_nanos: start,
            end_unix_nanos: start.saturating_add(took.as_nanos() as u64),
            method: req.method().as_str().into(),
            route: req.match_pattern().map(String::into_boxed_str),
            path: req.path().into(),
            status: res.status().as_u16(),
            server_address: address.into(),
            server_port: self.port,
            client_address: req.peer_addr().map(|a| a.ip().to_string().into_boxed_str()),
        });
    }
}

/// A sampled request being answered.
pub struct Begun {
    trace_id: TraceId,
    parent: Option<SpanId>,
    span_id: SpanId,
    wall: SystemTime,
    at: Instant,
}

/// One answered request, queued for export.
pub struct ServerSpan {
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    start_unix_nanos: u64,
    end_unix_nanos: u64,
    method: Box<str>,
    /// The matched route (`/orders/{id}`); `None` for no route (404).
    route: Option<Box<str>>,
    path: Box<str>,
    status: u16,
    server_address: Box<str>,
    server_port: u16,
    client_address: Option<Box<str>>,
}

impl ToSpan for ServerSpan {
    fn to_span(&self) -> Span {
        let name = match &self.route {
            Some(route) => format!("{} {route}", self.method),
            None => self.method.to_string(),
        };
        let mut span = otlp::span(
            self.trace_id,
            self.span_id,
            self.parent,
            name,
            SpanKind::Server,
            self.start_unix_nanos,
            self.end_unix_nanos,
        );
        span.flags = otlp::flags(true, self.parent.is_some());
        let attributes = &mut span.attributes;
        attributes.push(attribute("http.request.method", &*self.method));
        attributes.push(attribute("url.scheme", "http"));
        attributes.push(attribute("url.path", &*self.path));
        if let Some(route) = &self.route {
            attributes.push(attribute("http.route", &**route));
        }
        attributes.push(attribute("http.response.status_code", i64::from(self.status)));
        attributes.push(attribute("server.address", &*self.server_address));
        attributes.push(attribute("server.port", i64::from(self.server_port)));
        attributes.push(attribute("network.protocol.version", "1.1"));
        if let Some(client) = &self.client_address {
            attributes.push(attribute("client.address", &**client));
        }
        // A server span is an error only from 500 up: a 4xx is the caller's.
        if self.status >= 500 {
            attributes.push(attribute("error.type", self.status.to_string()));
            span.status = Some(Status { code: StatusCode::Error as i32, message: String::new() });
        }
        span
    }
}

/// `demo_target_spans_exported_total` and `demo_target_spans_dropped_total{reason}`.
struct Counters {
    exported: IntCounter,
    dropped: Vec<IntCounter>,
}

impl Counters {
    fn register(registry: &Registry) -> Result<Arc<Counters>, prometheus::Error> {
        let exported = IntCounter::new("demo_target_spans_exported_total", "Server spans the OTLP collector accepted")?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "demo_target_spans_dropped_total",
                "Server spans not exported, by reason (queue_full, connect, timeout, status, rejected, io, shutdown)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(exported.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        let dropped = DropReason::ALL.iter().map(|r| dropped.with_label_values(&[r.as_str()])).collect();
        Ok(Arc::new(Counters { exported, dropped }))
    }
}

impl ExportCounters for Counters {
    fn exported(&self, spans: u64) {
        self.exported.inc_by(spans);
    }

    fn dropped(&self, reason: DropReason, spans: u64) {
        if let Some(counter) = self.dropped.get(reason as usize) {
            counter.inc_by(spans);
        }
    }
}
