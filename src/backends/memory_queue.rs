//! The job queue of standalone mode: an in-process broker with the settlement semantics of
//! the RabbitMQ adapter, so the engine behaves the same on both.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use pixmill_actors::ports::{
    BackendError, Delivery, JobMessage, JobQueue, JobStream, Settle, Settlement,
};
use tokio::sync::Notify;

/// An in-process queue.
///
/// Its ready list is the one unbounded buffer of standalone mode: publishing never waits, so
/// a burst of uploads piles up here (one small [`JobMessage`] each) instead of pushing back on
/// the HTTP API. Consumers are bounded by their prefetch.
///
/// Nothing survives a restart ([`JobQueue::is_durable`] is `false`): the engine re-dispatches
/// unfinished jobs from the metadata store at start.
///
/// Semantics, as with RabbitMQ: a consumer holds at most `prefetch` unsettled deliveries
/// (`0` means no limit); `Requeue` puts the message back at the front, flagged redelivered;
/// `DeadLetter` moves it to [`MemoryQueue::dead_letters`]; a delivery dropped unsettled, and
/// every unsettled delivery of a dropped consumer, goes back to the front flagged
/// redelivered. Settling a delivery whose consumer was dropped is a no-op: the message was
/// already handed back.
#[derive(Clone, Default)]
pub struct MemoryQueue {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken on every publish, settlement and consumer drop; waiting consumers re-check the
    /// state, so no wake-up is lost and none is needed per message.
    changed: Notify,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Message>,
    /// Deliveries handed out and not yet settled, by delivery id.
    unsettled: HashMap<u64, Unsettled>,
    dead: Vec<JobMessage>,
    next_id: u64,
}

struct Message {
    job: JobMessage,
    redelivered: bool,
}

struct Unsettled {
    consumer: u64,
    job: JobMessage,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The messages dead-lettered so far, oldest first.
    pub fn dead_letters(&self) -> Vec<JobMessage> {
        self.shared.lock().dead.clone()
    }
}

impl Shared {
    /// The lock is never held across an await, and no code under it can panic, so a
    /// poisoned lock still holds consistent state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Settles one delivery; unknown ids (their consumer was dropped) are ignored.
    fn settle(&self, delivery: u64, how: Settlement) {
        let mut state = self.lock();
        let Some(held) = state.unsettled.remove(&delivery) else {
            return;
        };
        match how {
            Settlement::Ack => {}
            Settlement::Requeue => state.ready.push_front(Message {
                job: held.job,
                redelivered: true,
            }),
            Settlement::DeadLetter => state.dead.push(held.job),
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn unsettled_by(&self, consumer: u64) -> usize {
        self.unsettled
            .values()
            .filter(|u| u.consumer == consumer)
            .count()
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn publish(&self, job: &JobMessage) -> Result<(), BackendError> {
        self.shared.lock().ready.push_back(Message {
            job: job.clone(),
            redelivered: false,
        });
        self.shared.changed.notify_waiters();
        Ok(())
    }

    async fn consume(&self, prefetch: u16) -> Result<Box<dyn JobStream>, BackendError> {
        let id = self.shared.lock().next_id();
        Ok(Box::new(MemoryStream {
            shared: Arc::clone(&self.shared),
            id,
            prefetch: usize::from(prefetch),
        }))
    }

    fn is_durable(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn describe(&self) -> String {
        "in-process queue (not durable)".to_owned()
    }
}

/// One consumer. Dropping it hands its unsettled deliveries back to the queue.
struct MemoryStream {
    shared: Arc<Shared>,
    id: u64,
    prefetch: usize,
}

impl MemoryStream {
    /// Takes the next message if this consumer is under its prefetch.
    fn try_take(&self) -> Option<Delivery> {
        let mut state = self.shared.lock();
        if self.prefetch > 0 && state.unsettled_by(self.id) >= self.prefetch {
            return None;
        }
        let message = state.ready.pop_front()?;
        let delivery = state.next_id();
        state.unsettled.insert(
            delivery,
            Unsettled {
                consumer: self.id,
                job: message.job.clone(),
            },
        );
        let settle = MemorySettle {
            shared: Arc::clone(&self.shared),
            delivery,
        };
        Some(Delivery::new(
            message.job,
            message.redelivered,
            Box::new(settle),
        ))
    }
}

#[async_trait]
impl JobStream for MemoryStream {
    async fn next(&mut self) -> Option<Result<Delivery, BackendError>> {
        loop {
            // Register for the wake-up before looking, so a publish between the look and the
            // wait is not missed.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            if let Some(delivery) = self.try_take() {
                return Some(Ok(delivery));
            }
            changed.await;
        }
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let mut held: Vec<(u64, JobMessage)> = state
            .unsettled
            .iter()
            .filter(|(_, u)| u.consumer == self.id)
            .map(|(id, u)| (*id, u.job.clone()))
            .collect();

        // Oldest delivery ends up first, as the broker would hand them back.
        held.sort_unstable_by_key(|(id, _)| *id);
        for (id, job) in held.into_iter().rev() {
            state.unsettled.remove(&id);
            state.ready.push_front(Message {
                job,
                redelivered: true,
            });
        }
        drop(state);
        self.shared.changed.notify_waiters();
    }
}

struct MemorySettle {
    shared: Arc<Shared>,
    delivery: u64,
}

#[async_trait]
impl Settle for MemorySettle {
    async fn settle(self: Box<Self>, how: Settlement) -> Result<(), BackendError> {
        self.shared.settle(self.delivery, how);
        Ok(())
    }

    fn abandon(self: Box<Self>) {
        self.shared.settle(self.delivery, Settlement::Requeue);
    }
}
