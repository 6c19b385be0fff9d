//! The capture step: after a successful answer, values taken out of its
//! JSON body (RFC 6901 pointers) or headers go into pools. A value that is
//! missing, not a string or number, too long, or unsafe is counted and
//! dropped; nothing an answer holds can fail the run.

use std::io::Write as _;

use super::Workload;
use super::compile::{Capture, RequestId};
use super::model::CaptureSource;
use super::pool::{self, Refusal};
use super::render::RunState;

/// What the captures of one answer came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureReport {
    /// Values stored in pools.
    pub stored: u32,
    /// JSON captures of an answer whose body was not kept (over the body
    /// cap) or empty.
    pub no_body: u32,
    /// JSON captures of a body that is not JSON.
    pub not_json: u32,
    /// The pointer or header found nothing.
    pub missing: u32,
    /// A value was found and refused (see [`Refusal`]).
    pub refused: u32,
    /// Why the last refused value was refused, for a log line (never the value).
    pub last_refusal: Option<Refusal>,
}

impl CaptureReport {
    pub fn failed(&self) -> u32 {
        self.no_body + self.not_json + self.missing + self.refused
    }
}

impl Workload {
    /// Whether answers to `id` must hand their body back: a JSON capture
    /// reads it. Without captures, the body need not be kept at all.
    pub fn wants_body(&self, id: RequestId) -> bool {
        self.compiled.requests[id.index()].captures.iter().any(|c| matches!(c.source, CaptureSource::Json(_)))
    }

    /// The answer headers the captures of `id` read.
    pub fn wanted_headers(&self, id: RequestId) -> impl Iterator<Item = &str> {
        self.compiled.requests[id.index()].captures.iter().filter_map(|c| match &c.source {
            CaptureSource::Header(name) => Some(name.as_str()),
            CaptureSource::Json(_) => None,
        })
    }

    /// Whether `status` counts as success for `id` (default: any 2xx).
    pub fn is_success(&self, id: RequestId, status: u16) -> bool {
        self.compiled.requests[id.index()].success.contains(status)
    }

    /// Takes the captures of request `id` (the one sent, after fallbacks)
    /// out of its answer. Nothing is taken from an answer that is not a
    /// success. `headers` are the answer's, in any case; `body` is the
    /// answer's body when it was kept.
    pub fn capture(
        &self,
        id: RequestId,
        status: u16,
        headers: &[(&str, &[u8])],
        body: Option<&[u8]>,
        state: &mut RunState,
    ) -> CaptureReport {
        let request = &self.compiled.requests[id.index()];
        let mut report = CaptureReport::default();
        if request.captures.is_empty() || !request.success.contains(status) {
            return report;
        }
        // The body is parsed once, when a JSON capture first needs it.
        let mut parsed: Option<Option<serde_json::Value>> = None;
        for capture in &request.captures {
            match &capture.source {
                CaptureSource::Header(name) => match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                    None => report.missing += 1,
                    Some((_, value)) => store(capture, value.trim_ascii(), false, state, &mut report),
                },
                CaptureSource::Json(pointer) => {
                    let Some(body) = body.filter(|b| !b.is_empty()) else {
                        report.no_body += 1;
                        continue;
                    };
                    let json = parsed.get_or_insert_with(|| serde_json::from_slice(body).ok());
                    let Some(json) = json else {
                        report.not_json += 1;
                        continue;
                    };
                    match json.pointer(pointer) {
                        None => report.missing += 1,
                        Some(serde_json::Value::String(s)) => store(capture, s.as_bytes(), false, state, &mut report),
                        Some(serde_json::Value::Number(n)) => {
                            let mut text = [0u8; 40];
                            let mut cursor = std::io::Cursor::new(&mut text[..]);
                            match write!(cursor, "{n}") {
                                Ok(()) => {
                                    let len = usize::try_from(cursor.position()).unwrap_or(0);
                                    store(capture, &text[..len], true, state, &mut report);
                                }
                                Err(_) => refuse(Refusal::TooLong, &mut report),
                            }
                        }
                        Some(_) => refuse(Refusal::NotAValue, &mut report),
                    }
                }
            }
        }
        report
    }
}

fn store(capture: &Capture, text: &[u8], number: bool, state: &mut RunState, report: &mut CaptureReport) {
    match pool::accept(text, capture.max_len, capture.url_safe) {
        Ok(()) => {
            state.push(capture.pool, text, number);
            report.stored += 1;
        }
        Err(refusal) => refuse(refusal, report),
    }
}

fn refuse(why: Refusal, report: &mut CaptureReport) {
    report.refused += 1;
    report.last_refusal = Some(why);
}
