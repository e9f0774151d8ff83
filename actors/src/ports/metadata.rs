use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{BackendError, JobMessage};
use crate::ids::{ImageId, Owner};
use crate::record::{ImageRecord, JobError, ListQuery, NewImage, Page, StoredVariant};

/// A job a worker now holds: the attempt number guards every later write.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub attempt: u32,
    pub record: ImageRecord,
}

/// What happened when a worker tried to take a job.
#[derive(Clone, Debug)]
pub enum Claim {
    /// The worker holds the lease for this attempt.
    Claimed(ClaimedJob),
    /// The job is already `COMPLETED` or `FAILED`; the delivery is a duplicate.
    Finished,
    /// Another worker holds a live lease; if it dies, the lease expires and the relay
    /// dispatches the job again.
    LeasedElsewhere,
    /// The job failed an attempt and its retry is not due yet: the delivery is a duplicate
    /// of an earlier publish (several relays, a redelivery). The relay publishes the job
    /// again when the retry falls due, so taking it now would only spend an attempt early.
    NotDue,
    /// The image was deleted.
    Missing,
    /// The job has used all its attempts; the store has marked it `FAILED`.
    Exhausted(ImageRecord),
}

/// The result of a finished job.
#[derive(Clone, Debug)]
pub struct Completion {
    pub variants: Vec<StoredVariant>,
}

/// A webhook a sender took from the outbox (see [`MetadataStore::take_due_webhooks`]).
#[derive(Clone, Debug)]
pub struct DueWebhook {
    /// The image as it is now: final, with a `callback_url`.
    pub record: ImageRecord,
    /// Which delivery attempt this is, counting from 1 (attempts cut short by a sender
    /// that died count too).
    pub attempt: u32,
    /// The hold this sender placed; [`MetadataStore::settle_webhook`] changes the row only
    /// while the hold is still this one.
    pub held_until: DateTime<Utc>,
}

/// The durable record of every image: the source of truth for status, ownership and which
/// jobs still need to be (re)published.
///
/// Every owner-facing call is scoped to the owner, so another owner's image looks exactly
/// like a missing one. Worker-facing writes are guarded by the attempt number: a write from
/// a stale attempt (a worker whose lease expired) changes nothing and returns `false`.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Records a new upload. When the owner already used `idempotency_key`, nothing is
    /// written and the existing record is returned as `Err(existing)` inside `Ok`.
    async fn insert(
        &self,
        image: &NewImage,
    ) -> Result<Result<ImageRecord, ImageRecord>, BackendError>;

    async fn get(&self, owner: &Owner, id: ImageId) -> Result<Option<ImageRecord>, BackendError>;

    async fn find_by_idempotency_key(
        &self,
        owner: &Owner,
        key: &str,
    ) -> Result<Option<ImageRecord>, BackendError>;

    async fn list(&self, owner: &Owner, query: &ListQuery) -> Result<Page, BackendError>;

    /// Removes the record and returns it, so the caller can remove its objects.
    async fn delete(&self, owner: &Owner, id: ImageId)
        -> Result<Option<ImageRecord>, BackendError>;

    /// Takes the job for one attempt: `PROCESSING`, attempts + 1, lease until now + `lease`.
    /// A job that already used `max_attempts` is marked `FAILED` instead.
    async fn claim(
        &self,
        id: ImageId,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Claim, BackendError>;

    /// Extends the lease of `attempt` to now + `lease`, while the job is still `PROCESSING`
    /// under that attempt and its lease has not been taken back. `false` otherwise: the
    /// attempt already recorded its outcome (completed, failed, handed back for a retry),
    /// the lease ran out and the relay took it back, another attempt claimed the job, or
    /// the image was deleted.
    async fn renew_lease(
        &self,
        id: ImageId,
        attempt: u32,
        lease: Duration,
    ) -> Result<bool, BackendError>;

    async fn complete(
        &self,
        id: ImageId,
        attempt: u32,
        done: &Completion,
    ) -> Result<bool, BackendError>;

    async fn fail(&self, id: ImageId, attempt: u32, error: &JobError)
        -> Result<bool, BackendError>;

    /// Hands the job back for another attempt at `retry_at`: `PENDING`, with the reason kept
    /// in `error`, and due for dispatch then.
    async fn retry_later(
        &self,
        id: ImageId,
        attempt: u32,
        error: &JobError,
        retry_at: DateTime<Utc>,
    ) -> Result<bool, BackendError>;

    /// The queue has confirmed the publish made for the dispatch mark due at `due`: clear
    /// that mark. A mark set since (a retry, an expired lease) is a different one and stays,
    /// even when it falls due earlier than `due`, so a confirm that arrives late never
    /// cancels a retry.
    async fn mark_dispatched(&self, id: ImageId, due: DateTime<Utc>) -> Result<(), BackendError>;

    /// Jobs due for (re)publishing: dispatch marks that fell due, and `PROCESSING` jobs whose
    /// lease expired (their worker died). Returns each with the due time to confirm.
    async fn due_dispatches(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(JobMessage, DateTime<Utc>)>, BackendError>;

    /// Marks every unfinished job due now. Used at start when the queue keeps nothing across
    /// restarts (standalone mode), so unfinished work is enqueued again.
    async fn redispatch_unfinished(&self, now: DateTime<Utc>) -> Result<u64, BackendError>;

    /// The webhook outbox: a job that ends (`complete`, `fail`, or exhausted in `claim`)
    /// with a `callback_url` is marked due for its webhook in the same write, so a webhook
    /// is never lost between recording the status and sending it. This takes up to `limit`
    /// marks that fell due by `now` and holds each until now + `hold` (attempt + 1): no
    /// other sender takes them meanwhile, and one that dies lets them fall due again.
    async fn take_due_webhooks(
        &self,
        now: DateTime<Utc>,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<DueWebhook>, BackendError>;

    /// Ends the hold `held_until` of a taken webhook: `next` is when to try again, `None`
    /// when it is settled for good (delivered, refused, or given up). A hold that has
    /// expired and been taken again is someone else's: nothing changes and this returns
    /// `false`.
    async fn settle_webhook(
        &self,
        id: ImageId,
        held_until: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, BackendError>;

    /// Which of `ids` have a row, whoever owns them; for the orphan sweeper, which removes
    /// stored originals that no row refers to.
    async fn existing(&self, ids: &[ImageId]) -> Result<Vec<ImageId>, BackendError>;

    async fn ping(&self) -> Result<(), BackendError>;

    fn describe(&self) -> String;
}
