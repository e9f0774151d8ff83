//! Starting and stopping the whole pipeline.
//!
//! Start-up order is the reverse of the data flow (persisters first, consumer last) so no
//! stage receives work before the one after it exists; shutdown runs the other way: the
//! consumer stops taking deliveries, in-flight jobs get `shutdown_grace` to finish, and
//! whatever is still held after that is handed back to the queue as its actors stop, and
//! its lease released so it is dispatched again within a relay tick, not after the lease.

use std::sync::Arc;

use chrono::Utc;
use futures_util::FutureExt;
use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::cpu_pool::CpuPool;
use crate::faults::FaultPlan;
use crate::ids::ImageId;
use crate::mailbox::{Envelope, StagePool};
use crate::ports::BackendError;
use crate::record::JobError;
use crate::relay::Relay;
use crate::stages::consumer::Consumer;
use crate::stages::downloader::Downloader;
use crate::stages::persister::Persister;
use crate::stages::transformer::Transformer;
use crate::stages::{PoolWorker, Ports, StageArgs, StageContext};
use crate::stats::{ActorSnapshot, ActorStats};
use crate::supervisor::{ChildSpec, DepthFn, StartFn, Supervisor, SupervisorMsg, STOP_WAIT};
use crate::sweeper::Sweeper;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not re-dispatch unfinished jobs: {0}")]
    Redispatch(#[source] BackendError),
    #[error("could not start the CPU pool's threads: {0}")]
    CpuPool(#[source] std::io::Error),
    #[error("could not start the supervisor: {0}")]
    Spawn(#[from] SpawnErr),
}

/// How much longer than the supervisor's own wait for its children the engine waits for the
/// supervisor to stop.
const STOP_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// What operators see of a running engine.
#[derive(Clone, Debug, Default)]
pub struct EngineSnapshot {
    pub actors: Vec<ActorSnapshot>,
    /// Renders given up on after `max_job_time` that still run, each on a thread of its own
    /// (see [`CpuPool`]).
    pub renders_hung: usize,
    /// The CPU pool's threads taking renders, and how many it has when none hangs.
    pub render_threads: (usize, usize),
}

/// A running pipeline.
pub struct Engine {
    ctx: Arc<StageContext>,
    supervisor: ActorRef<SupervisorMsg>,
    join: JoinHandle<()>,
    children: Vec<ChildSpec>,
}

impl Engine {
    pub async fn start(
        ports: Ports,
        config: EngineConfig,
        faults: Arc<dyn FaultPlan>,
    ) -> Result<Self, EngineError> {
        if !ports.queue.is_durable() {
            // The queue forgot everything when the process stopped; the metadata store did not.
            let count = ports
                .metadata
                .redispatch_unfinished(Utc::now())
                .await
                .map_err(EngineError::Redispatch)?;
            if count > 0 {
                tracing::info!(
                    count,
                    "re-dispatching unfinished jobs from the previous run"
                );
            }
        }
        let cpu = CpuPool::start(config.transform_slots()).map_err(EngineError::CpuPool)?;
        let ctx = Arc::new(StageContext {
            ports,
            cpu,
            downloaders: StagePool::new("downloader", config.download_workers),
            transformers: StagePool::new("transformer", config.transform_slots()),
            persisters: StagePool::new("persister", config.persist_workers),
            config,
            faults,
            shutdown: CancellationToken::new(),
            hand_back: CancellationToken::new(),
            leases: Arc::default(),
        });

        let mut children = Vec::new();
        children.extend(pool_children(
            &ctx,
            &ctx.persisters,
            PoolWorker::<Persister>::new,
        ));
        children.extend(pool_children(
            &ctx,
            &ctx.transformers,
            PoolWorker::<Transformer>::new,
        ));
        children.extend(pool_children(
            &ctx,
            &ctx.downloaders,
            PoolWorker::<Downloader>::new,
        ));
        children.push(single_child(&ctx, "relay", || Relay));
        children.push(single_child(&ctx, "sweeper", || Sweeper));
        children.push(single_child(&ctx, "consumer", || Consumer));

        let (supervisor, join) = Actor::spawn(None, Supervisor, children.clone()).await?;
        tracing::info!(
            transformers = ctx.transformers.slot_count(),
            downloaders = ctx.downloaders.slot_count(),
            persisters = ctx.persisters.slot_count(),
            prefetch = ctx.config.pipeline_capacity(),
            "engine started"
        );
        Ok(Self {
            ctx,
            supervisor,
            join,
            children,
        })
    }

    /// Every supervised actor's counters, in start-up order, and the CPU pool's hung
    /// renders.
    pub fn snapshot(&self) -> EngineSnapshot {
        EngineSnapshot {
            actors: self.children.iter().map(ChildSpec::snapshot).collect(),
            renders_hung: self.ctx.cpu.hung(),
            render_threads: self.ctx.cpu.serving(),
        }
    }

    /// Jobs inside the pipeline right now.
    pub fn in_flight(&self) -> usize {
        self.ctx.downloaders.depth() + self.ctx.transformers.depth() + self.ctx.persisters.depth()
    }

    /// Stops taking jobs, lets in-flight ones finish within the grace period, then stops
    /// every actor. Jobs still held then go back to the queue.
    pub async fn shutdown(self) {
        self.ctx.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + self.ctx.config.shutdown_grace;
        let drained = self.ctx.downloaders.drained(deadline).await
            && self.ctx.transformers.drained(deadline).await
            && self.ctx.persisters.drained(deadline).await;
        if !drained {
            tracing::warn!(
                in_flight = self.in_flight(),
                "shutdown grace ran out; handing jobs back to the queue"
            );
            // Released once the actors have stopped (each finishes the message in hand first,
            // within the supervisor's STOP_WAIT: a result being recorded is recorded);
            // until then every lease stays listed, those of claims still in flight
            // included, though their jobs are dropped as the actors stop.
            self.ctx.leases.keep_listed();
            self.ctx.hand_back.cancel();
        }
        self.ctx.downloaders.close();
        self.ctx.transformers.close();
        self.ctx.persisters.close();
        self.supervisor.stop(None);
        let mut join = self.join;
        if tokio::time::timeout(STOP_WAIT + STOP_MARGIN, &mut join)
            .await
            .is_err()
        {
            // A stage stuck past its own call timeouts must not hold the process: its
            // delivery goes back to the queue when the connection closes, its lease expires.
            tracing::warn!(wait = ?(STOP_WAIT + STOP_MARGIN), "actors did not stop in time; abandoning them");
            join.abort();
        }
        if !drained {
            release(&self.ctx, &self.ctx.leases.snapshot()).await;
        }
        tracing::info!(drained, "engine stopped");
    }
}

/// How long a shutdown waits for the store to release the leases of the jobs it hands back.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Hands the leases of the jobs a shutdown gave back to the store: each becomes `PENDING`
/// and due now, through the same attempt-guarded write as a retry (a job that finished
/// meanwhile is left alone), so the relay publishes it at its next tick and a worker takes
/// it then, instead of after the lease runs out (a worker that got the handed-back delivery
/// before this found the lease live and dropped it). The attempt counts, as any attempt
/// that was cut off does; the error says why. All at once, within [`RELEASE_WAIT`]: a store
/// that does not answer must not hold the shutdown.
async fn release(ctx: &StageContext, held: &[(ImageId, u32)]) {
    if held.is_empty() {
        return;
    }
    let reason = JobError::new(
        "worker_stopped",
        "the worker stopped before this attempt finished; the job is tried again",
    );
    let releases = held.iter().map(|&(id, attempt)| {
        let reason = &reason;
        async move {
            match ctx
                .ports
                .metadata
                .retry_later(id, attempt, reason, Utc::now())
                .await
            {
                Ok(released) => released,
                Err(error) => {
                    ctx.ports.metrics.backend_error(&error);
                    tracing::warn!(image_id = %id, attempt, error = %error,
                        "could not release a handed-back job; it moves on when its lease runs out");
                    false
                }
            }
        }
    });
    match tokio::time::timeout(RELEASE_WAIT, futures_util::future::join_all(releases)).await {
        Ok(outcomes) => {
            let released = outcomes.into_iter().filter(|released| *released).count();
            tracing::info!(released, "released the leases of handed-back jobs");
        }
        Err(_) => tracing::warn!(wait = ?RELEASE_WAIT,
            "releasing the leases of handed-back jobs timed out; those left move on when their leases run out"),
    }
}

fn stats_for(name: String, stage: &'static str) -> Arc<ActorStats> {
    ActorStats::new(name, stage)
}

fn pool_children<T, A>(
    ctx: &Arc<StageContext>,
    pool: &Arc<StagePool<T>>,
    make: fn() -> A,
) -> Vec<ChildSpec>
where
    T: Send + 'static,
    A: Actor<Msg = Envelope<T>, Arguments = StageArgs>,
{
    (0..pool.slot_count())
        .map(|slot| {
            let stats = stats_for(format!("{}-{slot}", pool.name()), pool.name());
            let args = StageArgs {
                ctx: ctx.clone(),
                stats: stats.clone(),
            };
            let start_pool = pool.clone();
            let start: StartFn = Arc::new(move |supervisor: ActorCell| {
                let pool = start_pool.clone();
                let args = args.clone();
                async move {
                    pool.detach(slot);
                    let (actor, _) = Actor::spawn_linked(None, make(), args, supervisor).await?;
                    pool.attach(slot, actor.clone());
                    Ok(actor.get_cell())
                }
                .boxed()
            });
            let depth_pool = pool.clone();
            let depth: DepthFn = Arc::new(move || (depth_pool.slot_depth(slot), 1));
            ChildSpec {
                stats,
                start,
                depth,
            }
        })
        .collect()
}

fn single_child<A>(ctx: &Arc<StageContext>, name: &'static str, make: fn() -> A) -> ChildSpec
where
    A: Actor<Arguments = StageArgs>,
{
    let stats = stats_for(name.to_owned(), name);
    let args = StageArgs {
        ctx: ctx.clone(),
        stats: stats.clone(),
    };
    let start: StartFn = Arc::new(move |supervisor: ActorCell| {
        let args = args.clone();
        async move {
            let (actor, _) = Actor::spawn_linked(None, make(), args, supervisor).await?;
            Ok(actor.get_cell())
        }
        .boxed()
    });
    ChildSpec {
        stats,
        start,
        depth: Arc::new(|| (0, 0)),
    }
}
