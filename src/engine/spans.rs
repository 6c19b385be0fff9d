//! The engine's side of client spans (issue 28): the sampling decision
//! before a request is rendered, the ids its `traceparent` carried after,
//! and the span when its answer is recorded. The worker holds a [`Tracer`]
//! only while spans are exported; without one nothing here runs.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::{Rng, RngExt};
use tokio::sync::watch;

use crate::base::trace_context::{Sampler, SpanId, TraceId};
use crate::base::url::TargetUrl;
use crate::observe::trace::{
    ClientSpan, JourneySpan, RequestLabels, ServerLabels, SpanIds, SpanOutcome, SpanSink, StepLabels, template_hole,
};
use crate::workload::template::Part;
use crate::workload::{NextTrace, RequestId, RunState, Workload};

/// The most of a request target a span keeps (`url.full`): a bound on
/// what the span queue holds (see `MEMORY_BUDGET_MB`).
pub const MAX_URL_BYTES: usize = 256;

/// What the engine is given when spans are exported.
#[derive(Clone)]
pub struct SpanSetup {
    pub sink: SpanSink,
    pub sampler: Sampler,
}

/// A journey instance's trace: its own span is the parent of its steps'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JourneyTrace {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
    start_unix_nanos: u64,
}

/// What a sampled request carries from its send to its answer.
#[derive(Debug)]
pub(super) struct SpanStart {
    ids: SpanIds,
    start_unix_nanos: u64,
    request: Arc<RequestLabels>,
    target: Box<str>,
    step: Option<StepLabels>,
}

impl SpanStart {
    pub(super) fn trace_id(&self) -> TraceId {
        self.ids.trace_id
    }
}

pub(super) struct Tracer {
    setup: SpanSetup,
    server: Arc<ServerLabels>,
    /// By request id of the running workload.
    labels: Vec<Arc<RequestLabels>>,
    /// Journey names, by journey id of the running workload.
    journeys: Vec<Arc<str>>,
    mode: &'static str,
    jobs: watch::Receiver<Option<Arc<str>>>,
    job: Option<Arc<str>>,
}

impl Tracer {
    pub(super) fn new(
        setup: SpanSetup,
        target: &TargetUrl,
        workload: &Workload,
        jobs: watch::Receiver<Option<Arc<str>>>,
    ) -> Tracer {
        let server = ServerLabels {
            scheme: if target.is_https() { "https" } else { "http" },
            address: target.host().to_string(),
            port: target.port(),
            authority: target.authority().to_string(),
        };
        let mut tracer = Tracer {
            setup,
            server: Arc::new(server),
            labels: Vec::new(),
            journeys: Vec::new(),
            mode: "steady",
            jobs,
            job: None,
        };
        tracer.follow_workload(workload, target.path_prefix());
        tracer
    }

    /// Labels for every request of a workload taken over.
    pub(super) fn follow_workload(&mut self, workload: &Workload, path_prefix: &str) {
        self.labels = workload
            .requests()
            .map(|id| {
                let method = workload.method(id).as_str();
                Arc::new(RequestLabels::new(workload.name(id), method, url_template(workload, id, path_prefix)))
            })
            .collect();
        self.journeys = workload.journeys().map(|j| Arc::from(workload.journey_name(j))).collect();
    }

    /// `trafficgen.mode` of the spans from now on.
    pub(super) fn set_mode(&mut self, mode: &'static str) {
        self.mode = mode;
    }

    /// Before a root request is rendered: its trace id and the sampler's
    /// decision, which the `traceparent` will carry.
    pub(super) fn before_render(&self, rng: &mut impl Rng, state: &mut RunState) {
        let trace_id = TraceId::from_random(rng.random());
        let sampled = self.setup.sampler.sample(None, trace_id);
        state.set_trace(Some(NextTrace { trace_id, sampled }));
    }

    /// A journey instance starting: one trace for all its steps, sampled
    /// or not as a whole.
    pub(super) fn begin_journey(&self, rng: &mut impl Rng) -> JourneyTrace {
        let trace_id = TraceId::from_random(rng.random());
        JourneyTrace {
            trace_id,
            span_id: SpanId::from_random(rng.random()),
            sampled: self.setup.sampler.sample(None, trace_id),
            start_unix_nanos: unix_nanos(SystemTime::now()),
        }
    }

    /// Before a journey step is rendered: the instance's trace and flag.
    pub(super) fn before_step(&self, state: &mut RunState, trace: &JourneyTrace) {
        state.set_trace(Some(NextTrace { trace_id: trace.trace_id, sampled: trace.sampled }));
    }

    /// The labels of a step of journey `journey` (by id), and the parent
    /// its span has.
    pub(super) fn step_labels(&self, journey: usize, trace: &JourneyTrace) -> (Option<SpanId>, Option<StepLabels>) {
        let labels = self.journeys.get(journey).map(|name| StepLabels { journey: Arc::clone(name) });
        (Some(trace.span_id), labels)
    }

    /// Queues the span of a journey instance that ended (`completed`: it
    /// ran every step), if its trace is sampled.
    pub(super) fn end_journey(
        &mut self,
        trace: &JourneyTrace,
        journey: usize,
        took: Duration,
        completed: bool,
        steps: usize,
    ) {
        if !trace.sampled {
            return;
        }
        let Some(name) = self.journeys.get(journey).cloned() else { return };
        self.follow_job();
        let end = trace.start_unix_nanos.saturating_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        self.setup.sink.finish_journey(JourneySpan {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            start_unix_nanos: trace.start_unix_nanos,
            end_unix_nanos: end,
            journey: name,
            mode: self.mode,
            job_id: self.job.clone(),
            completed,
            steps: u32::try_from(steps).unwrap_or(u32::MAX),
        });
    }

    fn follow_job(&mut self) {
        if self.jobs.has_changed().unwrap_or(false) {
            self.job = self.jobs.borrow_and_update().clone();
        }
    }

    /// After rendering `request`: its span's start if its `traceparent`
    /// says sampled. `target` is the request target as sent.
    pub(super) fn after_render(
        &self,
        state: &mut RunState,
        request: RequestId,
        target: &[u8],
        parent: Option<SpanId>,
        step: Option<StepLabels>,
    ) -> Option<Box<SpanStart>> {
        let sent = state.take_trace().filter(|t| t.sampled)?;
        let labels = self.labels.get(request.index())?;
        Some(Box::new(SpanStart {
            ids: SpanIds { trace_id: sent.trace_id, span_id: sent.parent_id, parent },
            start_unix_nanos: unix_nanos(SystemTime::now()),
            request: Arc::clone(labels),
            target: String::from_utf8_lossy(&target[..target.len().min(MAX_URL_BYTES)]).into(),
            step,
        }))
    }

    /// Queues the span of an answered or failed request; `took`: from
    /// its send to its end.
    pub(super) fn finish(&mut self, start: SpanStart, took: Duration, outcome: SpanOutcome) {
        self.follow_job();
        let end = start.start_unix_nanos.saturating_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        self.setup.sink.finish(ClientSpan {
            ids: start.ids,
            start_unix_nanos: start.start_unix_nanos,
            end_unix_nanos: end,
            request: start.request,
            server: Arc::clone(&self.server),
            target: start.target,
            outcome,
            mode: self.mode,
            job_id: self.job.clone(),
            step: start.step,
        });
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The path a request is sent to, each hole by its name: `url.template`.
fn url_template(workload: &Workload, id: RequestId, path_prefix: &str) -> String {
    let mut template = path_prefix.to_string();
    let Some(def) = workload.model().all_requests().find(|r| r.name == workload.name(id)) else {
        return template;
    };
    for part in &def.path.parts {
        match part {
            Part::Literal(text) => template.push_str(text),
            Part::Hole(hole, _) => template.push_str(&template_hole(&hole.to_string())),
        }
    }
    template
}

/// The request target of a rendered HTTP/1.1 request: between the first
/// two spaces of its request line.
pub(super) fn request_target(rendered: &[u8]) -> &[u8] {
    let line_end = rendered.iter().position(|&b| b == b'\r').unwrap_or(rendered.len());
    let line = &rendered[..line_end];
    let mut words = line.splitn(3, |&b| b == b' ');
    let _method = words.next();
    words.next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_read_off_the_request_line() {
        assert_eq!(request_target(b"GET /api/orders/7?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"), b"/api/orders/7?x=1");
        assert_eq!(request_target(b"garbage"), b"");
    }
}
