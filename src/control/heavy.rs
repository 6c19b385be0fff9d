//! The lane for control work too heavy for the thread that answers
//! `/health`: reading and checking a workload (`PUT /workload`, SIGHUP),
//! writing an export. The control API runs on one thread, so a handler that
//! computes for a second holds every probe for that second; here such work
//! runs on a blocking thread, one job at a time (so its memory is that of
//! one job), and at most [`MAX_WAITING`] more wait their turn. A request
//! that finds the queue full is refused at once with a 503 and
//! `Retry-After`, never queued without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Jobs that may wait while one runs.
pub const MAX_WAITING: usize = 4;

/// One heavy job at a time, a short queue before it.
#[derive(Debug)]
pub struct HeavyLane {
    running: Arc<Semaphore>,
    /// Jobs admitted and not finished: running and waiting.
    admitted: AtomicUsize,
}

impl Default for HeavyLane {
    fn default() -> Self {
        HeavyLane { running: Arc::new(Semaphore::new(1)), admitted: AtomicUsize::new(0) }
    }
}

/// Holds a place in the lane; gives it back when dropped (also when the
/// client goes away while it waits).
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place in the lane, taken before a request's body is read (a full lane
/// refuses the request before it holds a megabyte of body).
pub struct Place<'a> {
    lane: &'a HeavyLane,
    what: String,
    admitted: Admitted<'a>,
}

impl Place<'_> {
    /// Runs `job` on a blocking thread when its turn comes, or refuses it
    /// when the turn does not come within `max_wait` (the client must get
    /// an answer before the control server's request timeout closes its
    /// connection).
    pub async fn run<T, F>(self, max_wait: Duration, job: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let turn = match tokio::time::timeout(max_wait, Arc::clone(&self.lane.running).acquire_owned()).await {
            Ok(Ok(turn)) => turn,
            Ok(Err(_)) => return Err(ApiError::Unavailable("the sidecar is stopping".into())),
            Err(_) => return Err(busy(&self.what, &format!("its turn did not come within {max_wait:?}"))),
        };
        self.lane.run_turn(job, turn, self.admitted).await
    }
}

fn busy(what: &str, why: &str) -> ApiError {
    ApiError::Busy(format!(
        "{what} must wait: one workload check or export runs at a time and {why}; try again in a moment"
    ))
}

impl HeavyLane {
    /// A place in the lane for `what`, or a 503 when [`MAX_WAITING`] wait
    /// already.
    pub fn admit(&self, what: &str) -> Result<Place<'_>, ApiError> {
        let admitted = self.admitted.fetch_add(1, Ordering::AcqRel);
        let place = Admitted(&self.admitted);
        if admitted > MAX_WAITING {
            return Err(busy(what, &format!("{MAX_WAITING} already wait")));
        }
        Ok(Place { lane: self, what: what.to_string(), admitted: place })
    }

    /// [`HeavyLane::admit`], then [`Place::run`].
    pub async fn run<T, F>(&self, what: &str, max_wait: Duration, job: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admit(what)?.run(max_wait, job).await
    }

    /// Runs `job` when its turn comes, however many wait (a signal, which
    /// no client can repeat at will).
    pub async fn run_waiting<T, F>(&self, job: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admitted.fetch_add(1, Ordering::AcqRel);
        let place = Admitted(&self.admitted);
        self.run_admitted(job, place).await
    }

    async fn run_admitted<T, F>(&self, job: F, place: Admitted<'_>) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let closed = || ApiError::Unavailable("the sidecar is stopping".into());
        let turn = Arc::clone(&self.running).acquire_owned().await.map_err(|_| closed())?;
        self.run_turn(job, turn, place).await
    }

    async fn run_turn<T, F>(&self, job: F, turn: OwnedSemaphorePermit, place: Admitted<'_>) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // The turn goes with the job: if the client leaves meanwhile, the
        // job still finishes before the next one starts.
        let done = actix_web::rt::task::spawn_blocking(move || {
            let _turn = turn;
            let result = job();
            // What the job read and threw away (a YAML tree of megabytes)
            // goes back to the system, not to this thread's arena for good.
            super::server::release_free_memory();
            result
        })
        .await;
        drop(place);
        done.map_err(|_| ApiError::Unavailable("the job stopped unexpectedly; try again".into()))
    }

    /// Jobs running or waiting now.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[actix_rt::test]
    async fn one_job_runs_at_a_time_and_a_full_queue_is_refused_at_once() {
        let lane = Arc::new(HeavyLane::default());
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
        let concurrent = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..=MAX_WAITING {
            let (lane, release_rx, concurrent, most) =
                (Arc::clone(&lane), Arc::clone(&release_rx), Arc::clone(&concurrent), Arc::clone(&most));
            jobs.push(actix_rt::spawn(async move {
                lane.run("a test job", Duration::from_secs(30), move || {
                    let now = concurrent.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _ = release_rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
                    concurrent.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        while lane.admitted() <= MAX_WAITING {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = lane.run("one too many", Duration::from_secs(30), || ()).await;
        assert!(matches!(&refused, Err(ApiError::Busy(m)) if m.contains("one too many")), "{refused:?}");
        for _ in 0..=MAX_WAITING {
            release_tx.send(()).unwrap();
        }
        for job in jobs {
            assert!(job.await.unwrap().is_ok());
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "jobs ran side by side");
        assert_eq!(lane.admitted(), 0);
        assert_eq!(lane.run("after", Duration::from_secs(30), || 7).await.unwrap(), 7);
    }
}
