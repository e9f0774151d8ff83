//! The engine's view of the outside world. Each port is a trait with an embedded
//! implementation (standalone mode) and a production one (PostgreSQL, RabbitMQ, S3), both in
//! the `pixmill` crate; the engine and the HTTP API only ever see these traits.

mod error;
mod metadata;
mod objects;
mod queue;

pub use error::{BackendError, ErrorKind};
pub use metadata::{Claim, ClaimedJob, Completion, DueWebhook, MetadataStore};
pub use objects::{
    aligned_vec, Bucket, InvalidObjectKey, ListedObject, ObjectKey, ObjectStore, ObjectStream,
    BODY_ALIGN,
};
pub use queue::{Delivery, JobMessage, JobQueue, JobStream, Settle, Settlement};
