//! Live events as Server-Sent Events: a hub that fans each event out to at
//! most [`MAX_STREAMS`] subscribers, each with its own small buffer.
//!
//! Publishing never waits: an event is rendered once into a
//! `text/event-stream` frame (shared by every subscriber, not copied), and
//! offered to each buffer; a reader too slow to keep up loses the event,
//! counted against it (the `id:` numbers show the gap), and never slows the
//! publisher. One slot of each buffer is kept for the final event (a job's
//! `summary`, or `shutdown`), so a stream always ends with it. A subscription
//! is an actix body stream; dropping it (the client went away) frees its
//! place at once. After [`EventHub::close`] every stream ends and new ones
//! are refused.
//!
//! No SSE crate: a `Stream` of `Bytes` is all actix-web needs, and the
//! format is four line types.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use actix_web::web::Bytes;
use futures_util::Stream;
use parking_lot::Mutex;
use prometheus::IntCounter;
use serde::Serialize;
use tokio::sync::mpsc;

/// Most streams open at once; the next is refused (503).
pub const MAX_STREAMS: usize = 64;
/// Frames waiting per stream, the final event's reserved slot included.
pub const BUFFER_FRAMES: usize = 64;
/// Largest `data:` a frame carries; bigger events are replaced by an error
/// event, so one huge summary cannot fill every buffer's memory.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// Which stream an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `GET /events`: mode changes, job start and end, stats every second.
    Sidecar,
    /// `GET /jobs/{id}/events`: that job's progress, then its summary.
    Job(String),
}

/// Event names, as the `event:` line gives them.
pub mod names {
    /// A job's numbers, every 500 ms.
    pub const PROGRESS: &str = "progress";
    /// A job's summary: the last event of its stream.
    pub const SUMMARY: &str = "summary";
    /// The mode or rate changed.
    pub const MODE: &str = "mode";
    pub const JOB_STARTED: &str = "job_started";
    pub const JOB_ENDED: &str = "job_ended";
    /// The sidecar's numbers, every second.
    pub const STATS: &str = "stats";
    /// The sidecar is stopping: the last event of every stream.
    pub const SHUTDOWN: &str = "shutdown";
    /// An SLO's verdict changed (met, missed, no data).
    pub const SLO: &str = "slo";
}

/// `slo`: an objective's verdict over the window changed (on the sidecar stream).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloEvent {
    /// The objective, normalised (`p95<300ms`).
    pub slo: String,
    /// `met`, `missed` or `no_data`.
    pub outcome: &'static str,
    pub previous: &'static str,
    /// In the objective's unit (ms, or percent); `null` without data.
    pub value: Option<f64>,
    pub window_secs: f64,
}

/// `mode`: the mode or rate changed (on the sidecar stream).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeEvent {
    pub mode: &'static str,
    pub rps: f64,
    pub previous_mode: &'static str,
    pub previous_rps: f64,
    /// What made it: `api`, `timed_mode_ended`, `job_started`, `job_ended`, `config`.
    pub cause: &'static str,
    /// For a timed mode: seconds until the mode before comes back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returns_in_secs: Option<f64>,
}

/// `job_started` and `job_ended` (on the sidecar stream).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    pub job_id: String,
    pub scenario: &'static str,
    /// `running`, `completed` or `stopped`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<&'static str>,
}

/// `stats`: the sidecar's numbers every second (on the sidecar stream).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsEvent {
    pub mode: &'static str,
    /// `warming_up`, `running` or `paused`.
    pub state: &'static str,
    /// `target_rps` (this replica, asked now), `cluster_target_rps`,
    /// `cluster_achieved_rps` and `replicas`, as in `/status`.
    #[serde(flatten)]
    pub rates: crate::control::rates::RatesNow,
    /// This replica's, over the last second or, at low rates, the few
    /// seconds it takes to see about 10 requests (`achieved_window_secs`):
    /// at 2/s a one-second count would swing between 1 and 3.
    pub achieved_rps: f64,
    /// Users mode (the closed model): this replica's users wanted and running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<UsersEvent>,
    pub achieved_window_secs: f64,
    pub in_flight: u64,
    /// Since start.
    pub requests: crate::jobs::Totals,
    /// Over the last second.
    pub error_ratio: f64,
    /// Over the last 10 s, overall.
    pub latency_ms: crate::observe::latency::LatencyPercentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// A stats event's `users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UsersEvent {
    pub target: usize,
    pub active: usize,
    pub finishing: usize,
}

/// Why a stream cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("too many event streams are open (at most {MAX_STREAMS}); try again later")]
    Full,
    #[error("the sidecar is shutting down")]
    Closed,
}

struct Subscriber {
    id: u64,
    topic: Topic,
    tx: mpsc::Sender<Bytes>,
    dropped: u64,
}

#[derive(Default)]
struct Inner {
    subscribers: Vec<Subscriber>,
    closed: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    next_subscriber: AtomicU64,
    next_event: AtomicU64,
    /// Frames lost to slow readers, over the hub's life (exported as
    /// `trafficgen_events_dropped_total` when the hub is the sidecar's).
    dropped: IntCounter,
}

/// The hub; clones share it.
#[derive(Clone)]
pub struct EventHub {
    shared: Arc<Shared>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    /// A hub that counts lost frames only for [`EventHub::dropped`].
    pub fn new() -> EventHub {
        // A fixed, valid name and help: this cannot fail.
        let dropped = IntCounter::new("events_dropped", "frames lost").expect("a valid counter");
        EventHub::counting_into(dropped)
    }

    /// A hub that counts the frames lost to slow readers into `dropped`
    /// (see [`crate::observe::metrics::Metrics::events_dropped`]).
    pub fn counting_into(dropped: IntCounter) -> EventHub {
        EventHub {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                next_subscriber: AtomicU64::new(1),
                next_event: AtomicU64::new(1),
                dropped,
            }),
        }
    }

    /// Opens a stream of `topic`'s events, from now on.
    pub fn subscribe(&self, topic: Topic) -> Result<Subscription, SubscribeError> {
        let mut inner = self.shared.inner.lock();
        if inner.closed {
            return Err(SubscribeError::Closed);
        }
        if inner.subscribers.len() >= MAX_STREAMS {
            return Err(SubscribeError::Full);
        }
        let (tx, rx) = mpsc::channel(BUFFER_FRAMES);
        // Sent at once, so the client sees the stream is open; the retry
        // hint keeps reconnecting clients from hammering a busy sidecar.
        let _ = tx.try_send(Bytes::from_static(b": trafficgen events\nretry: 2000\n\n"));
        let id = self.shared.next_subscriber.fetch_add(1, Ordering::Relaxed);
        inner.subscribers.push(Subscriber { id, topic, tx, dropped: 0 });
        Ok(Subscription { rx, _guard: Guard { shared: Arc::clone(&self.shared), id } })
    }

    /// Sends `data` as event `name` to `topic`'s streams; never waits.
    /// With `last`, it is the final event: it takes the reserved slot and
    /// the streams end after it.
    pub fn publish(&self, topic: &Topic, name: &str, data: &impl Serialize, last: bool) {
        let listened = |inner: &Inner| !inner.closed && inner.subscribers.iter().any(|s| &s.topic == topic);
        // Nobody listening: nothing to render. Rendering happens outside the
        // lock, so opening and closing streams never waits on it.
        if !listened(&self.shared.inner.lock()) {
            return;
        }
        let frame = self.frame(name, data);
        let mut inner = self.shared.inner.lock();
        if listened(&inner) {
            self.offer(&mut inner, Some(topic), &frame, last);
        }
    }

    /// Ends every stream with a `shutdown` event and refuses new ones.
    pub fn close(&self, data: &impl Serialize) {
        let mut inner = self.shared.inner.lock();
        if inner.closed {
            return;
        }
        let frame = self.frame(names::SHUTDOWN, data);
        self.offer(&mut inner, None, &frame, true);
        inner.closed = true;
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.shared.inner.lock().subscribers.len()
    }

    /// Frames lost to slow readers so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.get()
    }

    /// Renders one event with the next id.
    fn frame(&self, name: &str, data: &impl Serialize) -> Bytes {
        let id = self.shared.next_event.fetch_add(1, Ordering::Relaxed);
        let json = match serde_json::to_string(data) {
            Ok(json) if json.len() <= MAX_FRAME_BYTES => json,
            Ok(json) => {
                serde_json::json!({"error": format!("event {name} of {} bytes left out", json.len())}).to_string()
            }
            Err(e) => serde_json::json!({"error": format!("event {name} could not be written: {e}")}).to_string(),
        };
        Bytes::from(frame(name, id, &json))
    }

    fn offer(&self, inner: &mut Inner, topic: Option<&Topic>, frame: &Bytes, last: bool) {
        let mut lost = 0;
        inner.subscribers.retain_mut(|sub| {
            if topic.is_some_and(|t| t != &sub.topic) {
                return true;
            }
            // One slot stays free for the final event.
            let room = sub.tx.capacity() > usize::from(!last);
            if !room {
                sub.dropped += 1;
                lost += 1;
                return !last;
            }
            match sub.tx.try_send(frame.clone()) {
                // After the final event the sender goes: the stream ends
                // once the client has read what is buffered.
                Ok(()) => !last,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.dropped += 1;
                    lost += 1;
                    !last
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if lost > 0 {
            self.shared.dropped.inc_by(lost);
        }
    }

    /// Frames one stream has lost (for tests and diagnostics).
    fn dropped_by(&self, id: u64) -> Option<u64> {
        self.shared.inner.lock().subscribers.iter().find(|s| s.id == id).map(|s| s.dropped)
    }
}

/// One `text/event-stream` frame: `event:`, `id:`, a `data:` line per line
/// of `data`, and the blank line that ends it.
pub fn frame(name: &str, id: u64, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + name.len() + 32);
    // A name is ours, but a line break in it would forge another field.
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    out.push_str("event: ");
    out.push_str(&name);
    out.push_str("\nid: ");
    out.push_str(&id.to_string());
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// An open stream: an actix body (`HttpResponse::Ok().streaming(sub)`).
pub struct Subscription {
    rx: mpsc::Receiver<Bytes>,
    _guard: Guard,
}

impl Subscription {
    /// Frames this stream has lost to its own slowness.
    pub fn dropped(&self) -> u64 {
        EventHub { shared: Arc::clone(&self._guard.shared) }.dropped_by(self._guard.id).unwrap_or(0)
    }
}

impl Stream for Subscription {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// Frees the stream's place when it is dropped (the client went away, or
/// the response ended).
struct Guard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.inner.lock().subscribers.retain(|s| s.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::json;

    /// Every frame buffered now, without waiting.
    fn drain(sub: &mut Subscription) -> (Vec<String>, bool) {
        let mut frames = Vec::new();
        loop {
            match sub.rx.try_recv() {
                Ok(frame) => frames.push(String::from_utf8(frame.to_vec()).unwrap()),
                Err(mpsc::error::TryRecvError::Empty) => return (frames, false),
                Err(mpsc::error::TryRecvError::Disconnected) => return (frames, true),
            }
        }
    }

    #[test]
    fn event_payloads_have_their_documented_shape() {
        let mode = ModeEvent {
            mode: "burst",
            rps: 20.0,
            previous_mode: "steady",
            previous_rps: 2.0,
            cause: "api",
            returns_in_secs: Some(60.0),
        };
        assert_eq!(
            serde_json::to_value(&mode).unwrap(),
            json!({"mode":"burst","rps":20.0,"previous_mode":"steady","previous_rps":2.0,"cause":"api","returns_in_secs":60.0})
        );
        let job = JobEvent { job_id: "job-1-00ab".into(), scenario: "peak", status: "stopped", stop_reason: None };
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            json!({"job_id":"job-1-00ab","scenario":"peak","status":"stopped"})
        );
        let stats = StatsEvent {
            mode: "steady",
            state: "running",
            rates: crate::control::rates::RatesNow {
                target_rps: 2.0,
                cluster_target_rps: 2.0,
                cluster_achieved_rps: 2.0,
                replicas: 1,
            },
            achieved_rps: 2.0,
            users: None,
            achieved_window_secs: 1.0,
            in_flight: 0,
            requests: crate::jobs::Totals::default(),
            error_ratio: 0.0,
            latency_ms: Default::default(),
            job_id: None,
        };
        let v = serde_json::to_value(&stats).unwrap();
        assert_eq!(v["requests"], json!({"sent":0,"successful":0,"failed":0,"dropped":0}));
        assert!(v["latency_ms"]["from_scheduled"]["p99"].is_null() && v.get("job_id").is_none());
        assert_eq!((v["target_rps"].as_f64(), v["replicas"].as_u64()), (Some(2.0), Some(1)), "{v}");
    }

    #[test]
    fn a_frame_has_its_name_id_and_one_data_line_per_line() {
        assert_eq!(frame("mode", 7, r#"{"mode":"burst"}"#), "event: mode\nid: 7\ndata: {\"mode\":\"burst\"}\n\n");
        assert_eq!(frame("x\ny", 1, "a\r\nb"), "event: xy\nid: 1\ndata: a\ndata: b\n\n");
    }

    #[test]
    fn events_go_to_their_topic_only() {
        let hub = EventHub::new();
        let mut sidecar = hub.subscribe(Topic::Sidecar).unwrap();
        let mut job = hub.subscribe(Topic::Job("job-1".into())).unwrap();
        let mut other = hub.subscribe(Topic::Job("job-2".into())).unwrap();
        hub.publish(&Topic::Sidecar, names::MODE, &json!({"mode": "burst"}), false);
        hub.publish(&Topic::Job("job-1".into()), names::PROGRESS, &json!({"elapsed_secs": 0.5}), false);
        let (frames, ended) = drain(&mut sidecar);
        assert_eq!(frames.len(), 2, "greeting and the mode event: {frames:?}");
        assert!(frames[0].starts_with(": trafficgen events\nretry: 2000\n"));
        assert_eq!(frames[1], "event: mode\nid: 1\ndata: {\"mode\":\"burst\"}\n\n");
        assert!(!ended);
        let (frames, _) = drain(&mut job);
        assert!(frames[1].starts_with("event: progress\nid: 2\n"), "{frames:?}");
        assert_eq!(drain(&mut other).0.len(), 1, "only the greeting");
    }

    #[test]
    fn a_jobs_stream_ends_after_its_summary() {
        let hub = EventHub::new();
        let topic = Topic::Job("job-1".into());
        let mut sub = hub.subscribe(topic.clone()).unwrap();
        hub.publish(&topic, names::PROGRESS, &json!({}), false);
        hub.publish(&topic, names::SUMMARY, &json!({"status": "completed"}), true);
        hub.publish(&topic, names::PROGRESS, &json!({}), false);
        let (frames, ended) = drain(&mut sub);
        assert!(ended, "the stream must end");
        assert_eq!(frames.len(), 3);
        assert!(frames[2].starts_with("event: summary\n"));
        assert_eq!(hub.streams(), 0, "its place is free");
    }

    #[test]
    fn a_slow_reader_loses_events_but_always_gets_the_last() {
        let hub = EventHub::new();
        let mut slow = hub.subscribe(Topic::Sidecar).unwrap();
        let mut quick = hub.subscribe(Topic::Sidecar).unwrap();
        let mut quick_frames = 0;
        for i in 0..1000 {
            hub.publish(&Topic::Sidecar, names::STATS, &json!({ "i": i }), false);
            quick_frames += drain(&mut quick).0.len();
        }
        // The greeting and 62 events fit; one slot stays for the end.
        assert_eq!(slow.dropped(), 1000 - (BUFFER_FRAMES as u64 - 2));
        assert_eq!(hub.dropped(), slow.dropped(), "only the slow reader lost any");
        assert_eq!(quick_frames, 1001);
        hub.close(&json!({"reason": "SIGTERM"}));
        let (frames, ended) = drain(&mut slow);
        assert!(ended);
        assert_eq!(frames.len(), BUFFER_FRAMES);
        assert!(frames.last().unwrap().starts_with("event: shutdown\n"));
        // Ids show the gap: the first event, and the shutdown much later.
        assert!(frames[1].contains("id: 1\n") && frames.last().unwrap().contains("id: 1001\n"));
    }

    #[test]
    fn lost_frames_are_counted_into_the_metric_given() {
        let metrics = crate::observe::metrics::Metrics::new().unwrap();
        let hub = EventHub::counting_into(metrics.events_dropped());
        let _slow = hub.subscribe(Topic::Sidecar).unwrap();
        for i in 0..100 {
            hub.publish(&Topic::Sidecar, names::STATS, &json!({ "i": i }), false);
        }
        let lost = 100 - (BUFFER_FRAMES as u64 - 2);
        assert_eq!(hub.dropped(), lost);
        let text = metrics.render();
        assert!(text.contains(&format!("\ntrafficgen_events_dropped_total {lost}\n")), "{text}");
    }

    #[test]
    fn at_most_64_streams_and_a_dropped_one_frees_its_place() {
        let hub = EventHub::new();
        let mut open: Vec<Subscription> = (0..MAX_STREAMS).map(|_| hub.subscribe(Topic::Sidecar).unwrap()).collect();
        assert_eq!(hub.subscribe(Topic::Sidecar).err(), Some(SubscribeError::Full));
        open.pop();
        assert_eq!(hub.streams(), MAX_STREAMS - 1);
        assert!(hub.subscribe(Topic::Sidecar).is_ok());
        hub.close(&json!({}));
        assert_eq!(hub.subscribe(Topic::Sidecar).err(), Some(SubscribeError::Closed));
        assert_eq!(hub.streams(), 0);
    }

    #[test]
    fn a_huge_event_is_replaced_by_an_error() {
        let hub = EventHub::new();
        let mut sub = hub.subscribe(Topic::Sidecar).unwrap();
        hub.publish(&Topic::Sidecar, names::STATS, &"x".repeat(MAX_FRAME_BYTES + 1), false);
        let (frames, _) = drain(&mut sub);
        assert!(frames[1].len() < 200 && frames[1].contains("left out"), "{}", frames[1]);
    }

    #[actix_web::test]
    async fn an_actix_response_streams_events_until_the_hub_closes() {
        use actix_web::{App, HttpResponse, test, web};

        async fn events(hub: web::Data<EventHub>) -> HttpResponse {
            match hub.subscribe(Topic::Sidecar) {
                Ok(sub) => HttpResponse::Ok()
                    .content_type("text/event-stream")
                    .insert_header(("Cache-Control", "no-cache"))
                    .streaming(sub),
                Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
            }
        }

        let hub = EventHub::new();
        let app = test::init_service(
            App::new().app_data(web::Data::new(hub.clone())).route("/events", web::get().to(events)),
        )
        .await;
        let response = test::call_service(&app, test::TestRequest::get().uri("/events").to_request()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers().get("content-type").unwrap(), "text/event-stream");
        assert_eq!(hub.streams(), 1);

        let mut body = response.into_body();
        let mut body = futures_util::stream::poll_fn(move |cx| {
            actix_web::body::MessageBody::poll_next(std::pin::Pin::new(&mut body), cx).map(|f| f.map(|r| r.ok()))
        });
        // A stream that never ends must fail the test, not hang it.
        let mut next = async || {
            tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
                .await
                .expect("a frame or the end in time")
        };
        let greeting = next().await.flatten().unwrap();
        assert!(greeting.starts_with(b": trafficgen events"));
        hub.publish(&Topic::Sidecar, names::MODE, &json!({"mode": "pause", "rps": 0}), false);
        let event = next().await.flatten().unwrap();
        assert_eq!(&event[..], b"event: mode\nid: 1\ndata: {\"mode\":\"pause\",\"rps\":0}\n\n");
        hub.close(&json!({"reason": "test"}));
        let last = next().await.flatten().unwrap();
        assert!(last.starts_with(b"event: shutdown\n"));
        assert!(next().await.is_none(), "the stream ends after shutdown");
        assert_eq!(hub.streams(), 0);
    }
}
