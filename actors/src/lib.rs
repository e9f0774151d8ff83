//! pixmill's processing engine.
//!
//! A job flows through four supervised stages, each a pool of ractor actors behind a bounded
//! mailbox, so a slow stage pushes back on the one before it and, in the end, on the broker:
//!
//! ```text
//!  JobQueue ──► consumer ──► downloader ──► transformer ──► persister ──► ack
//!   (port)        │ claim lease   │ fetch original │ CPU pool     │ put result,
//!                 │ in metadata   │ from raw-images│ (one per     │ final status,
//!                 │ store         │                │  core)       │ then settle
//! ```
//!
//! - [`ids`], [`format`], [`pipeline`], [`record`]: the data model: validated ids, image
//!   formats, the steps a user asked for, and the metadata row both stores keep.
//! - [`ports`]: the traits the engine needs from the outside world (object storage, the
//!   metadata store, the job queue), with one error type that says whether to retry.
//! - [`transform`]: decoding with limits, the image operations and encoding; pure CPU work.
//! - [`mailbox`]: credits that bound every stage's mailbox.
//! - [`stages`]: the actors, and [`supervisor`] which restarts them and counts restarts;
//!   [`cpu_pool`]: the threads the transformers render on, at background priority.
//! - [`lease`]: renews a claimed job's lease while a worker holds it.
//! - [`relay`]: publishes jobs that are due (new uploads the gateway could not confirm,
//!   retries whose back-off ran out, expired leases).
//! - [`sweeper`]: removes stored originals that no image refers to (uploads that died
//!   between storing the original and committing the row).
//! - [`events`], [`metrics`]: what the engine tells the outside world as it works (status
//!   changes for waiting clients, timings and outcomes for operators), through traits.
//! - [`engine`]: starts and stops all of the above from an [`EngineConfig`].
//! - [`allocator`]: glibc's malloc set up for rendering, by every binary that renders.

pub mod format;
pub mod ids;
pub mod pipeline;
pub mod ports;
pub mod record;
pub mod transform;

pub use format::ImageFormat;
pub use ids::{ImageId, Owner, VariantName};
pub use pipeline::{JobSpec, OutputSpec, Pipeline, Rendition, Step};
pub use record::{ImageRecord, JobError, Status, StoredImage, StoredVariant};

pub mod allocator;
pub mod config;
pub mod cpu_pool;
pub mod engine;
pub mod events;
pub mod faults;
pub mod lease;
pub mod mailbox;
pub mod metrics;
pub mod relay;
pub mod stages;
pub mod stats;
pub mod supervisor;
pub mod sweeper;

pub use config::{EngineConfig, RetryPolicy};
pub use engine::Engine;
pub use stages::Ports;
