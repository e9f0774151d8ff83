//! Bounded mailboxes for ractor stages.
//!
//! ractor's own mailboxes are unbounded, so every stage sits behind a [`StagePool`]: a sender
//! must first take a credit (a semaphore permit) and the credit travels inside the message
//! until the receiving actor has finished with it. A stage therefore never holds more than
//! its capacity, a full stage makes its sender wait, and the wait propagates back to the
//! consumer, which stops taking deliveries: the broker is the only unbounded buffer.
//!
//! A pool has one actor per slot. Messages go to the least loaded slot; with a capacity equal
//! to the number of slots, a free slot always exists when a credit is granted, so no message
//! waits behind a busy actor while another idles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::{ActorRef, ActorStatus, MessagingErr};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Proof that a message holds one unit of its stage's capacity. Dropping it (when the actor
/// finishes, or when a crashed actor's mailbox is dropped) gives the unit back.
#[derive(Debug)]
pub struct Credit {
    _permit: OwnedSemaphorePermit,
    depth: Arc<AtomicUsize>,
}

impl Drop for Credit {
    fn drop(&mut self) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A message as a pool's actors receive it: the payload, the credit that bounds the mailbox,
/// and the span of the job, so the actor's logs carry the job's fields.
#[derive(Debug)]
pub struct Envelope<T> {
    pub payload: T,
    pub credit: Credit,
    pub span: tracing::Span,
}

/// The pool has been shut down; the payload comes back to the sender.
#[derive(Debug)]
pub struct StageClosed<T>(pub T);

struct Slot<T> {
    actor: RwLock<Option<ActorRef<Envelope<T>>>>,
    depth: Arc<AtomicUsize>,
}

/// The sending side of a stage: its actors and the credits that bound it.
pub struct StagePool<T> {
    name: &'static str,
    slots: Vec<Slot<T>>,
    credits: Arc<Semaphore>,
    capacity: usize,
}

/// How long a sender waits between attempts while the target actor is being restarted.
const RESTART_POLL: Duration = Duration::from_millis(20);

impl<T: Send + 'static> StagePool<T> {
    /// A pool of `slots` actors, each to be attached with [`StagePool::attach`].
    pub fn new(name: &'static str, slots: usize) -> Arc<Self> {
        let slots = slots.max(1);
        Arc::new(Self {
            name,
            slots: (0..slots)
                .map(|_| Slot {
                    actor: RwLock::new(None),
                    depth: Arc::new(AtomicUsize::new(0)),
                })
                .collect(),
            credits: Arc::new(Semaphore::new(slots)),
            capacity: slots,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Messages sent and not yet finished.
    pub fn depth(&self) -> usize {
        self.capacity - self.credits.available_permits()
    }

    /// Messages held by one slot's actor.
    pub fn slot_depth(&self, slot: usize) -> usize {
        self.slots
            .get(slot)
            .map_or(0, |s| s.depth.load(Ordering::Relaxed))
    }

    /// Installs (or, after a restart, replaces) the actor serving `slot`.
    pub fn attach(&self, slot: usize, actor: ActorRef<Envelope<T>>) {
        if let Some(s) = self.slots.get(slot) {
            *s.actor.write().unwrap_or_else(|p| p.into_inner()) = Some(actor);
        }
    }

    /// Marks `slot` as having no live actor, so senders wait for the restart.
    pub fn detach(&self, slot: usize) {
        if let Some(s) = self.slots.get(slot) {
            *s.actor.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// Refuses new messages and wakes every waiting sender.
    pub fn close(&self) {
        self.credits.close();
    }

    /// Waits for a credit, then hands the message to the least loaded live actor. While no
    /// actor is live (every slot restarting) the message waits, holding its credit.
    pub async fn send(&self, payload: T, span: tracing::Span) -> Result<(), StageClosed<T>> {
        let permit = match self.credits.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => return Err(StageClosed(payload)),
        };
        let mut index = self.claim_least_loaded();
        let depth = self.slots[index].depth.clone();
        let mut envelope = Envelope {
            payload,
            credit: Credit {
                _permit: permit,
                depth,
            },
            span,
        };
        loop {
            if self.credits.is_closed() {
                return Err(StageClosed(envelope.payload));
            }
            // Clone the actor out of the lock so the lock is never held across an await.
            let actor = self.slots[index]
                .actor
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(actor) = actor.filter(is_live) {
                match actor.cast(envelope) {
                    Ok(()) => return Ok(()),
                    // It died since it was looked at: the message comes back.
                    Err(MessagingErr::SendErr(back)) => envelope = back,
                    // Only `SendErr` carries the message back; ractor returns no other
                    // error from `cast`, so there is nothing left to retry with.
                    Err(_) => return Ok(()),
                }
            }
            // No live actor in this slot (restarting, or dead and its restart still backing
            // off): claim the least loaded slot again, and wait a while first unless a live
            // actor other than this one has it, so a pool of dead actors is not spun on.
            let again = self.claim_least_loaded();
            envelope.credit.depth = self.slots[again].depth.clone();
            self.slots[index].depth.fetch_sub(1, Ordering::AcqRel);
            if again == index || self.is_detached(again) {
                tokio::time::sleep(RESTART_POLL).await;
            }
            index = again;
        }
    }

    /// Picks the least loaded slot and counts the message in it, in one step: two senders
    /// that both saw a slot empty cannot both take it (the second sees the first's count and
    /// picks again), so no message waits behind another while a slot idles. A live actor
    /// goes before one that is restarting or dead, however loaded (a restart backs off up
    /// to seconds while its actor keeps failing; a render ends sooner).
    fn claim_least_loaded(&self) -> usize {
        loop {
            let (index, seen) = (0..self.slots.len())
                .map(|i| (i, self.slots[i].depth.load(Ordering::Acquire)))
                .min_by_key(|&(i, depth)| (self.is_detached(i), depth))
                .unwrap_or((0, 0));
            if self.slots[index]
                .depth
                .compare_exchange(seen, seen + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return index;
            }
        }
    }

    /// No live actor serves `slot`: none attached (restarting), or the attached one has
    /// died and its restart has not begun (the supervisor backs off first).
    fn is_detached(&self, slot: usize) -> bool {
        !self.slots[slot]
            .actor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(is_live)
    }

    /// Waits until every credit is back (the stage is idle) or `deadline` passes.
    pub async fn drained(&self, deadline: tokio::time::Instant) -> bool {
        while self.depth() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Whether an actor still takes messages: started, and not draining, stopping or stopped.
fn is_live<M>(actor: &ActorRef<M>) -> bool {
    actor.get_status() <= ActorStatus::Upgrading
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each payload it receives.
    struct Recorder(tokio::sync::mpsc::UnboundedSender<u32>);

    impl ractor::Actor for Recorder {
        type Msg = Envelope<u32>;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<Self::Msg>,
            _args: (),
        ) -> Result<(), ractor::ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<Self::Msg>,
            msg: Self::Msg,
            _state: &mut (),
        ) -> Result<(), ractor::ActorProcessingErr> {
            let _ = self.0.send(msg.payload);
            Ok(())
        }
    }

    /// A recorder that has stopped, as a crashed actor is before its restart begins.
    async fn dead_recorder(
        seen: &tokio::sync::mpsc::UnboundedSender<u32>,
    ) -> ActorRef<Envelope<u32>> {
        let (dead, join) = ractor::Actor::spawn(None, Recorder(seen.clone()), ())
            .await
            .expect("spawned");
        dead.stop(None);
        join.await.expect("stopped");
        dead
    }

    #[tokio::test]
    async fn a_dead_actor_whose_restart_has_not_begun_gets_no_message_while_a_live_one_idles() {
        let pool: Arc<StagePool<u32>> = StagePool::new("test", 2);
        let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
        // Slot 0: an actor that died; the supervisor has not detached it yet (back-off).
        pool.attach(0, dead_recorder(&seen).await);
        let (live, _) = ractor::Actor::spawn(None, Recorder(seen), ())
            .await
            .expect("spawned");
        pool.attach(1, live.clone());

        for n in 0..3 {
            let sent =
                tokio::time::timeout(Duration::from_secs(5), pool.send(n, tracing::Span::none()))
                    .await;
            assert!(
                matches!(sent, Ok(Ok(()))),
                "message {n} waited for the dead actor"
            );
            assert_eq!(received.recv().await, Some(n));
        }
        live.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_every_actor_dead_a_message_waits_for_a_restart() {
        let pool: Arc<StagePool<u32>> = StagePool::new("test", 2);
        let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
        for slot in 0..2 {
            pool.attach(slot, dead_recorder(&seen).await);
        }
        let sender = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.send(7, tracing::Span::none()).await.is_ok() }
        });
        // A sender spinning on the dead slots would hold a runtime thread; the timer and the
        // restart below still get the other.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!sender.is_finished(), "delivered to a dead actor");
        let (live, _) = ractor::Actor::spawn(None, Recorder(seen), ())
            .await
            .expect("spawned");
        pool.attach(1, live.clone());
        let delivered = tokio::time::timeout(Duration::from_secs(5), sender).await;
        assert!(matches!(delivered, Ok(Ok(true))), "{delivered:?}");
        assert_eq!(received.recv().await, Some(7));
        live.stop(None);
    }

    #[test]
    fn with_every_actor_dead_a_sender_waits_without_spinning() {
        let (done, outcome) = std::sync::mpsc::channel();
        // One thread for the runtime: a sender that never awaits would keep its timer from
        // ever firing. (Such a thread would spin on until the process ends.)
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let pool: Arc<StagePool<u32>> = StagePool::new("test", 2);
                let (seen, _received) = tokio::sync::mpsc::unbounded_channel();
                for slot in 0..2 {
                    pool.attach(slot, dead_recorder(&seen).await);
                }
                let sent = tokio::time::timeout(
                    Duration::from_millis(200),
                    pool.send(7, tracing::Span::none()),
                )
                .await;
                let _ = done.send(sent.is_err());
            });
        });
        let timed_out = outcome
            .recv_timeout(Duration::from_secs(10))
            .expect("the sender spun on the dead actors: its runtime's timer never fired");
        assert!(timed_out, "delivered to a dead actor");
    }

    #[test]
    fn each_claim_takes_the_emptiest_slot_and_counts_itself_there() {
        let pool: Arc<StagePool<()>> = StagePool::new("test", 3);
        let claimed: Vec<usize> = (0..3).map(|_| pool.claim_least_loaded()).collect();
        assert_eq!(
            claimed,
            vec![0, 1, 2],
            "a slot taken twice while another idled"
        );
        assert_eq!(
            (0..3).map(|i| pool.slot_depth(i)).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
    }
}
