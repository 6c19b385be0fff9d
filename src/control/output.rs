//! Large answers (an export, `/logs`, `/jobs`, a workload's problems) count
//! against one budget of bytes the control API may hold for clients that
//! have not read them yet.
//!
//! actix-web copies a whole answer into the connection's write buffer and
//! keeps it there until the client reads it: twenty clients asking for a
//! 20 MB answer and never reading held 400 MB. Here a large answer is a
//! [`BudgetedBody`]: it hands the connection 16 KiB at a time (actix-web
//! asks for more only once its buffer has drained), and its bytes count
//! against the budget until the last one is taken or the connection closes
//! (a client that stops reading is closed after the control request
//! timeout). A new large answer that does not fit is refused (503,
//! `Retry-After`) before it is made.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use actix_web::HttpResponse;
use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;

use super::ApiError;

/// Bytes of large answers the control API holds at once: two exports at
/// their bound (see `crate::export::MAX_SCRIPT_BYTES`).
pub const OUTPUT_BUDGET_BYTES: usize = 8 * 1024 * 1024;

/// What a connection is handed at a time.
const CHUNK_BYTES: usize = 16 * 1024;

/// An answer at least this large gives its freed memory back to the system
/// when it is done (glibc would keep it otherwise).
const TRIM_AFTER_BYTES: usize = 1024 * 1024;

/// The bytes held for answers not yet read.
#[derive(Debug)]
pub struct OutputBudget {
    limit: usize,
    held: AtomicUsize,
}

impl Default for OutputBudget {
    fn default() -> Self {
        OutputBudget::new(OUTPUT_BUDGET_BYTES)
    }
}

impl OutputBudget {
    pub fn new(limit: usize) -> OutputBudget {
        OutputBudget { limit, held: AtomicUsize::new(0) }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Reserves `bytes`, or says why not.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, ApiError> {
        let mut held = self.held.load(Ordering::Acquire);
        loop {
            let next = held.saturating_add(bytes);
            if next > self.limit {
                return Err(ApiError::Busy(format!(
                    "answers not yet read by their clients hold {} KiB of the control API's {} KiB for answers; \
                     try again once they are read (or their connections time out)",
                    held / 1024,
                    self.limit / 1024
                )));
            }
            match self.held.compare_exchange_weak(held, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Reservation { budget: Arc::clone(self), bytes }),
                Err(now) => held = now,
            }
        }
    }

    /// `body` as an answer with `status` and `content_type`, counted
    /// against the budget until it has been read.
    pub fn answer(
        self: &Arc<Self>,
        status: StatusCode,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Result<HttpResponse, ApiError> {
        let body = body.into();
        let reservation = self.reserve(body.len())?;
        Ok(HttpResponse::build(status).content_type(content_type).body(BudgetedBody { body, reservation }))
    }

    /// `value` as a JSON answer, counted against the budget.
    pub fn json(self: &Arc<Self>, status: StatusCode, value: &impl serde::Serialize) -> Result<HttpResponse, ApiError> {
        let body = serde_json::to_vec(value).map_err(|e| ApiError::Unavailable(format!("cannot write JSON: {e}")))?;
        self.answer(status, "application/json", body)
    }
}

/// Bytes counted against an [`OutputBudget`] until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<OutputBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let before = self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        if self.bytes >= TRIM_AFTER_BYTES && before == self.bytes {
            // The last large answer is out: give its pages back.
            release_free_memory_soon();
        }
    }
}

/// An answer handed out in chunks, holding its reservation until the last
/// chunk is taken (or the connection is dropped).
pub struct BudgetedBody {
    body: Bytes,
    reservation: Reservation,
}

impl MessageBody for BudgetedBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.body.len() as u64)
    }

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if self.body.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.body.len().min(CHUNK_BYTES);
        let chunk = self.body.split_to(take);
        if self.body.is_empty() {
            // Handed over whole: what is left is in the connection's buffer,
            // bounded by actix-web's write buffer.
            self.reservation.bytes_released();
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Reservation {
    /// Gives the bytes back early (the answer is out of our hands).
    fn bytes_released(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        let before = self.budget.held.fetch_sub(bytes, Ordering::AcqRel);
        if bytes >= TRIM_AFTER_BYTES && before == bytes {
            release_free_memory_soon();
        }
    }
}

/// Gives free memory back to the system off the calling thread (trimming
/// a large heap takes milliseconds the control thread owes `/health`).
pub fn release_free_memory_soon() {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(super::server::release_free_memory);
        }
        Err(_) => super::server::release_free_memory(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_given_back() {
        let budget = Arc::new(OutputBudget::new(100));
        let a = budget.reserve(60).unwrap();
        assert!(matches!(budget.reserve(41), Err(ApiError::Busy(_))));
        let b = budget.reserve(40).unwrap();
        assert_eq!(budget.held(), 100);
        drop(a);
        assert_eq!(budget.held(), 40);
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_body_is_handed_out_in_chunks_and_its_bytes_come_back_when_taken() {
        let budget = Arc::new(OutputBudget::new(1 << 20));
        let mut body =
            BudgetedBody { body: Bytes::from(vec![b'x'; 40_000]), reservation: budget.reserve(40_000).unwrap() };
        assert_eq!(body.size(), BodySize::Sized(40_000));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut sizes = Vec::new();
        while let Poll::Ready(Some(Ok(chunk))) = Pin::new(&mut body).poll_next(&mut cx) {
            sizes.push(chunk.len());
            if sizes.len() == 1 {
                assert_eq!(budget.held(), 40_000, "held while chunks remain");
            }
        }
        assert_eq!(sizes, [16_384, 16_384, 7_232]);
        assert_eq!(budget.held(), 0);
        drop(body);
        assert_eq!(budget.held(), 0, "not given back twice");
    }
}
