//! Adapters behind the engine's ports. Each backend is picked by the scheme of its URL in the
//! configuration, so any mix works:
//!
//! | port | embedded (standalone) | production |
//! |---|---|---|
//! | `MetadataStore` | `sqlite` (file in the data dir) | `postgres` |
//! | `ObjectStore` | `fs_objects` (a folder per bucket) | `s3` (MinIO or any S3 store) |
//! | `JobQueue` | `memory_queue` (in process) | `rabbitmq` |
//! | `StatusCache`, `RateLimiter` | `memory_fastpath` | `redis` |
//! | `StatusEvents` (engine), `StatusFeed` (gateway) | `memory_events` | `redis_events` |

pub mod fs_objects;
pub mod memory_events;
pub mod memory_fastpath;
pub mod memory_queue;
mod metadata_rules;
pub mod postgres;
pub mod rabbitmq;
pub mod redis;
pub mod redis_events;
pub mod s3;
pub mod sqlite;
