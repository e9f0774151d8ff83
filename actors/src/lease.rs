//! Keeps a claimed job's lease alive for as long as a worker holds the job.
//!
//! A claim leases the job for `engine.lease`; when its worker dies, the lease runs out and
//! the relay dispatches the job again. A live worker renews the lease every third of it, so
//! a job that takes longer than the lease (a large image on a busy machine, a long wait for
//! a CPU slot) is not dispatched a second time, and the lease can be short enough that a
//! dead worker's jobs move on within seconds.
//!
//! A renewal that fails (the metadata store is down) is tried again every second, so the
//! lease survives an outage of up to about two thirds of it. A worker that is paused or cut
//! off for longer loses the job, and its attempt's later writes are refused once another
//! attempt has begun. Renewals stop after `engine.max_job_time`: a render that hangs must
//! not hold its job forever.
//!
//! Every lease held is also listed in [`HeldLeases`], so a shutdown that hands jobs back
//! can release their leases too (see `Engine::shutdown`): a job handed back with its lease
//! still live would wait out the lease before any worker could take it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::ids::ImageId;
use crate::metrics::EngineMetrics;
use crate::ports::MetadataStore;
use crate::stages::Ports;

/// Leases shorter than three times this are not renewed: a lease that short is a test's
/// way of saying "already expired".
const SHORTEST_RENEWAL: Duration = Duration::from_millis(10);

/// Pause before trying a failed renewal again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The attempts whose leases this engine holds right now, by image.
#[derive(Debug, Default)]
pub struct HeldLeases {
    held: Mutex<HashMap<ImageId, u32>>,
    /// Set by a shutdown that hands jobs back: from then on a lease stays listed when its
    /// job is dropped, so the jobs dropped as the actors stop can still be released.
    keep: AtomicBool,
}

impl HeldLeases {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ImageId, u32>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps every lease listed from now on, dropped jobs' included.
    pub fn keep_listed(&self) {
        self.keep.store(true, Ordering::SeqCst);
    }

    /// Every listed lease: the image and the attempt holding it.
    pub fn snapshot(&self) -> Vec<(ImageId, u32)> {
        self.map()
            .iter()
            .map(|(id, attempt)| (*id, *attempt))
            .collect()
    }
}

/// Lists a lease in [`HeldLeases`] for as long as it lives.
struct Listed {
    held: Arc<HeldLeases>,
    id: ImageId,
    attempt: u32,
}

impl Drop for Listed {
    fn drop(&mut self) {
        if self.held.keep.load(Ordering::SeqCst) {
            return;
        }
        let mut map = self.held.map();
        // A newer attempt of the same image may have been listed since (a redelivery).
        if map.get(&self.id) == Some(&self.attempt) {
            map.remove(&self.id);
        }
    }
}

/// Renews one attempt's lease until dropped. It travels with the job through the stages, so
/// renewals end when the job is settled, whichever stage settles it. Dropping it stops the
/// renewals between calls: a renewal in flight is let finish, so no store call is cut off
/// half way.
pub struct LeaseKeeper {
    _stop: Option<DropGuard>,
    _listed: Listed,
    renewed_until: Instant,
}

/// What the renewing task needs.
struct Renewal {
    metadata: Arc<dyn MetadataStore>,
    metrics: Arc<dyn EngineMetrics>,
    id: ImageId,
    attempt: u32,
    lease: Duration,
    give_up_at: Instant,
    max_job_time: Duration,
}

impl LeaseKeeper {
    /// Starts renewing the lease of `attempt` on `id`, in the current span. Call from
    /// within the runtime.
    pub fn start(
        ports: &Ports,
        held: &Arc<HeldLeases>,
        id: ImageId,
        attempt: u32,
        lease: Duration,
        max_job_time: Duration,
    ) -> Self {
        held.map().insert(id, attempt);
        let renewed_until = Instant::now() + max_job_time;
        let listed = Listed {
            held: Arc::clone(held),
            id,
            attempt,
        };
        if lease / 3 < SHORTEST_RENEWAL {
            return Self {
                _stop: None,
                _listed: listed,
                renewed_until,
            };
        }
        let renewal = Renewal {
            metadata: ports.metadata.clone(),
            metrics: ports.metrics.clone(),
            id,
            attempt,
            lease,
            give_up_at: renewed_until,
            max_job_time,
        };
        let stop = CancellationToken::new();
        tokio::spawn(
            renewal
                .run(stop.clone())
                .instrument(tracing::Span::current()),
        );
        Self {
            _stop: Some(stop.drop_guard()),
            _listed: listed,
            renewed_until,
        }
    }

    /// When renewals stop (`engine.max_job_time` after the claim): past it the job is
    /// dispatched again, so no stage should still be working on this attempt.
    pub fn renewed_until(&self) -> Instant {
        self.renewed_until
    }
}

impl Renewal {
    async fn run(self, stop: CancellationToken) {
        let every = self.lease / 3;
        let give_up_at = self.give_up_at;
        let mut next = Instant::now() + every;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.cancelled() => return,
            }
            if Instant::now() >= give_up_at {
                tracing::warn!(attempt = self.attempt, max_job_time_s = self.max_job_time.as_secs(),
                    "the job has been held for engine.max_job_time; its lease is no longer renewed, so it will be dispatched again");
                return;
            }
            let asked = Instant::now();
            match self
                .metadata
                .renew_lease(self.id, self.attempt, self.lease)
                .await
            {
                Ok(true) => next = asked + every,
                Ok(false) => {
                    // Settled by this attempt, taken back by the relay, claimed again, or
                    // deleted: in every case nothing is left to renew.
                    tracing::debug!(
                        attempt = self.attempt,
                        "the lease is no longer this attempt's; renewals end"
                    );
                    return;
                }
                Err(error) => {
                    self.metrics.backend_error(&error);
                    tracing::warn!(attempt = self.attempt, error = %error, "could not renew the job's lease; trying again");
                    next = Instant::now() + RETRY_AFTER.min(every);
                }
            }
        }
    }
}
