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

use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::events::StatusEvents;
use crate::faults::FaultPlan;
use crate::mailbox::StagePool;
use crate::metrics::EngineMetrics;
use crate::ports::{ClaimedJob, Delivery, JobQueue, MetadataStore, ObjectStore};
use crate::stats::ActorStats;
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
    pub original: Bytes,
}

/// A transformed (or failed) job, on its way to storage.
pub struct PersistJob {
    pub delivery: Delivery,
    pub job: ClaimedJob,
    pub outcome: Result<Vec<Rendered>, TransformError>,
}

/// What every stage actor can reach.
pub struct StageContext {
    pub ports: Ports,
    pub config: EngineConfig,
    pub downloaders: Arc<StagePool<Delivery>>,
    pub transformers: Arc<StagePool<TransformJob>>,
    pub persisters: Arc<StagePool<PersistJob>>,
    pub faults: Arc<dyn FaultPlan>,
    /// Cancelled when the engine shuts down: the consumer stops taking deliveries.
    pub shutdown: CancellationToken,
}

/// The arguments every stage actor starts with.
#[derive(Clone)]
pub struct StageArgs {
    pub ctx: Arc<StageContext>,
    pub stats: Arc<ActorStats>,
}
