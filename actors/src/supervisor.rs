//! The supervisor: starts every stage actor linked to itself, restarts any that panics or
//! stops unexpectedly, and counts the restarts.
//!
//! A crashing actor loses nothing: the credit it held returns to its pool, and the delivery
//! it held is handed back to the queue when dropped (or, for a panic on the CPU pool outside
//! the codecs, released for a retry by the transformer first; a codec's own panic fails its
//! job instead, see `transform::panics`). Restarts back off (50 ms doubling to 5 s while the
//! same child keeps failing), so a poisoned dependency cannot spin the CPU.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};

use crate::stats::{ActorSnapshot, ActorState, ActorStats};

/// Starts one child linked to the supervisor cell it is given.
pub type StartFn =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// Reports a child's mailbox as (depth, capacity).
pub type DepthFn = Arc<dyn Fn() -> (usize, usize) + Send + Sync>;

/// A supervised child: how to start it, its counters, and how to read its mailbox.
#[derive(Clone)]
pub struct ChildSpec {
    pub stats: Arc<ActorStats>,
    pub start: StartFn,
    pub depth: DepthFn,
}

impl ChildSpec {
    pub fn snapshot(&self) -> ActorSnapshot {
        let (depth, capacity) = (self.depth)();
        self.stats.snapshot(depth, capacity)
    }
}

pub struct Supervisor;

pub enum SupervisorMsg {
    /// Start child `index` again (sent to itself after the back-off).
    Restart(usize),
    /// Stop restarting and stop every child; the engine is shutting down.
    Stop,
}

pub struct SupervisorState {
    children: Vec<ChildSpec>,
    running: HashMap<ActorId, (usize, ActorCell)>,
    stopping: bool,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Vec<ChildSpec>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        children: Vec<ChildSpec>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = SupervisorState {
            children,
            running: HashMap::new(),
            stopping: false,
        };
        for index in 0..state.children.len() {
            start_child(&myself, &mut state, index).await?;
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stopping = true;
        for (_, (index, cell)) in state.running.drain() {
            state.children[index].stats.set_state(ActorState::Stopped);
            cell.stop(Some("engine shutting down".to_owned()));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart(index) if !state.stopping => {
                if let Err(error) = start_child(&myself, state, index).await {
                    let stats = &state.children[index].stats;
                    tracing::error!(actor = %stats.name, error = %error, "restart failed; trying again");
                    let recent = stats.record_failure(format!("restart failed: {error}"));
                    myself.send_after(backoff(recent), move || SupervisorMsg::Restart(index));
                }
            }
            SupervisorMsg::Restart(_) => {}
            SupervisorMsg::Stop => {
                state.stopping = true;
                for (_, (index, cell)) in state.running.drain() {
                    state.children[index].stats.set_state(ActorState::Stopped);
                    cell.stop(Some("engine shutting down".to_owned()));
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                reason.unwrap_or_else(|| "stopped unexpectedly".to_owned()),
            ),
            _ => return Ok(()),
        };
        let Some((index, _)) = state.running.remove(&cell.get_id()) else {
            return Ok(());
        };
        let stats = &state.children[index].stats;
        if state.stopping {
            stats.set_state(ActorState::Stopped);
            return Ok(());
        }
        let recent = stats.record_failure(reason.clone());
        let delay = backoff(recent);
        tracing::error!(actor = %stats.name, stage = stats.stage, reason = %reason, restarts_recent = recent,
            restart_in_ms = delay.as_millis() as u64, "actor failed; restarting");
        myself.send_after(delay, move || SupervisorMsg::Restart(index));
        Ok(())
    }
}

async fn start_child(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    index: usize,
) -> Result<(), SpawnErr> {
    let child = &state.children[index];
    let cell = (child.start)(myself.get_cell()).await?;
    child.stats.set_state(ActorState::Running);
    state.running.insert(cell.get_id(), (index, cell));
    Ok(())
}

/// 50 ms doubling per recent restart, at most 5 s.
fn backoff(recent_restarts: usize) -> Duration {
    let exponent = recent_restarts.saturating_sub(1).min(7) as u32;
    Duration::from_millis(50 * 2u64.pow(exponent)).min(Duration::from_secs(5))
}
