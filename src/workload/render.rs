//! Drawing and rendering requests: which request (weights, then fallbacks
//! while a pool it reads is empty), then its bytes. Rendering walks the
//! compiled segments into a reused buffer: no parsing, and no allocation
//! once the buffer has grown to the workload's largest request.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::{Rng, RngExt};

use super::Workload;
use super::compile::{Fill, PoolId, RequestId, Seg};
use super::escape::{Ctx, base64_encode, encode};
use super::locals::Locals;
use super::model::{MAX_POOLS, Method};
use super::pool::Ring;
use crate::base::trace_context::{SpanId, TraceId, TraceParent};

/// What a workload remembers while it runs: its pools and the sequence
/// counter. Owned by whoever renders (the engine's worker thread).
#[derive(Debug, Clone)]
pub struct RunState {
    pub(crate) pools: Vec<Ring>,
    /// Per data table: the next row (`sequential`, `unique`).
    pub(crate) cursors: Vec<usize>,
    /// What `base64(…)` encodes is written here first.
    scratch: Vec<u8>,
    seq: u64,
    clock: Clock,
    /// `workload check`: pool values are shown as `{{ pool(name) }}`.
    placeholders: bool,
    trace: TraceSlot,
}

/// The trace a request's `traceparent` belongs to, when the renderer is
/// not to start a fresh one: the engine's sampling decision for a root,
/// or a journey instance's trace for its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextTrace {
    pub trace_id: TraceId,
    pub sampled: bool,
}

/// What the engine asked of the next `traceparent`, and what the last one said.
#[derive(Debug, Clone, Copy, Default)]
struct TraceSlot {
    next: Option<NextTrace>,
    rendered: Option<TraceParent>,
}

/// Where `now()` and `unix_time()` read the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    /// A fixed time, for tests and samples.
    Fixed(SystemTime),
}

impl RunState {
    /// Fresh pools (with the file's `values`), the sequence at 0.
    pub fn new(workload: &Workload) -> RunState {
        let pools = workload
            .compiled
            .pools
            .iter()
            .map(|spec| {
                let mut ring = Ring::new(spec.size);
                for item in &spec.seed {
                    ring.push(item.text.as_bytes(), item.number);
                }
                ring
            })
            .collect();
        let cursors = vec![0; workload.compiled.tables.len()];
        RunState {
            pools,
            cursors,
            scratch: Vec::new(),
            seq: 0,
            clock: Clock::System,
            placeholders: false,
            trace: TraceSlot::default(),
        }
    }

    /// The state for `next` after a swap from `previous`: pools whose names
    /// survive keep their newest values (up to the new size), new pools
    /// start with their `values`, the sequence goes on.
    ///
    /// In place, on the engine's thread between two requests: a surviving
    /// pool is moved, not copied (a swap of 16 pools of 100 000 values
    /// costs no allocation per value), and what the old pools leave behind
    /// is freed on another thread, so the swap never holds the schedule up.
    pub fn carry_over(&mut self, previous: &Workload, next: &Workload) {
        let mut old: Vec<Option<Ring>> = std::mem::take(&mut self.pools).into_iter().map(Some).collect();
        let mut left_behind: Vec<Ring> = Vec::new();
        let mut pools = Vec::with_capacity(next.compiled.pools.len());
        for spec in &next.compiled.pools {
            let kept = previous
                .compiled
                .pools
                .iter()
                .position(|p| p.name == spec.name)
                .and_then(|i| old.get_mut(i))
                .and_then(Option::take);
            match kept {
                Some(mut ring) => {
                    left_behind.push(ring.cut_to(spec.size));
                    if spec.path {
                        // A pool of paths keeps only what is a safe path.
                        ring.retain(|value| super::pool::is_safe_path(value.as_bytes()));
                    }
                    pools.push(ring);
                }
                None => {
                    let mut ring = Ring::new(spec.size);
                    for item in &spec.seed {
                        ring.push(item.text.as_bytes(), item.number);
                    }
                    pools.push(ring);
                }
            }
        }
        left_behind.extend(old.into_iter().flatten());
        self.pools = pools;
        // The data tables start over with the new workload's.
        self.cursors = vec![0; next.compiled.tables.len()];
        free_elsewhere(left_behind);
    }

    /// How many values each pool of `workload` (by pool index) starts
    /// with: its `values`, the newest that fit. What [`RunState::new`]
    /// holds, counted without making it.
    pub fn starting_counts(workload: &Workload) -> Vec<usize> {
        workload.compiled.pools.iter().map(|spec| spec.seed.len().min(spec.size.max(1))).collect()
    }

    /// How many values each pool of `next` holds right after
    /// [`RunState::carry_over`] from `previous`, whose pools held `held`
    /// (by pool index): a pool whose name survives keeps what fits of its
    /// count, a new one starts with its `values`.
    pub fn carried_counts(previous: &Workload, held: &[usize], next: &Workload) -> Vec<usize> {
        next.compiled
            .pools
            .iter()
            .map(|spec| {
                let kept = previous.compiled.pools.iter().position(|p| p.name == spec.name).and_then(|i| held.get(i));
                kept.map_or(spec.seed.len(), |&n| n).min(spec.size.max(1))
            })
            .collect()
    }

    /// The trace id and sampled flag the next rendered `traceparent`
    /// carries (its span id is drawn); `None`: a fresh random trace with
    /// the target's flag, as when nothing was set.
    pub fn set_trace(&mut self, next: Option<NextTrace>) {
        self.trace.next = next;
    }

    /// What the last rendering wrote into its `traceparent` (`None` if it
    /// wrote none: trace headers off, or the workload's own header), and
    /// forgets what [`RunState::set_trace`] asked.
    pub fn take_trace(&mut self) -> Option<TraceParent> {
        self.trace.next = None;
        self.trace.rendered.take()
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    pub(crate) fn show_placeholders(&mut self) {
        self.placeholders = true;
    }

    pub fn pool(&self, id: PoolId) -> &Ring {
        &self.pools[id.index()]
    }

    /// Stores an accepted value.
    pub(crate) fn push(&mut self, id: PoolId, text: &[u8], number: bool) {
        self.pools[id.index()].push(text, number);
    }

    fn now(&self) -> SystemTime {
        match self.clock {
            Clock::System => SystemTime::now(),
            Clock::Fixed(t) => t,
        }
    }
}

/// Values fewer than this are freed where they are: a thread costs more.
const FREE_ELSEWHERE_FROM: usize = 4096;

/// Frees `rings` on a thread of its own when they hold many values
/// (freeing a million values takes tens of milliseconds).
fn free_elsewhere(rings: Vec<Ring>) {
    let values: usize = rings.iter().map(Ring::len).sum();
    if values < FREE_ELSEWHERE_FROM {
        return;
    }
    let freeing = std::thread::Builder::new().name("trafficgen-free".into()).spawn(move || drop(rings));
    // Without a thread (none can be made now), they are freed here.
    drop(freeing);
}

/// A request chosen to be sent, with its pool values picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    request: RequestId,
    asked: RequestId,
    /// Index into each pool the request reads (by pool id).
    picks: [u32; MAX_POOLS],
}

impl Chosen {
    /// The request that is sent (after any fallback): label its metrics,
    /// and capture from its answer, with this one.
    pub fn request(&self) -> RequestId {
        self.request
    }

    /// The request the weights drew.
    pub fn asked(&self) -> RequestId {
        self.asked
    }

    pub fn fell_back(&self) -> bool {
        self.request != self.asked
    }
}

/// What a draw comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    Send(Chosen),
    /// A pool the request reads is empty and it has no fallback (or its
    /// fallbacks are stuck too): nothing is sent.
    Unmet {
        asked: RequestId,
        pool: PoolId,
    },
}

/// A request in parts, for a client that builds requests itself (https).
/// Reused between requests; its buffers only grow.
#[derive(Debug, Default)]
pub struct RequestParts {
    request: Option<RequestId>,
    target: Vec<u8>,
    values: Vec<u8>,
    value_ends: Vec<usize>,
    body: Vec<u8>,
    has_body: bool,
}

impl RequestParts {
    /// The request these parts were rendered for.
    pub fn request(&self) -> Option<RequestId> {
        self.request
    }

    /// The path with its prefix, and the query: `/api/users/7?x=1`.
    pub fn target(&self) -> &[u8] {
        &self.target
    }

    pub fn body(&self) -> Option<&[u8]> {
        self.has_body.then_some(&self.body[..])
    }
}

impl Workload {
    /// A request drawn by weight.
    pub fn pick(&self, rng: &mut impl Rng) -> RequestId {
        let weights = &self.compiled.weights;
        weights.pick(rng.random_range(0..weights.total))
    }

    /// `asked`, or its fallback while a pool it reads is empty; picks the
    /// pool values. Each read pool takes one roll, empty or not.
    pub fn resolve(&self, asked: RequestId, rng: &mut impl Rng, state: &RunState) -> Draw {
        let mut id = asked;
        // Fallbacks have no cycles (checked at load); the bound is a backstop.
        for _ in 0..=self.compiled.requests.len() {
            let request = &self.compiled.requests[id.index()];
            let mut chosen = Chosen { request: id, asked, picks: [0; MAX_POOLS] };
            let mut empty = None;
            for pool in &request.needs {
                let roll = rng.random_range(0..usize::MAX);
                match state.pools[pool.index()].pick(roll) {
                    Some(i) => chosen.picks[pool.index()] = u32::try_from(i).unwrap_or(0),
                    None => {
                        empty = Some(*pool);
                        break;
                    }
                }
            }
            match (empty, request.fallback) {
                (None, _) => return Draw::Send(chosen),
                (Some(_), Some(next)) => id = next,
                (Some(pool), None) => return Draw::Unmet { asked, pool },
            }
        }
        Draw::Unmet { asked, pool: PoolId(0) }
    }

    /// The next request of the traffic: [`Workload::pick`], then [`Workload::resolve`].
    pub fn draw(&self, rng: &mut impl Rng, state: &RunState) -> Draw {
        let asked = self.pick(rng);
        self.resolve(asked, rng, state)
    }

    /// Writes the complete HTTP/1.1 request into `out` (cleared first):
    /// request line with the target's path prefix, `Host`, `User-Agent`,
    /// the workload's headers, `Content-Type` and `Content-Length` when
    /// there is a body, and the body.
    pub fn render(&self, chosen: &Chosen, rng: &mut impl Rng, state: &mut RunState, out: &mut Vec<u8>) {
        self.render_in(chosen, rng, state, None, out);
    }

    /// [`Workload::render`] for a journey step: its variables and data
    /// rows come from the instance's `locals`.
    pub fn render_in(
        &self,
        chosen: &Chosen,
        rng: &mut impl Rng,
        state: &mut RunState,
        locals: Option<&Locals>,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        let request = &self.compiled.requests[chosen.request.index()];
        let from = From { chosen, locals };
        self.write(&request.head, &from, rng, state, out);
        if let (true, Some(body)) = (request.dynamic_body, &request.body) {
            // The length is known once the body is written: write it after
            // the head, then move it up by the length line.
            let start = out.len();
            self.write(body, &from, rng, state, out);
            let len = out.len() - start;
            let mut line = [0u8; 48];
            let n = content_length_line(len, &mut line);
            out.extend_from_slice(&line[..n]);
            out.copy_within(start..start + len, start + n);
            out[start..start + n].copy_from_slice(&line[..n]);
        }
        self.take_values(chosen, state);
    }

    /// Writes the request's parts into `parts` (its buffers reused).
    pub fn render_parts(&self, chosen: &Chosen, rng: &mut impl Rng, state: &mut RunState, parts: &mut RequestParts) {
        self.render_parts_in(chosen, rng, state, None, parts);
    }

    /// [`Workload::render_parts`] for a journey step (see [`Workload::render_in`]).
    pub fn render_parts_in(
        &self,
        chosen: &Chosen,
        rng: &mut impl Rng,
        state: &mut RunState,
        locals: Option<&Locals>,
        parts: &mut RequestParts,
    ) {
        let request = &self.compiled.requests[chosen.request.index()];
        let from = From { chosen, locals };
        parts.request = Some(chosen.request);
        parts.target.clear();
        self.write(&request.target, &from, rng, state, &mut parts.target);
        parts.values.clear();
        parts.value_ends.clear();
        for (_, value) in &request.headers {
            self.write(value, &from, rng, state, &mut parts.values);
            parts.value_ends.push(parts.values.len());
        }
        parts.body.clear();
        parts.has_body = request.body.is_some();
        if let Some(body) = &request.body {
            self.write(body, &from, rng, state, &mut parts.body);
        }
        self.take_values(chosen, state);
    }

    /// Removes the values a request took (`take(pool)`) from their pools:
    /// rendered, they are spent.
    fn take_values(&self, chosen: &Chosen, state: &mut RunState) {
        if state.placeholders {
            return;
        }
        for pool in &self.compiled.requests[chosen.request.index()].takes {
            state.pools[pool.index()].take(chosen.picks[pool.index()] as usize);
        }
    }

    /// The headers of rendered parts (`User-Agent` first, then the
    /// workload's); `Host`, `Content-Type` and `Content-Length` are the
    /// client's to set.
    pub fn part_headers<'a>(&'a self, parts: &'a RequestParts) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        let headers = parts.request.map_or(&[][..], |id| &self.compiled.requests[id.index()].headers[..]);
        headers.iter().enumerate().map(move |(i, (name, _))| {
            let start = if i == 0 { 0 } else { parts.value_ends[i - 1] };
            (name.as_str(), &parts.values[start..parts.value_ends[i]])
        })
    }

    pub fn method(&self, id: RequestId) -> Method {
        self.compiled.requests[id.index()].method
    }

    /// The body's content type, if the request has a body.
    pub fn content_type(&self, id: RequestId) -> Option<&str> {
        self.compiled.requests[id.index()].content_type.as_deref()
    }

    fn write(&self, segs: &[Seg], from: &From<'_>, rng: &mut impl Rng, state: &mut RunState, out: &mut Vec<u8>) {
        for seg in segs {
            match seg {
                Seg::Lit(bytes) => out.extend_from_slice(bytes),
                Seg::Hole(fill, ctx) => self.fill(fill, *ctx, from, rng, state, out),
            }
        }
    }

    fn fill(
        &self,
        fill: &Fill,
        ctx: Ctx,
        from: &From<'_>,
        rng: &mut impl Rng,
        state: &mut RunState,
        out: &mut Vec<u8>,
    ) {
        let chosen = from.chosen;
        let mut digits = [0u8; 24];
        match fill {
            Fill::Int { min, max } => {
                // Ranges that fit 32 bits draw as 32-bit numbers: the same
                // values, from the same random stream, as the engine's
                // `random_range(1..=10)` on a u8.
                let n = match (i32::try_from(*min), i32::try_from(*max)) {
                    (Ok(lo), Ok(hi)) => i64::from(rng.random_range(lo..=hi)),
                    _ => rng.random_range(*min..=*max),
                };
                let len = write_i64(n, &mut digits);
                encode(ctx, &digits[..len], true, out);
            }
            Fill::Choice(items) => out.extend_from_slice(&items[rng.random_range(0..items.len())]),
            Fill::Str(len) => {
                const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                let quoted = ctx == Ctx::JsonValue;
                if quoted {
                    out.push(b'"');
                }
                for _ in 0..*len {
                    out.push(ALNUM[rng.random_range(0..ALNUM.len())]);
                }
                if quoted {
                    out.push(b'"');
                }
            }
            Fill::Uuid => {
                let uuid = uuid_v4(rng.random(), rng.random());
                encode(ctx, &uuid, false, out);
            }
            Fill::TraceIds => {
                let (trace_id, span_id) = match state.trace.next {
                    Some(next) => (next.trace_id, SpanId::from_random(rng.random())),
                    None => {
                        let (high, low, span): (u64, u64, u64) = (rng.random(), rng.random(), rng.random());
                        (TraceId::from_random(u128::from(high) << 64 | u128::from(low)), SpanId::from_random(span))
                    }
                };
                out.extend_from_slice(&trace_id.to_hex());
                out.push(b'-');
                out.extend_from_slice(&span_id.to_hex());
                let sampled = state.trace.next.is_some_and(|n| n.sampled);
                state.trace.rendered = Some(TraceParent { trace_id, parent_id: span_id, sampled });
            }
            Fill::TraceFlags(default) => {
                let sampled = state.trace.next.map_or(*default, |n| n.sampled);
                out.extend_from_slice(if sampled { b"01" } else { b"00" });
                if let Some(rendered) = &mut state.trace.rendered {
                    rendered.sampled = sampled;
                }
            }
            Fill::Seq => {
                state.seq = state.seq.wrapping_add(1);
                let len = write_u64(state.seq, &mut digits);
                encode(ctx, &digits[..len], true, out);
            }
            Fill::Now => {
                let text = rfc3339_millis(state.now());
                encode(ctx, &text, false, out);
            }
            Fill::UnixTime | Fill::UnixTimeMs => {
                let since = state.now().duration_since(UNIX_EPOCH).unwrap_or_default();
                let n = if *fill == Fill::UnixTime { since.as_secs() } else { since.as_millis() as u64 };
                let len = write_u64(n, &mut digits);
                encode(ctx, &digits[..len], true, out);
            }
            Fill::Pool(id) | Fill::Take(id) => {
                let spec = &self.compiled.pools[id.index()];
                if state.placeholders {
                    let function = if matches!(fill, Fill::Take(_)) { "take" } else { "pool" };
                    placeholder(function, &spec.name, out);
                    return;
                }
                let pick = chosen.picks[id.index()] as usize;
                // A pool is only read by a request that was resolved against it.
                if let Some(value) = state.pools[id.index()].get(pick) {
                    value_into(ctx, value.as_bytes(), value.is_number(), spec.path, out);
                }
            }
            Fill::Var { slot, path, name } => {
                if state.placeholders || from.locals.is_none() {
                    placeholder("var", name, out);
                    return;
                }
                // A step is only sent once every variable it reads is set.
                if let Some((value, number)) = from.locals.and_then(|l| l.get(*slot)) {
                    value_into(ctx, value, number, *path, out);
                }
            }
            Fill::Data { table, column, name } => {
                if state.placeholders || from.locals.is_none() {
                    placeholder("data", name, out);
                    return;
                }
                let row = from.locals.map_or(0, |l| l.row(*table));
                let cell =
                    self.compiled.tables.get(usize::from(*table)).and_then(|t| t.cell(row, usize::from(*column)));
                if let Some((value, number)) = cell {
                    encode(ctx, value, number, out);
                }
            }
            Fill::Env(value) => {
                if state.placeholders {
                    placeholder("env", &value.name, out);
                    return;
                }
                encode(ctx, &value.value, false, out);
            }
            Fill::Base64(segs) => {
                if state.placeholders {
                    out.extend_from_slice(b"{{ base64(");
                    let mut inner = Vec::new();
                    self.write(segs, from, rng, state, &mut inner);
                    out.extend_from_slice(&inner);
                    out.extend_from_slice(b") }}");
                    return;
                }
                let mut scratch = std::mem::take(&mut state.scratch);
                scratch.clear();
                self.write(segs, from, rng, state, &mut scratch);
                let start = out.len();
                base64_encode(&scratch, out);
                if ctx != Ctx::Header && ctx != Ctx::Raw {
                    // `+`, `/` and `=` need writing for where they land.
                    let encoded = out.split_off(start);
                    encode(ctx, &encoded, false, out);
                }
                state.scratch = scratch;
            }
        }
    }
}

/// Where a request's values come from besides the pools.
struct From<'a> {
    chosen: &'a Chosen,
    /// The journey instance's, for a step.
    locals: Option<&'a Locals>,
}

/// `{{ function(name) }}`: what `workload check` shows instead of a value.
fn placeholder(function: &str, name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{{ ");
    out.extend_from_slice(function.as_bytes());
    out.push(b'(');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b") }}");
}

/// A value where it lands; a captured path (checked safe when it was
/// captured) keeps its slashes in a path.
fn value_into(ctx: Ctx, value: &[u8], number: bool, path: bool, out: &mut Vec<u8>) {
    // Checked again here, cheaply: whatever filled it, nothing but a safe
    // path is ever written unencoded.
    if path && ctx == Ctx::Path && super::pool::is_safe_path(value) {
        out.extend_from_slice(value);
    } else {
        encode(ctx, value, number, out);
    }
}

fn content_length_line(len: usize, out: &mut [u8; 48]) -> usize {
    const PREFIX: &[u8] = b"Content-Length: ";
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 24];
    let n = write_u64(len as u64, &mut digits);
    out[PREFIX.len()..PREFIX.len() + n].copy_from_slice(&digits[..n]);
    let end = PREFIX.len() + n;
    out[end..end + 4].copy_from_slice(b"\r\n\r\n");
    end + 4
}

fn write_u64(mut n: u64, out: &mut [u8; 24]) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    out[..len].copy_from_slice(&tmp[i..]);
    len
}

fn write_i64(n: i64, out: &mut [u8; 24]) -> usize {
    if n >= 0 {
        return write_u64(n as u64, out);
    }
    let mut rest = [0u8; 24];
    let len = write_u64(n.unsigned_abs(), &mut rest);
    out[0] = b'-';
    out[1..=len].copy_from_slice(&rest[..len]);
    len + 1
}

/// A random (version 4, RFC 9562) UUID in its usual text form.
fn uuid_v4(high: u64, low: u64) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at] = HEX[usize::from(b >> 4)];
        text[at + 1] = HEX[usize::from(b & 15)];
        at += 2;
    }
    text
}

/// `2026-11-26T10:46:00.123Z`. Times before 1970 show as 1970.
pub(crate) fn rfc3339_millis(t: SystemTime) -> [u8; 24] {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let fields = [
        (year.clamp(0, 9999) as u64, 4),
        (u64::from(month), 2),
        (u64::from(day), 2),
        (rem / 3600, 2),
        (rem / 60 % 60, 2),
        (rem % 60, 2),
        (u64::from(since.subsec_millis()), 3),
    ];
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let starts = [0, 5, 8, 11, 14, 17, 20];
    for ((value, width), start) in fields.into_iter().zip(starts) {
        let mut v = value;
        for i in (0..width).rev() {
            text[start + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    text
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar: shift to a calendar starting on 1 March of year 0, whose
/// 400-year eras repeat exactly.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn encodings_per_context() {
        let run = |ctx, text: &str, number| {
            let mut out = Vec::new();
            encode(ctx, text.as_bytes(), number, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(run(Ctx::Path, "a/b c?é", false), "a%2Fb%20c%3F%C3%A9");
        assert_eq!(run(Ctx::Query, "x&y=z", false), "x%26y%3Dz");
        assert_eq!(run(Ctx::Header, "Bearer abc", false), "Bearer abc");
        assert_eq!(run(Ctx::JsonString, "say \"hi\"\\\n", false), "say \\\"hi\\\"\\\\\\n");
        assert_eq!(run(Ctx::JsonValue, "42", true), "42");
        assert_eq!(run(Ctx::JsonValue, "4\"2", false), "\"4\\\"2\"");
        assert_eq!(run(Ctx::JsonString, "\u{1}", false), "\\u0001");
    }

    #[test]
    fn numbers_are_written_without_allocating() {
        let mut buf = [0u8; 24];
        for n in [0i64, 7, -7, 1234567890, i64::MIN, i64::MAX] {
            let len = write_i64(n, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..len]).unwrap(), n.to_string());
        }
        let mut line = [0u8; 48];
        let n = content_length_line(31, &mut line);
        assert_eq!(&line[..n], b"Content-Length: 31\r\n\r\n");
    }

    #[test]
    fn trace_ids_are_never_all_zero() {
        let ids = |high: u64, low: u64, span: u64| {
            let trace = TraceId::from_random(u128::from(high) << 64 | u128::from(low));
            format!("{trace}-{}", SpanId::from_random(span))
        };
        assert_eq!(ids(0, 0, 0), "00000000000000000000000000000001-0000000000000001");
        assert_eq!(ids(u64::MAX, 0x0123, 0xabc), "ffffffffffffffff0000000000000123-0000000000000abc");
    }

    #[test]
    fn uuids_are_version_4() {
        let text = uuid_v4(u64::MAX, 0);
        let text = std::str::from_utf8(&text).unwrap();
        assert_eq!(text, "ffffffff-ffff-4fff-8000-000000000000");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |secs: u64, millis: u64| {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            String::from_utf8(rfc3339_millis(t).to_vec()).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_689_960, 123), "2026-11-26T10:46:00.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        // Every day of four centuries agrees with counting days one by one.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
