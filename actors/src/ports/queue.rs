use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BackendError;
use crate::ids::{ImageId, Owner};

/// What travels through the queue: only the job's identity. The job's steps live in the
/// metadata store, so a message can never carry stale or forged instructions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub image_id: ImageId,
    pub owner: Owner,
    /// The request id of the upload, carried so one upload can be followed into the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl JobMessage {
    /// The broker message id: stable per image, so duplicates are recognisable.
    pub fn message_id(&self) -> String {
        self.image_id.to_string()
    }
}

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Done (or deliberately dropped): remove it from the queue.
    Ack,
    /// Not done: put it back for another consumer.
    Requeue,
    /// Poison: move it to the dead-letter queue.
    DeadLetter,
}

/// The queue-specific half of a delivery.
#[async_trait]
pub trait Settle: Send + Sync {
    async fn settle(self: Box<Self>, how: Settlement) -> Result<(), BackendError>;

    /// Called when a delivery is dropped unsettled (a stage crashed while holding it): hand
    /// the message back without waiting. Must not block.
    fn abandon(self: Box<Self>);
}

/// One job taken from the queue. Dropping it unsettled hands it back to the queue, so a
/// crashing stage never loses the job it held.
pub struct Delivery {
    pub job: JobMessage,
    pub redelivered: bool,
    settle: Option<Box<dyn Settle>>,
}

impl Delivery {
    pub fn new(job: JobMessage, redelivered: bool, settle: Box<dyn Settle>) -> Self {
        Self {
            job,
            redelivered,
            settle: Some(settle),
        }
    }

    pub async fn settle(mut self, how: Settlement) -> Result<(), BackendError> {
        match self.settle.take() {
            Some(settle) => settle.settle(how).await,
            None => Ok(()),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(settle) = self.settle.take() {
            tracing::warn!(image_id = %self.job.image_id, "delivery dropped unsettled; handing it back");
            settle.abandon();
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("job", &self.job)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

/// A consumer's stream of deliveries.
#[async_trait]
pub trait JobStream: Send {
    /// The next delivery; `None` when the stream has ended (the consumer then opens a new
    /// one). Malformed messages are dead-lettered by the adapter, never yielded.
    async fn next(&mut self) -> Option<Result<Delivery, BackendError>>;

    /// Stops new deliveries while those already taken can still be settled: at shutdown,
    /// the jobs in flight finish and are acknowledged (or dead-lettered) on the same
    /// consumer, instead of going back to the broker the moment it stops taking. Dropping
    /// the stream later hands back whatever is still unsettled. By default nothing: a
    /// stream that is not polled takes nothing.
    async fn stop_taking(&mut self) {}
}

/// The job queue (`image_processing_queue`).
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Publishes durably: returns once the queue has taken responsibility for the message.
    async fn publish(&self, job: &JobMessage) -> Result<(), BackendError>;

    /// Opens a consumer holding at most `prefetch` unsettled deliveries.
    async fn consume(&self, prefetch: u16) -> Result<Box<dyn JobStream>, BackendError>;

    /// Whether published messages survive a restart of this process. When not, the engine
    /// re-dispatches unfinished jobs from the metadata store at start.
    fn is_durable(&self) -> bool;

    async fn ping(&self) -> Result<(), BackendError>;

    fn describe(&self) -> String;
}
