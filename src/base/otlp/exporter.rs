//! The queue and the thread that empties it in batches.
//!
//! The queue is a bounded `std::sync::mpsc::sync_channel` the thread only
//! ever polls (`try_recv`): with no receiver parked on it, `try_send` is a
//! few atomic operations and never takes a lock, so a caller cannot be
//! held up by the exporter, whatever the collector does. A full queue
//! drops the span (counted). The thread wakes every [`POLL`], posts a
//! batch when it is full or its oldest span has waited the schedule
//! delay, and after a failed post waits before the next (no batch is
//! posted twice: a collector in trouble gets no storm of retries).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, channel, sync_channel};
use std::time::{Duration, Instant};

use super::encode::BatchFrame;
use super::http::{Answer, Client, PostError};
use super::proto::collector::trace::v1::ExportTraceServiceResponse;
use super::settings::ExportSettings;
use super::{DropReason, ExportCounters, ToSpan};

/// How often the thread looks at the queue.
const POLL: Duration = Duration::from_millis(50);
/// The first wait after a failed post, doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where spans are handed over: cheap to clone, never blocks.
pub struct SpanQueue<S> {
    sender: SyncSender<S>,
    counters: Arc<dyn ExportCounters>,
}

impl<S> Clone for SpanQueue<S> {
    fn clone(&self) -> Self {
        SpanQueue { sender: self.sender.clone(), counters: Arc::clone(&self.counters) }
    }
}

impl<S> SpanQueue<S> {
    /// Queues `span`, or drops it (counted) if the queue is full or the
    /// exporter has stopped.
    pub fn push(&self, span: S) {
        match self.sender.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.counters.dropped(DropReason::QueueFull, 1),
            Err(TrySendError::Disconnected(_)) => self.counters.dropped(DropReason::Shutdown, 1),
        }
    }
}

/// The running exporter: stop it to flush what is queued.
pub struct Exporter {
    stop: std::sync::mpsc::Sender<Instant>,
    done: Receiver<()>,
}

impl Exporter {
    /// Posts what is queued (within `grace`), counts what is left as
    /// dropped at shutdown, and ends the thread; waits at most `grace`.
    pub fn shutdown(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        if self.stop.send(deadline).is_ok() {
            let _ = self.done.recv_timeout(grace + POLL);
        }
    }
}

/// Starts the exporter's thread.
pub fn start<S: ToSpan>(
    settings: ExportSettings,
    counters: Arc<dyn ExportCounters>,
) -> std::io::Result<(SpanQueue<S>, Exporter)> {
    let (sender, receiver) = sync_channel(settings.queue_size.max(1));
    let (stop, stop_requests) = channel();
    let (done_tx, done) = channel();
    let mut batcher = Batcher {
        client: Client::new(settings.endpoint.clone(), &settings.headers),
        frame: BatchFrame::new(&settings.resource),
        counters: Arc::clone(&counters),
        batch: Vec::with_capacity(settings.batch_size),
        body: Vec::new(),
        oldest: None,
        backoff: None,
        failures: 0,
        settings,
    };
    std::thread::Builder::new().name("trafficgen-spans".into()).spawn(move || {
        batcher.run(&receiver, &stop_requests);
        let _ = done_tx.send(());
    })?;
    Ok((SpanQueue { sender, counters }, Exporter { stop, done }))
}

struct Batcher<S> {
    settings: ExportSettings,
    client: Client,
    frame: BatchFrame,
    counters: Arc<dyn ExportCounters>,
    batch: Vec<S>,
    body: Vec<u8>,
    /// When the oldest span of `batch` was taken from the queue.
    oldest: Option<Instant>,
    /// No post before this (after a failure).
    backoff: Option<Instant>,
    failures: u32,
}

impl<S: ToSpan> Batcher<S> {
    fn run(&mut self, queue: &Receiver<S>, stop: &Receiver<Instant>) {
        let mut open = true;
        loop {
            if let Ok(deadline) = stop.try_recv() {
                self.flush(queue, deadline);
                return;
            }
            open &= self.fill(queue);
            let now = Instant::now();
            let full = self.batch.len() >= self.settings.batch_size;
            let waited = self.oldest.is_some_and(|t| now.duration_since(t) >= self.settings.schedule_delay);
            let ready = full || waited || (!open && !self.batch.is_empty());
            if ready && self.backoff.is_none_or(|until| now >= until) {
                self.post(now + self.settings.timeout);
                // More may be waiting already: look again at once.
                continue;
            }
            if !open && self.batch.is_empty() {
                return;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Moves queued spans into the batch, up to its size; false once every
    /// sender is gone.
    fn fill(&mut self, queue: &Receiver<S>) -> bool {
        while self.batch.len() < self.settings.batch_size {
            match queue.try_recv() {
                Ok(span) => {
                    self.oldest.get_or_insert_with(Instant::now);
                    self.batch.push(span);
                }
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    /// At shutdown: posts what there is until `deadline`, then counts the
    /// rest as dropped.
    fn flush(&mut self, queue: &Receiver<S>, deadline: Instant) {
        loop {
            self.fill(queue);
            if self.batch.is_empty() {
                return;
            }
            if Instant::now() >= deadline || self.backoff.is_some_and(|until| until > deadline) {
                break;
            }
            self.post(deadline.min(Instant::now() + self.settings.timeout));
        }
        let mut left = self.batch.len() as u64;
        self.batch.clear();
        while queue.try_recv().is_ok() {
            left += 1;
        }
        self.counters.dropped(DropReason::Shutdown, left);
    }

    fn post(&mut self, deadline: Instant) {
        let spans = self.batch.len() as u64;
        self.frame.encode(&self.batch, &mut self.body);
        self.batch.clear();
        self.oldest = None;
        let outcome = self.client.post(&self.body, deadline);
        if self.body.capacity() > 4 * 1024 * 1024 {
            // One huge batch must not keep its buffer for ever.
            self.body = Vec::new();
        }
        match outcome {
            Ok(Answer { status, body }) if (200..300).contains(&status) => {
                let rejected = rejected_spans(&body).min(spans);
                self.counters.exported(spans - rejected);
                if rejected > 0 {
                    self.counters.dropped(DropReason::Rejected, rejected);
                }
                self.failures = 0;
                self.backoff = None;
            }
            Ok(Answer { status, .. }) => self.failed(DropReason::Status, spans, &format_args!("answered {status}")),
            Err(PostError::Connect(e)) => self.failed(DropReason::Connect, spans, &e),
            Err(PostError::Timeout) => self.failed(
                DropReason::Timeout,
                spans,
                &format_args!("no answer within {} ms", self.settings.timeout.as_millis()),
            ),
            Err(PostError::Io(e)) => self.failed(DropReason::Io, spans, &e),
        }
    }

    fn failed(&mut self, reason: DropReason, spans: u64, error: &dyn std::fmt::Display) {
        self.counters.dropped(reason, spans);
        let backoff = FIRST_BACKOFF.saturating_mul(1 << self.failures.min(6)).min(MAX_BACKOFF);
        // One line per failure, at most one per half second to five:
        // the backoff bounds the log too.
        log::warn!(endpoint = self.settings.endpoint.url().as_str(), reason = reason.as_str(), spans = spans,
            retry_in_ms = backoff.as_millis() as u64, error:% = error; "could not export spans");
        self.failures = self.failures.saturating_add(1);
        self.backoff = Some(Instant::now() + backoff);
    }
}

/// Spans the collector says it rejected (0 when it says nothing).
fn rejected_spans(body: &[u8]) -> u64 {
    use prost::Message;
    ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}
