//! The requests in flight: futures polled by the worker's loop.
//!
//! A `FuturesUnordered` that has polled every future it holds in one call
//! wakes its own task and yields (so that a set of futures that keep
//! waking themselves cannot starve the executor). Ours never wake
//! themselves, but after every turn that sends, all of them are new and
//! get polled together, so at moderate rates each turn paid for a second
//! pass of the loop and a zero-timeout `epoll_wait` (issue 30). One future
//! that is never ready, polled once, keeps the set from ever being polled
//! whole.

use std::future::Future;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::InFlightFuture;

pub(super) struct InFlight {
    /// The requests, and the one future that never completes.
    set: FuturesUnordered<InFlightFuture>,
}

impl InFlight {
    pub(super) fn new() -> Self {
        let set = FuturesUnordered::new();
        set.push(Box::pin(std::future::pending()) as InFlightFuture);
        InFlight { set }
    }

    pub(super) fn push(&self, request: InFlightFuture) {
        self.set.push(request);
    }

    /// Requests in flight.
    pub(super) fn len(&self) -> usize {
        self.set.len() - 1
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next request to complete; pending while none is in flight.
    pub(super) fn next(&mut self) -> impl Future<Output = Option<super::Completed>> + '_ {
        self.set.next()
    }

    /// Abandons every request in flight.
    pub(super) fn clear(&mut self) {
        *self = InFlight::new();
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    use futures_util::stream::{FuturesUnordered, Stream};

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    type Pending = Pin<Box<dyn std::future::Future<Output = ()>>>;

    /// How often polling `set` with fresh pending futures woke the polling task.
    fn self_wakes(set: &mut FuturesUnordered<Pending>, fresh: usize) -> usize {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        for _ in 0..fresh {
            set.push(Box::pin(std::future::pending()));
        }
        assert!(Pin::new(&mut *set).poll_next(&mut Context::from_waker(&waker)).is_pending());
        counter.0.load(Ordering::SeqCst)
    }

    #[test]
    fn a_set_polled_whole_yields_and_one_never_ready_future_stops_it() {
        // What the sentinel is for: without it, every poll of new
        // futures only wakes the task again.
        let mut plain: FuturesUnordered<Pending> = FuturesUnordered::new();
        assert_eq!(self_wakes(&mut plain, 3), 1);
        let mut guarded: FuturesUnordered<Pending> = FuturesUnordered::new();
        guarded.push(Box::pin(std::future::pending()));
        assert_eq!(self_wakes(&mut guarded, 0), 1, "the sentinel's own first poll");
        assert_eq!(self_wakes(&mut guarded, 3), 0);
        assert_eq!(self_wakes(&mut guarded, 1), 0);
    }

    #[test]
    fn the_sentinel_is_not_counted() {
        let mut in_flight = super::InFlight::new();
        assert!(in_flight.is_empty());
        in_flight.push(Box::pin(std::future::pending()));
        assert_eq!(in_flight.len(), 1);
        in_flight.clear();
        assert_eq!(in_flight.len(), 0);
    }
}
