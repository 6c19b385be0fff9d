//! The queue and the thread that empties it in batches.
//!
//! The queue is a bounded `std::sync::mpsc::sync_channel` the thread only
//! ever polls (`try_recv`): with no receiver parked on it, `try_send` is a
//! few atomic operations and never takes a lock, so a caller cannot be
//! held up by the exporter, whatever the collector does. A full queue
//! drops the span (counted). The thread sleeps until its batch is due (its
//! oldest span has waited the schedule delay) and is woken early by the
//! callers once per [`Wake::every`] spans queued (one `unpark`, amortised
//! over a batch), so it wakes a few times a second at most, not on a
//! timer whatever the rate. It posts a batch when it is full or due, and
//! after a failed post waits before the next (no batch is posted twice: a
//! collector in trouble gets no storm of retries).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, channel, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::encode::BatchFrame;
use super::http::{Answer, Client, PostError};
use super::proto::collector::trace::v1::ExportTraceServiceResponse;
use super::settings::ExportSettings;
use super::{DropReason, ExportCounters, ToSpan};

/// The shortest sleep of the thread: a batch that cannot be posted yet
/// (after a failure) never makes it spin.
const MIN_SLEEP: Duration = Duration::from_millis(1);
/// How long `shutdown` waits beyond its grace for the thread to end.
const END_SLACK: Duration = Duration::from_millis(50);
/// The first wait after a failed post, doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How the callers wake the thread: once every `every` spans queued.
struct Wake {
    pushed: AtomicUsize,
    every: usize,
    thread: OnceLock<Thread>,
}

impl Wake {
    /// A span was queued: every `every`th wakes the thread (a batch is
    /// there, and the queue keeps room for as many again).
    fn pushed(&self) {
        let n = self.pushed.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if n.is_multiple_of(self.every)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
    }
}

/// Where spans are handed over: cheap to clone, never blocks.
pub struct SpanQueue<S> {
    sender: SyncSender<S>,
    counters: Arc<dyn ExportCounters>,
    wake: Arc<Wake>,
}

impl<S> Clone for SpanQueue<S> {
    fn clone(&self) -> Self {
        SpanQueue { sender: self.sender.clone(), counters: Arc::clone(&self.counters), wake: Arc::clone(&self.wake) }
    }
}

impl<S> SpanQueue<S> {
    /// Queues `span`, or drops it (counted) if the queue is full or the
    /// exporter has stopped.
    pub fn push(&self, span: S) {
        match self.sender.try_send(span) {
            Ok(()) => self.wake.pushed(),
            Err(TrySendError::Full(_)) => self.counters.dropped(DropReason::QueueFull, 1),
            Err(TrySendError::Disconnected(_)) => self.counters.dropped(DropReason::Shutdown, 1),
        }
    }
}

/// The running exporter: stop it to flush what is queued.
pub struct Exporter {
    stop: std::sync::mpsc::Sender<Instant>,
    done: Receiver<()>,
    thread: Thread,
}

impl Exporter {
    /// Posts what is queued (within `grace`), counts what is left as
    /// dropped at shutdown, and ends the thread; waits at most `grace`.
    pub fn shutdown(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        if self.stop.send(deadline).is_ok() {
            self.thread.unpark();
            let _ = self.done.recv_timeout(grace + END_SLACK);
        }
    }
}

/// Starts the exporter's thread.
pub fn start<S: ToSpan>(
    settings: ExportSettings,
    counters: Arc<dyn ExportCounters>,
) -> std::io::Result<(SpanQueue<S>, Exporter)> {
    let (sender, receiver) = sync_channel(settings.queue_size.max(1));
    let wake = Arc::new(Wake {
        pushed: AtomicUsize::new(0),
        every: settings.batch_size.min(settings.queue_size / 2).max(1),
        thread: OnceLock::new(),
    });
    let (stop, stop_requests) = channel();
    let (done_tx, done) = channel();
    let mut batcher = Batcher {
        client: Client::new(settings.endpoint.clone(), &settings.headers),
        frame: BatchFrame::new(&settings.resource),
        counters: Arc::clone(&counters),
        batch: Vec::with_capacity(settings.batch_size),
        body: Vec::new(),
        oldest: None,
        last_look: Instant::now(),
        backoff: None,
        failures: 0,
        settings,
    };
    let handle = std::thread::Builder::new().name("trafficgen-spans".into()).spawn(move || {
        batcher.run(&receiver, &stop_requests);
        let _ = done_tx.send(());
    })?;
    let thread = handle.thread().clone();
    let _ = wake.thread.set(thread.clone());
    Ok((SpanQueue { sender, counters, wake }, Exporter { stop, done, thread }))
}

struct Batcher<S> {
    settings: ExportSettings,
    client: Client,
    frame: BatchFrame,
    counters: Arc<dyn ExportCounters>,
    batch: Vec<S>,
    body: Vec<u8>,
    /// When the oldest span of `batch` was queued, at the earliest: the
    /// look at the queue before the one that took it (so a batch is posted
    /// early rather than held past the schedule delay).
    oldest: Option<Instant>,
    /// The last look at the queue.
    last_look: Instant,
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
            let due_at = if full || (!open && !self.batch.is_empty()) {
                Some(now)
            } else {
                self.oldest.map(|t| t + self.settings.schedule_delay)
            };
            let (sleep, post) = next_step(now, due_at, self.backoff, self.settings.schedule_delay);
            if post {
                self.post(now + self.settings.timeout);
                // More may be waiting already: look again at once.
                continue;
            }
            if !open && self.batch.is_empty() {
                return;
            }
            std::thread::park_timeout(sleep);
        }
    }

    /// Moves queued spans into the batch, up to its size; false once every
    /// sender is gone.
    fn fill(&mut self, queue: &Receiver<S>) -> bool {
        let queued_since = std::mem::replace(&mut self.last_look, Instant::now());
        while self.batch.len() < self.settings.batch_size {
            match queue.try_recv() {
                Ok(span) => {
                    self.oldest.get_or_insert(queued_since);
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

/// What the thread does at `now`: post the batch (when it is due, `due_at`,
/// and no failure holds posts back until `backoff`), or sleep until it is
/// due or the failure's wait is over — with nothing queued, a schedule
/// delay (the callers wake it when a batch comes).
fn next_step(
    now: Instant,
    due_at: Option<Instant>,
    backoff: Option<Instant>,
    schedule_delay: Duration,
) -> (Duration, bool) {
    let allowed_at = backoff.map_or(now, |until| until.max(now));
    match due_at {
        Some(due) if due.max(allowed_at) <= now => (Duration::ZERO, true),
        Some(due) => (due.max(allowed_at).saturating_duration_since(now).max(MIN_SLEEP), false),
        None => (schedule_delay.max(MIN_SLEEP), false),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_posts_when_due_and_allowed_and_otherwise_sleeps_until_then() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let delay = ms(1000);
        // (due in, backoff until, expected sleep, post)
        let cases: [(Option<Duration>, Option<Duration>, Duration, bool); 6] = [
            // Nothing queued: a schedule delay (callers wake it for a batch).
            (None, None, delay, false),
            // A batch due now, or overdue, with no failure: posted at once.
            (Some(ms(0)), None, Duration::ZERO, true),
            // Due in 300 ms: sleeps 300 ms.
            (Some(ms(300)), None, ms(300), false),
            // Due now but held back 2 s by a failure: sleeps 2 s, no spin.
            (Some(ms(0)), Some(ms(2000)), ms(2000), false),
            // Due after the failure's wait: sleeps until due.
            (Some(ms(700)), Some(ms(200)), ms(700), false),
            // A failure's wait over, batch due: posted.
            (Some(ms(0)), Some(ms(0)), Duration::ZERO, true),
        ];
        for (due, backoff, sleep, post) in cases {
            let got = next_step(now, due.map(|d| now + d), backoff.map(|b| now + b), delay);
            assert_eq!(got, (sleep, post), "due {due:?}, backoff {backoff:?}");
        }
        // Never a zero sleep without a post (a spin).
        let almost = next_step(now, Some(now + Duration::from_nanos(10)), None, delay);
        assert_eq!(almost, (MIN_SLEEP, false));
    }
}
