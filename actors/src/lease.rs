//! Keeps a claimed job's lease alive for as long as a worker holds the job.
//!
//! A claim leases the job for `engine.lease`; when its worker dies, the lease runs out and
//! the relay dispatches the job again. A live worker renews the lease every third of it, so
//! a job that takes longer than the lease (a large image on a busy machine, a long wait for
//! a CPU slot) is never dispatched a second time, and the lease can be short enough that a
//! dead worker's jobs move on within seconds. A worker that is paused or cut off from the
//! metadata store cannot renew: its lease runs out as if it had died, and its attempt's
//! writes are refused after another attempt has begun.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::ids::ImageId;
use crate::stages::Ports;

/// Leases shorter than three times this are not renewed: a lease that short is a test's
/// way of saying "already expired".
const SHORTEST_RENEWAL: Duration = Duration::from_millis(10);

/// Renews one attempt's lease until dropped. It travels with the job through the stages, so
/// the renewals end when the job is settled, whichever stage settles it.
pub struct LeaseKeeper {
    renewing: Option<JoinHandle<()>>,
}

impl LeaseKeeper {
    /// Starts renewing the lease of `attempt` on `id`, every third of `lease`, in the
    /// current span. Call from within the runtime.
    pub fn start(ports: &Ports, id: ImageId, attempt: u32, lease: Duration) -> Self {
        let every = lease / 3;
        if every < SHORTEST_RENEWAL {
            return Self { renewing: None };
        }
        let (metadata, metrics) = (ports.metadata.clone(), ports.metrics.clone());
        let renew = async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match metadata.renew_lease(id, attempt, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(attempt, "the job's lease was taken back; this attempt's result will not be recorded");
                        return;
                    }
                    Err(error) => {
                        metrics.backend_error(&error);
                        tracing::warn!(attempt, error = %error, "could not renew the job's lease; trying again");
                    }
                }
            }
        };
        let renewing = tokio::spawn(renew.instrument(tracing::Span::current()));
        Self {
            renewing: Some(renewing),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        if let Some(renewing) = self.renewing.take() {
            renewing.abort();
        }
    }
}
