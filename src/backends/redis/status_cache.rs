//! The status cache in Redis: one JSON document per image, stored when a gateway reads a
//! final status from the metadata store and expiring after a TTL.

use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::redis;
use pixmill_actors::ports::BackendError;
use pixmill_actors::{ImageId, ImageRecord};

use super::RedisConnection;
use crate::fastpath::StatusCache;

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
    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, BackendError> {
        let mut command = redis::cmd("GET");
        command.arg(self.key(id));
        let Some(text): Option<String> = self.conn.query(&command).await? else {
            return Ok(None);
        };
        match serde_json::from_str(&text) {
            Ok(record) => Ok(Some(record)),
            Err(error) => {
                tracing::warn!(image_id = %id, %error, "undecodable status cache entry");
                Ok(None)
            }
        }
    }

    async fn put(&self, record: &ImageRecord) -> Result<(), BackendError> {
        let text =
            serde_json::to_string(record).map_err(|e| BackendError::internal(super::BACKEND, e))?;
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(record.id))
            .arg(text)
            .arg("PX")
            .arg(ttl_ms);
        self.conn.query::<()>(&command).await
    }

    async fn invalidate(&self, id: ImageId) -> Result<(), BackendError> {
        let mut command = redis::cmd("DEL");
        command.arg(self.key(id));
        self.conn.query::<()>(&command).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.conn.ping().await
    }

    fn describe(&self) -> String {
        format!("{} status cache for {:?}", self.conn.description, self.ttl)
    }
}
