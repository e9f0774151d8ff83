//! The relay: the other half of the transactional outbox. Every tick it publishes the jobs
//! the metadata store says are due (uploads whose publish the gateway never confirmed,
//! retries whose back-off ran out, jobs whose worker's lease expired) and clears their mark.
//!
//! Several relays (one per worker process) may publish the same job; the claim in the
//! metadata store makes the duplicate harmless.

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::stages::StageArgs;
use crate::stats::ActorState;

/// Jobs published per tick at most; the rest wait for the next tick.
const BATCH: u32 = 256;

pub struct Relay;

pub enum RelayMsg {
    Tick,
}

impl Actor for Relay {
    type Msg = RelayMsg;
    type State = StageArgs;
    type Arguments = StageArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: StageArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.cast(RelayMsg::Tick)?;
        args.stats.set_state(ActorState::Running);
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: Self::Msg,
        args: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if args.ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        relay_due(args).await;
        // Scheduled after the pass, not on a fixed interval: a pass slowed by an outage
        // (publish and query timeouts) never queues further ticks up behind it.
        myself.send_after(args.ctx.config.relay_interval, || RelayMsg::Tick);
        Ok(())
    }
}

/// Publishes the jobs whose dispatch mark fell due (a batch at most) and clears each mark.
async fn relay_due(args: &mut StageArgs) {
    let ports = &args.ctx.ports;
    let due = match ports.metadata.due_dispatches(Utc::now(), BATCH).await {
        Ok(due) => due,
        Err(error) => {
            ports.metrics.backend_error(&error);
            tracing::warn!(error = %error, "relay could not read due jobs");
            return;
        }
    };
    for (job, due_at) in due {
        match ports.queue.publish(&job).await {
            Ok(()) => {
                if let Err(error) = ports.metadata.mark_dispatched(job.image_id, due_at).await {
                    ports.metrics.backend_error(&error);
                    tracing::warn!(image_id = %job.image_id, error = %error, "published, but could not clear the dispatch mark");
                }
                args.stats.job_done();
                tracing::debug!(image_id = %job.image_id, "relay published job");
            }
            Err(error) => {
                ports.metrics.backend_error(&error);
                tracing::warn!(image_id = %job.image_id, error = %error, "relay could not publish; will retry");
                args.stats.job_failed();
                break;
            }
        }
    }
}
