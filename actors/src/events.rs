//! Status-change notifications, for clients that wait for a job instead of polling.

use async_trait::async_trait;

use crate::ids::{ImageId, Owner};
use crate::record::Status;

/// A job's status changed. The owner travels along so a listener can read the record
/// (owner-scoped, like every read) without a second lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChanged {
    pub image_id: ImageId,
    pub owner: Owner,
    pub status: Status,
}

/// Carries status changes from workers to gateways: in process in standalone mode, over
/// Redis pub/sub in production. Delivery is best effort; the metadata store stays the truth,
/// so a lost event only means a waiting client re-reads the status a little later.
#[async_trait]
pub trait StatusEvents: Send + Sync + 'static {
    async fn publish(&self, event: StatusChanged);
}

/// For processes nobody listens to.
pub struct NoEvents;

#[async_trait]
impl StatusEvents for NoEvents {
    async fn publish(&self, _event: StatusChanged) {}
}
