//! The status cache in Redis: one JSON document per image, stored when a gateway reads a
//! final status from the metadata store, or the mark of its delete; each expires after a
//! TTL.

use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::redis;
use pixmill_actors::ports::BackendError;
use pixmill_actors::{ImageId, ImageRecord};

use super::RedisConnection;
use crate::fastpath::{delete_mark_ttl, Cached, StatusCache};

/// The value that marks a deleted image (a document is a JSON object, never this).
const DELETED: &str = "deleted";

/// A [`StatusCache`] in Redis, keyed `{prefix}status:{image id}`.
///
/// An entry that no longer decodes (written by another version) counts as a miss and is
/// left to expire; the caller then reads the metadata store.
pub struct RedisStatusCache {
    conn: RedisConnection,
    ttl: Duration,
}

impl RedisStatusCache {
    /// A cache whose entries live for `ttl` (at least 1 ms).
    pub fn new(conn: RedisConnection, ttl: Duration) -> Self {
        Self {
            conn,
            ttl: ttl.max(Duration::from_millis(1)),
        }
    }

    fn key(&self, id: ImageId) -> String {
        self.conn.key(&["status", &id.to_string()])
    }
}

#[async_trait]
impl StatusCache for RedisStatusCache {
    async fn get(&self, id: ImageId) -> Result<Cached, BackendError> {
        let mut command = redis::cmd("GET");
        command.arg(self.key(id));
        let Some(text): Option<String> = self.conn.query(&command).await? else {
            return Ok(Cached::Unknown);
        };
        if text == DELETED {
            return Ok(Cached::Deleted);
        }
        match serde_json::from_str(&text) {
            Ok(record) => Ok(Cached::Final(Box::new(record))),
            Err(error) => {
                // Removed, so the next read's fill (which never replaces an entry) can
                // store the document in this version's form.
                tracing::warn!(image_id = %id, %error, "undecodable status cache entry; removing it");
                let mut command = redis::cmd("DEL");
                command.arg(self.key(id));
                self.conn.query::<()>(&command).await?;
                Ok(Cached::Unknown)
            }
        }
    }

    async fn put(&self, record: &ImageRecord) -> Result<(), BackendError> {
        let text =
            serde_json::to_string(record).map_err(|e| BackendError::internal(super::BACKEND, e))?;
        // NX: an entry there already (the same document, or the mark of a delete) stays.
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(record.id))
            .arg(text)
            .arg("PX")
            .arg(millis(self.ttl))
            .arg("NX");
        self.conn.query::<()>(&command).await
    }

    async fn mark_deleted(&self, id: ImageId) -> Result<(), BackendError> {
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(id))
            .arg(DELETED)
            .arg("PX")
            .arg(millis(delete_mark_ttl(self.ttl)));
        self.conn.query::<()>(&command).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.conn.ping().await
    }

    fn describe(&self) -> String {
        format!("{} status cache for {:?}", self.conn.description, self.ttl)
    }
}

/// A time to live in Redis's milliseconds.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}
