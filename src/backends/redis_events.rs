//! Status changes across processes (production): workers `PUBLISH` each change on one Redis
//! channel, `{prefix}status-events`; every gateway keeps one subscription and fans the
//! messages out to its waiting clients in process.
//!
//! Pub/sub is fire-and-forget: a message published while a gateway is reconnecting is lost
//! for it. That only delays its waiting clients until their next re-read of the store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::redis::{self, Client};
use futures_util::StreamExt;
use pixmill_actors::events::{StatusChanged, StatusEvents};
use pixmill_actors::ports::{BackendError, ErrorKind};
use pixmill_actors::{ImageId, Owner, Status};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::redis::RedisConnection;
use crate::fastpath::StatusFeed;

/// Events kept for a slow waiter before it is told it lagged.
const BUFFER: usize = 1024;
/// Longest wait to (re)open the subscription.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between attempts to reopen it.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an open subscription is checked with a `PING`. The subscription is idle most
/// of the time, and a connection a firewall or NAT dropped silently would otherwise never
/// end: the feed would be dead until a restart, with waiters left to their re-reads.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// The channel every process of one deployment (one key prefix) shares.
pub fn channel(key_prefix: &str) -> String {
    format!("{key_prefix}status-events")
}

/// A status change as it travels through Redis.
#[derive(Serialize, Deserialize)]
struct Wire {
    image_id: ImageId,
    owner: Owner,
    status: Status,
}

/// The publishing side, used by the engine.
pub struct RedisEvents {
    conn: RedisConnection,
    channel: String,
}

impl RedisEvents {
    pub fn new(conn: RedisConnection, key_prefix: &str) -> Self {
        Self {
            conn,
            channel: channel(key_prefix),
        }
    }
}

#[async_trait]
impl StatusEvents for RedisEvents {
    async fn publish(&self, event: StatusChanged) {
        let wire = Wire {
            image_id: event.image_id,
            owner: event.owner,
            status: event.status,
        };
        let Ok(text) = serde_json::to_string(&wire) else {
            return;
        };
        let mut command = redis::cmd("PUBLISH");
        command.arg(&self.channel).arg(text);
        // Bounded by the connection's timeout; a failure costs waiters one re-read interval.
        if let Err(error) = self.conn.query::<i64>(&command).await {
            tracing::warn!(error = %error, image_id = %event.image_id, "could not publish a status change");
        }
    }
}

/// The subscribing side, used by a gateway: one background task holds the subscription,
/// reopening it with back-off when it drops, until the feed is dropped.
pub struct RedisEventFeed {
    sender: broadcast::Sender<StatusChanged>,
    _stop: DropGuard,
}

impl RedisEventFeed {
    /// Tries to subscribe once before returning; when Redis does not answer, the feed starts
    /// anyway and keeps trying in the background (waiters re-read the store meanwhile), so
    /// a Redis outage never keeps a gateway from starting. Fails only on a malformed URL.
    pub async fn start(url: &str, key_prefix: &str) -> Result<Arc<Self>, BackendError> {
        let client = Client::open(url).map_err(|e| {
            BackendError::new("redis", ErrorKind::Rejected, "invalid Redis URL").with_source(e)
        })?;
        let channel = channel(key_prefix);
        let first = match subscribe(&client, &channel).await {
            Ok(pubsub) => Some(pubsub),
            Err(error) => {
                tracing::warn!(error = %error, channel = %channel, "could not subscribe to status events; retrying in the background");
                None
            }
        };
        let sender = broadcast::channel(BUFFER).0;
        let stop = CancellationToken::new();
        tokio::spawn(forward(
            client,
            channel,
            first,
            sender.clone(),
            stop.clone(),
        ));
        Ok(Arc::new(Self {
            sender,
            _stop: stop.drop_guard(),
        }))
    }
}

impl StatusFeed for RedisEventFeed {
    fn subscribe(&self) -> broadcast::Receiver<StatusChanged> {
        self.sender.subscribe()
    }
}

async fn subscribe(client: &Client, channel: &str) -> Result<redis::aio::PubSub, BackendError> {
    let open = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(error)) => Err(BackendError::unavailable("redis", error)),
        Err(_) => Err(BackendError::timeout(
            "redis",
            "subscribing to status events timed out",
        )),
    }
}

async fn forward(
    client: Client,
    channel: String,
    first: Option<redis::aio::PubSub>,
    sender: broadcast::Sender<StatusChanged>,
    stop: CancellationToken,
) {
    let mut pubsub = first;
    let mut failures: u32 = 0;
    while !stop.is_cancelled() {
        let Some(open) = pubsub.take() else {
            match subscribe(&client, &channel).await {
                Ok(open) => {
                    tracing::info!(channel = %channel, "status event subscription reopened");
                    failures = 0;
                    pubsub = Some(open);
                }
                Err(error) => {
                    failures += 1;
                    let delay = Duration::from_millis(100u64 << failures.min(6)).min(MAX_BACKOFF);
                    // Once, then about once a minute at the back-off's ceiling: an outage
                    // of Redis must not flood the log.
                    if failures == 1 || failures.is_multiple_of(12) {
                        tracing::warn!(error = %error, failures, retry_in_ms = delay.as_millis() as u64, "could not subscribe to status events");
                    } else {
                        tracing::debug!(error = %error, failures, retry_in_ms = delay.as_millis() as u64, "could not subscribe to status events");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
            continue;
        };
        let (mut sink, mut messages) = open.split();
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = check.tick() => {
                    match tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(error)) => tracing::warn!(error = %error, "the status event subscription failed its check"),
                        Err(_) => tracing::warn!("the status event subscription did not answer its check"),
                    }
                    break;
                }
                _ = stop.cancelled() => return,
            };
            let Some(message) = message else { break };
            match serde_json::from_slice::<Wire>(message.get_payload_bytes()) {
                // No waiter listening is not an error.
                Ok(wire) => drop(sender.send(StatusChanged {
                    image_id: wire.image_id,
                    owner: wire.owner,
                    status: wire.status,
                })),
                Err(error) => {
                    tracing::debug!(error = %error, "ignoring an undecodable status event")
                }
            }
        }
        tracing::warn!(channel = %channel, "status event subscription dropped; reopening");
    }
}
