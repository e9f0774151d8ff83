//! The actor stages of the pipeline and what they hand each other.
//!
//! Each stage is a pool of identical actors behind a [`StagePool`]. A delivery travels
//! through the stages inside the messages; whatever happens to it, it is settled exactly
//! once: by the persister, by [`outcome`] on a failure, or, when an actor crashes while
//! holding it, by its `Drop`, which hands it back to the queue.

pub mod consumer;
pub mod downloader;
pub mod outcome;
pub mod persister;
pub mod transformer;

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::EngineConfig;
use crate::cpu_pool::CpuPool;
use crate::events::StatusEvents;
use crate::faults::FaultPlan;
use crate::lease::{HeldLeases, LeaseKeeper};
use crate::mailbox::{Envelope, StagePool};
use crate::metrics::EngineMetrics;
use crate::ports::{ClaimedJob, Delivery, JobQueue, MetadataStore, ObjectStore};
use crate::stats::{ActorState, ActorStats};
use crate::transform::{Rendered, TransformError};

/// The outside world, as the engine sees it.
#[derive(Clone)]
pub struct Ports {
    pub objects: Arc<dyn ObjectStore>,
    pub metadata: Arc<dyn MetadataStore>,
    pub queue: Arc<dyn JobQueue>,
    pub events: Arc<dyn StatusEvents>,
    /// Where timings, outcomes and backend failures are reported.
    pub metrics: Arc<dyn EngineMetrics>,
}

/// A claimed job with its original, on its way to the CPU pool.
pub struct TransformJob {
    pub delivery: Delivery,
    pub job: ClaimedJob,
    /// Renews the claim's lease while the job is held; ends when the job is dropped.
    pub lease: LeaseKeeper,
    pub original: Bytes,
}

/// A transformed (or failed) job, on its way to storage.
pub struct PersistJob {
    pub delivery: Delivery,
    pub job: ClaimedJob,
    pub lease: LeaseKeeper,
    pub outcome: Result<Vec<Rendered>, TransformError>,
}

/// What every stage actor can reach.
pub struct StageContext {
    pub ports: Ports,
    pub config: EngineConfig,
    pub downloaders: Arc<StagePool<Delivery>>,
    pub transformers: Arc<StagePool<TransformJob>>,
    pub persisters: Arc<StagePool<PersistJob>>,
    /// The threads the transformers render on, one per transformer slot.
    pub cpu: CpuPool,
    pub faults: Arc<dyn FaultPlan>,
    /// Cancelled when the engine shuts down: the consumer stops taking deliveries.
    pub shutdown: CancellationToken,
    /// Cancelled when a shutdown's grace has run out: a render still running is left (its
    /// job goes back to the queue), since the persisters take no more results by then.
    pub hand_back: CancellationToken,
    /// The leases this engine's jobs hold, for a shutdown that hands jobs back.
    pub leases: Arc<HeldLeases>,
}

/// What one pool stage does with one message. The actor around it, [`PoolWorker`], is the
/// same for every stage: it unpacks the envelope, runs the handler inside the job's span and
/// returns the credit when the handler is done.
pub trait StageHandler: Send + Sync + 'static {
    type Payload: Send + 'static;

    fn handle(
        args: &StageArgs,
        payload: Self::Payload,
    ) -> impl std::future::Future<Output = Result<(), ActorProcessingErr>> + Send;
}

/// A pool slot's actor for the stage `H`.
pub struct PoolWorker<H>(PhantomData<fn() -> H>);

impl<H> PoolWorker<H> {
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<H> Default for PoolWorker<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: StageHandler> Actor for PoolWorker<H> {
    type Msg = Envelope<H::Payload>;
    type State = StageArgs;
    type Arguments = StageArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: StageArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        args.stats.set_state(ActorState::Running);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        args: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Envelope {
            payload,
            credit,
            span,
        } = msg;
        let result = H::handle(args, payload).instrument(span).await;
        drop(credit);
        result
    }
}

/// The arguments every stage actor starts with.
#[derive(Clone)]
pub struct StageArgs {
    pub ctx: Arc<StageContext>,
    pub stats: Arc<ActorStats>,
}

impl StageArgs {
    /// Hands `payload` to the `next` stage (waiting for its credit) and counts it done here.
    /// A stage closed by a shutdown drops it, which hands its delivery back to the queue.
    pub async fn hand_on<T: Send + 'static>(
        &self,
        next: &StagePool<T>,
        payload: T,
        span: tracing::Span,
    ) {
        match next.send(payload, span).await {
            Ok(()) => self.stats.job_done(),
            Err(closed) => drop(closed.0),
        }
    }
}
