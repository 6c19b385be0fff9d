//! Event streams per client address. The hub holds at most 64 streams in
//! all (`crate::control::events::MAX_STREAMS`); without a share per address one
//! client could open all of them and leave none for the control panel of
//! anyone else. A share of 16 leaves room for the few tabs of several
//! people behind one proxy or `kubectl port-forward` (one address), while a
//! single address can never hold more than a quarter of the streams.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use parking_lot::Mutex;

use super::ApiError;

/// Streams one client address may hold at once.
pub const MAX_STREAMS_PER_CLIENT: usize = 16;

/// Open streams by client address.
#[derive(Debug, Default)]
pub struct StreamShares {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One stream's place in its client's share; freed when dropped.
pub struct Share {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    client: IpAddr,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

impl StreamShares {
    /// A place for one more stream of `client`, or a 503 saying why not.
    pub fn take(&self, client: IpAddr) -> Result<Share, ApiError> {
        let mut open = self.open.lock();
        let n = open.entry(client).or_default();
        if *n >= MAX_STREAMS_PER_CLIENT {
            return Err(ApiError::Busy(format!(
                "this client address holds {MAX_STREAMS_PER_CLIENT} event streams already, the most one address may; close one first"
            )));
        }
        *n += 1;
        Ok(Share { open: Arc::clone(&self.open), client })
    }

    /// Streams `client` holds now.
    pub fn held_by(&self, client: IpAddr) -> usize {
        self.open.lock().get(&client).copied().unwrap_or(0)
    }
}

/// A stream that holds its place in its client's share while it is open.
pub struct Shared<S> {
    inner: S,
    _share: Share,
}

impl<S> Shared<S> {
    pub fn new(inner: S, share: Share) -> Self {
        Shared { inner, _share: share }
    }
}

impl<S: Stream + Unpin> Stream for Shared<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_at_most_its_share_and_gets_it_back() {
        let shares = StreamShares::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let held: Vec<Share> = (0..MAX_STREAMS_PER_CLIENT).map(|_| shares.take(a).unwrap()).collect();
        assert!(matches!(shares.take(a), Err(ApiError::Busy(_))));
        assert!(shares.take(b).is_ok(), "another address is not held back");
        drop(held);
        assert_eq!(shares.held_by(a), 0);
        assert!(shares.take(a).is_ok());
    }
}
