//! Name resolution of the target, at most one lookup at a time.
//!
//! Every connection needs an address; looking the name up per connection
//! would, at a high rate and with a name that does not resolve, put hundreds
//! of lookups on the blocking pool at once (each a thread) and flood the
//! resolver. Here the answer is cached for [`POSITIVE_TTL`], a failure for
//! [`NEGATIVE_TTL`] (requests due meanwhile fail at once as `kind="dns"`),
//! and while a lookup runs every request that needs it waits for that one.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::Shared;

/// How long a lookup's addresses are used before the name is looked up again.
pub const POSITIVE_TTL: Duration = Duration::from_secs(5);
/// How long a failed lookup stands: requests fail at once meanwhile, so a
/// name that does not resolve costs one lookup per this interval.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(2);

/// Why the target's name gave no address; cheap to clone for every waiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError(Rc<str>);

impl Default for ResolveError {
    fn default() -> Self {
        ResolveError("cannot resolve the target".into())
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResolveError {}

type Addresses = Rc<[SocketAddr]>;
type Lookup = Shared<Pin<Box<dyn Future<Output = Result<Addresses, ResolveError>>>>>;

/// What is known about the name now.
enum Known {
    Nothing,
    Addresses { addrs: Addresses, until: Instant },
    Failed { error: ResolveError, until: Instant },
}

/// The pure part: what to do for a request at `now`.
#[derive(Debug, PartialEq)]
enum Step {
    Use(SocketAddr),
    Fail(ResolveError),
    Lookup,
}

pub struct Resolver {
    host: String,
    port: u16,
    literal: Option<IpAddr>,
    known: RefCell<Known>,
    in_flight: RefCell<Option<Lookup>>,
    next_address: Cell<usize>,
    lookups: Cell<u64>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new(host: &str, port: u16) -> Self {
        Resolver {
            host: host.to_string(),
            port,
            literal: host.parse().ok(),
            known: RefCell::new(Known::Nothing),
            in_flight: RefCell::new(None),
            next_address: Cell::new(0),
            lookups: Cell::new(0),
        }
    }

    /// Lookups started so far.
    #[cfg(test)]
    pub fn lookups(&self) -> u64 {
        self.lookups.get()
    }

    /// The address for the next connection: a literal one, or the next of
    /// the name's addresses (round robin).
    pub async fn address(&self) -> Result<SocketAddr, ResolveError> {
        if let Some(ip) = self.literal {
            return Ok(SocketAddr::new(ip, self.port));
        }
        match self.step(Instant::now()) {
            Step::Use(address) => return Ok(address),
            Step::Fail(error) => return Err(error),
            Step::Lookup => {}
        }
        let lookup = self.in_flight.borrow_mut().get_or_insert_with(|| self.start_lookup()).clone();
        let result = lookup.await;
        // The first waiter to wake records the outcome; the rest find it done.
        if self.in_flight.borrow_mut().take().is_some() {
            self.record(&result, Instant::now());
        }
        let addrs = result?;
        Ok(self.pick(&addrs))
    }

    fn step(&self, now: Instant) -> Step {
        match &*self.known.borrow() {
            Known::Addresses { addrs, until } if now < *until => Step::Use(self.pick(addrs)),
            Known::Failed { error, until } if now < *until => Step::Fail(error.clone()),
            _ => Step::Lookup,
        }
    }

    fn record(&self, result: &Result<Addresses, ResolveError>, now: Instant) {
        let was_failing = matches!(*self.known.borrow(), Known::Failed { .. });
        let known = match result {
            Ok(addrs) => {
                if was_failing {
                    log::info!(host = self.host.as_str(); "the target's name resolves again");
                }
                Known::Addresses { addrs: Rc::clone(addrs), until: now + POSITIVE_TTL }
            }
            Err(error) => {
                if !was_failing {
                    log::warn!(host = self.host.as_str(), error:% = error, retry_secs = NEGATIVE_TTL.as_secs_f64();
                        "the target's name does not resolve; requests fail as kind=dns until it does");
                }
                Known::Failed { error: error.clone(), until: now + NEGATIVE_TTL }
            }
        };
        *self.known.borrow_mut() = known;
    }

    fn start_lookup(&self) -> Lookup {
        self.lookups.set(self.lookups.get() + 1);
        let (host, port) = (self.host.clone(), self.port);
        // On the runtime's blocking pool, which the engine bounds to a few
        // threads; only this one lookup is ever queued there.
        let blocking = tokio::task::spawn_blocking(move || {
            let found: Vec<SocketAddr> = (host.as_str(), port).to_socket_addrs()?.collect();
            if found.is_empty() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
            }
            Ok(found)
        });
        let host = self.host.clone();
        let lookup = async move {
            match blocking.await {
                Ok(Ok(found)) => Ok(Addresses::from(found)),
                Ok(Err(e)) => Err(ResolveError(format!("cannot resolve {host}: {e}").into())),
                Err(e) => Err(ResolveError(format!("cannot resolve {host}: lookup task failed: {e}").into())),
            }
        };
        let boxed: Pin<Box<dyn Future<Output = Result<Addresses, ResolveError>>>> = Box::pin(lookup);
        boxed.shared()
    }

    fn pick(&self, addrs: &[SocketAddr]) -> SocketAddr {
        let i = self.next_address.get();
        self.next_address.set(i.wrapping_add(1));
        addrs[i % addrs.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Addresses {
        list.iter().map(|a| a.parse().unwrap()).collect::<Vec<SocketAddr>>().into()
    }

    #[test]
    fn answers_and_failures_are_cached_for_their_ttl() {
        let r = Resolver::new("shop.example", 80);
        let t0 = Instant::now();
        assert_eq!(r.step(t0), Step::Lookup);
        r.record(&Ok(addrs(&["10.0.0.1:80", "10.0.0.2:80"])), t0);
        assert_eq!(r.step(t0), Step::Use("10.0.0.1:80".parse().unwrap()));
        assert_eq!(r.step(t0 + POSITIVE_TTL / 2), Step::Use("10.0.0.2:80".parse().unwrap()), "round robin");
        assert_eq!(r.step(t0 + POSITIVE_TTL), Step::Lookup);

        let error = ResolveError("cannot resolve shop.example: not found".into());
        r.record(&Err(error.clone()), t0);
        assert_eq!(r.step(t0 + NEGATIVE_TTL / 2), Step::Fail(error), "failures fail fast, without a lookup");
        assert_eq!(r.step(t0 + NEGATIVE_TTL), Step::Lookup);
    }

    #[test]
    fn concurrent_requests_share_one_lookup() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let r = Rc::new(Resolver::new("localhost", 8080));
            let waiters: Vec<_> = (0..50).map(|_| r.address()).collect();
            let results = futures_util::future::join_all(waiters).await;
            assert_eq!(r.lookups(), 1, "one lookup for 50 requests");
            assert!(results.iter().all(|a| a.as_ref().is_ok_and(|a| a.port() == 8080 && a.ip().is_loopback())));
            r.address().await.unwrap();
            assert_eq!(r.lookups(), 1, "cached");
        });
    }

    #[test]
    fn literal_addresses_need_no_lookup() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let r = Resolver::new("::1", 443);
        let address = runtime.block_on(r.address()).unwrap();
        assert_eq!(address, "[::1]:443".parse().unwrap());
        assert_eq!(r.lookups(), 0);
    }
}
