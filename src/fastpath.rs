//! Gateway-side fast paths that live in Redis in production and in process memory in
//! standalone mode: the status cache, the per-owner upload rate limit, and the feed of
//! status changes that long polls and event streams wait on.
//!
//! Neither is a source of truth. A cache outage only slows reads (the gateway falls back to
//! the metadata store); a rate-limiter outage lets uploads through and is logged, because
//! refusing every upload while Redis is down would turn a cache failure into an outage.

use std::time::Duration;

use async_trait::async_trait;
use pixmill_actors::events::StatusChanged;
use pixmill_actors::ports::BackendError;
use pixmill_actors::{ImageId, ImageRecord, Owner};

/// The answer of a rate-limit check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Over the limit; the client may try again after this long.
    Limited {
        retry_after: Duration,
    },
}

/// A per-owner limit on uploads, atomic across gateway processes.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one upload for `owner` and says whether it is allowed.
    async fn check(&self, owner: &Owner) -> Result<RateDecision, BackendError>;

    fn describe(&self) -> String;
}

/// How long a delete's mark stays in the status cache: well past the moment a read that
/// fetched the row just before the delete fills the cache (the metadata store's timeouts
/// bound that read: some 17 s on PostgreSQL), and short, so a mass delete does not crowd
/// the documents out of a bounded cache.
pub const DELETE_MARK_TTL: Duration = Duration::from_secs(90);

/// How long a delete's mark lives in a cache whose documents live for `ttl`: never longer
/// than a document would.
pub fn delete_mark_ttl(ttl: Duration) -> Duration {
    ttl.min(DELETE_MARK_TTL)
}

/// What the status cache holds for an image.
#[derive(Clone, Debug, PartialEq)]
pub enum Cached {
    /// Nothing: read the metadata store.
    Unknown,
    /// Its final document, which never changes again (but for a delete).
    Final(Box<ImageRecord>),
    /// It was deleted.
    Deleted,
}

/// A cache of status documents, keyed by image id: filled when the gateway reads a final
/// (`COMPLETED`, `FAILED`) document from the store, marked deleted when the image is.
/// Entries carry the owner, so the caller still checks ownership on a hit. A document lives
/// for the cache's TTL, a delete's mark for [`DELETE_MARK_TTL`] at most.
#[async_trait]
pub trait StatusCache: Send + Sync + 'static {
    async fn get(&self, id: ImageId) -> Result<Cached, BackendError>;

    /// Stores a final document, unless the cache holds an entry for the image already. A
    /// final document never changes, so the one there is as good; and when the entry is
    /// the mark of a delete, a read that fetched the row just before the delete cannot put
    /// the image back.
    async fn put(&self, record: &ImageRecord) -> Result<(), BackendError>;

    /// Replaces whatever is cached for the image with the mark that it was deleted, kept
    /// for [`DELETE_MARK_TTL`] (or the cache's TTL, if shorter).
    async fn mark_deleted(&self, id: ImageId) -> Result<(), BackendError>;

    async fn ping(&self) -> Result<(), BackendError>;

    fn describe(&self) -> String;
}

/// Status changes published by the engine (in this process or, through Redis, in any
/// worker), for clients waiting on an image. Best effort: a listener that falls behind gets
/// `Lagged` and a lost event is simply never seen, so waiters also re-read the store.
pub trait StatusFeed: Send + Sync + 'static {
    /// A receiver of every change from now on.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StatusChanged>;
}
