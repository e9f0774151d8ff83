//! The consumer: takes deliveries from the queue and hands them to the downloaders, one at a
//! time, waiting for a downloader credit before it takes the next. Its prefetch equals what
//! the pipeline can hold, so the broker keeps everything else.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::StageArgs;
use crate::ports::{Delivery, JobStream};
use crate::stats::ActorState;

/// Longest pause between attempts to reach the queue.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

pub struct Consumer;

pub enum ConsumerMsg {
    /// Take the next delivery. The actor sends this to itself after each one, so between
    /// deliveries it can still be stopped.
    Poll,
}

pub struct ConsumerState {
    args: StageArgs,
    stream: Option<Box<dyn JobStream>>,
    failures: u32,
}

impl Actor for Consumer {
    type Msg = ConsumerMsg;
    type State = ConsumerState;
    type Arguments = StageArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: StageArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.cast(ConsumerMsg::Poll)?;
        args.stats.set_state(ActorState::Running);
        Ok(ConsumerState {
            args,
            stream: None,
            failures: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let ctx = state.args.ctx.clone();
        if ctx.shutdown.is_cancelled() {
            stop_taking(state).await;
            return Ok(());
        }
        if state.stream.is_none() {
            let prefetch = u16::try_from(ctx.config.pipeline_capacity()).unwrap_or(u16::MAX);
            match ctx.ports.queue.consume(prefetch).await {
                Ok(stream) => {
                    tracing::info!(prefetch, queue = %ctx.ports.queue.describe(), "consuming jobs");
                    state.stream = Some(stream);
                    state.failures = 0;
                }
                Err(error) => {
                    ctx.ports.metrics.backend_error(&error);
                    state.failures += 1;
                    tracing::warn!(error = %error, "could not open the job queue; retrying");
                    pause(&ctx.shutdown, state.failures).await;
                    myself.cast(ConsumerMsg::Poll)?;
                    return Ok(());
                }
            }
        }
        let Some(stream) = state.stream.as_mut() else {
            return Ok(());
        };
        let next = tokio::select! {
            next = stream.next() => next,
            _ = ctx.shutdown.cancelled() => {
                stop_taking(state).await;
                return Ok(());
            }
        };
        match next {
            Some(Ok(delivery)) => {
                state.failures = 0;
                forward(&state.args, delivery).await;
            }
            Some(Err(error)) => {
                // A stream reports an outage as an error item and keeps recovering by
                // itself; ask again after a pause rather than opening a second consumer.
                ctx.ports.metrics.backend_error(&error);
                state.failures += 1;
                tracing::warn!(error = %error, "job stream reported a failure; waiting for it to recover");
                pause(&ctx.shutdown, state.failures).await;
            }
            None => {
                tracing::info!("job stream ended; reopening");
                state.stream = None;
            }
        }
        myself.cast(ConsumerMsg::Poll)?;
        Ok(())
    }
}

/// Shutting down: no more deliveries, but the stream stays open (it is dropped with this
/// actor, after the grace) so the jobs in flight are still settled on it.
async fn stop_taking(state: &mut ConsumerState) {
    if let Some(stream) = state.stream.as_mut() {
        stream.stop_taking().await;
    }
}

async fn forward(args: &StageArgs, delivery: Delivery) {
    // `request_id` is the upload's (the gateway's request span has the same field), so one
    // upload can be followed from the gateway into every stage. Jobs the relay publishes
    // (retries, expired leases, unconfirmed uploads) carry none.
    let span = tracing::info_span!("job", image_id = %delivery.job.image_id, redelivered = delivery.redelivered,
        attempt = tracing::field::Empty, request_id = delivery.job.trace_id.as_deref().unwrap_or(""));
    // Waits here for a downloader credit: this is where backpressure reaches the queue.
    args.hand_on(&args.ctx.downloaders, delivery, span).await;
}

async fn pause(shutdown: &tokio_util::sync::CancellationToken, failures: u32) {
    let delay = Duration::from_millis(100u64 << failures.min(6)).min(MAX_RECONNECT_DELAY);
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = shutdown.cancelled() => {}
    }
}
