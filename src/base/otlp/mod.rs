//! Spans over OTLP/HTTP (protobuf), off the hot path: whoever makes spans
//! hands a small record of its own to a bounded queue without ever
//! waiting ([`SpanQueue::push`]); a thread of the exporter's own turns
//! records into OpenTelemetry protobuf messages (the official
//! definitions, `opentelemetry-proto`, encoded with `prost`) and posts
//! them in batches. A collector that is slow, down or failing loses
//! spans, counted by reason; it never slows the caller or grows memory.
//!
//! Here rather than in `observe`: the demo target, which may only use
//! `base`, continues the sidecar's traces and exports its own spans the
//! same way. Nothing here knows what a span is about.

mod encode;
mod exporter;
mod http;
pub mod settings;

pub use encode::{attribute, flags, span};
pub use exporter::{Exporter, SpanQueue, start};
pub use opentelemetry_proto::tonic as proto;
pub use settings::{Endpoint, ExportSettings, SpanExport};

/// Why spans were not exported (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The queue was full when the span ended: the exporter is behind.
    QueueFull,
    /// The collector's name did not resolve or it refused the connection.
    Connect,
    /// No answer within the export timeout.
    Timeout,
    /// The collector answered with an error status (4xx, 5xx).
    Status,
    /// The collector took the batch but said it rejected these spans.
    Rejected,
    /// The connection broke, or the answer was not HTTP.
    Io,
    /// Still queued when the program stopped.
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::QueueFull,
        DropReason::Connect,
        DropReason::Timeout,
        DropReason::Status,
        DropReason::Rejected,
        DropReason::Io,
        DropReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Connect => "connect",
            DropReason::Timeout => "timeout",
            DropReason::Status => "status",
            DropReason::Rejected => "rejected",
            DropReason::Io => "io",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Where the exporter counts what became of spans; called from the
/// caller's thread (`QueueFull`) and the exporter's, so it must not block.
pub trait ExportCounters: Send + Sync + 'static {
    fn exported(&self, spans: u64);
    fn dropped(&self, reason: DropReason, spans: u64);
}

/// A record the caller queues; turned into a span on the exporter's thread.
pub trait ToSpan: Send + 'static {
    fn to_span(&self) -> proto::trace::v1::Span;
}
