//! The supervisor: starts every stage actor linked to itself, restarts any that panics or
//! stops unexpectedly, and counts the restarts.
//!
//! A crashing actor loses nothing: the credit it held returns to its pool, and the delivery
//! it held is handed back to the queue when dropped (or, for a panic on the CPU pool outside
//! a render's own guard, released for a retry by the transformer first; a panic inside a
//! render fails its job instead, see `transform::panics`). Restarts back off (50 ms
//! doubling to 5 s while the same child keeps failing), so a poisoned dependency cannot
//! spin the CPU.
//!
//! Stopping the supervisor stops its children and waits for them ([`STOP_WAIT`] at most), so
//! an actor finishes the message in hand (a result being recorded, a claim being taken)
//! before it goes; ractor kills the children still running after that.

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
}

/// How long a stopping supervisor waits for its children to finish the message in hand.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

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
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stopping = true;
        for (_, (index, _)) in state.running.drain() {
            state.children[index].stats.set_state(ActorState::Stopped);
        }
        // Not `stop` alone: ractor kills every child still running once this returns, in
        // the middle of whatever it was awaiting.
        myself
            .stop_children_and_wait(Some("engine shutting down".to_owned()), Some(STOP_WAIT))
            .await;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    use super::*;

    /// Takes a while over each message, then records that it finished it.
    struct Slow {
        finished: Arc<AtomicBool>,
        started: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    }

    impl Actor for Slow {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<()>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<()>,
            _msg: (),
            _state: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            if let Some(started) = self.started.lock().ok().and_then(|mut s| s.take()) {
                let _ = started.send(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.finished.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_stopping_supervisor_lets_each_child_finish_the_message_in_hand() {
        let finished = Arc::new(AtomicBool::new(false));
        let (started, has_started) = oneshot::channel();
        let slow = Arc::new(std::sync::Mutex::new(Some(Slow {
            finished: Arc::clone(&finished),
            started: std::sync::Mutex::new(Some(started)),
        })));
        let (child_tx, child_rx) = oneshot::channel();
        let child_tx = Arc::new(std::sync::Mutex::new(Some(child_tx)));
        let start: StartFn = Arc::new(move |supervisor: ActorCell| {
            let actor = slow.lock().ok().and_then(|mut s| s.take());
            let child_tx = child_tx.lock().ok().and_then(|mut t| t.take());
            async move {
                let actor = actor.expect("started once");
                let (child, _) = Actor::spawn_linked(None, actor, (), supervisor).await?;
                if let Some(tx) = child_tx {
                    let _ = tx.send(child.clone());
                }
                Ok(child.get_cell())
            }
            .boxed()
        });
        let spec = ChildSpec {
            stats: ActorStats::new("slow-0".to_owned(), "slow"),
            start,
            depth: Arc::new(|| (0, 1)),
        };
        let (supervisor, join) = Actor::spawn(None, Supervisor, vec![spec])
            .await
            .expect("supervisor starts");
        let child: ActorRef<()> = child_rx.await.expect("the child started");
        child.cast(()).expect("the child takes a message");
        has_started.await.expect("the child began its message");

        supervisor.stop(None);
        join.await.expect("the supervisor stops");
        assert!(
            finished.load(Ordering::SeqCst),
            "the child was killed half way through its message"
        );
    }
}
