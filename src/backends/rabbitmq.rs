//! The job queue on RabbitMQ, through lapin, with recovery owned here rather than left to
//! lapin's.
//!
//! Topology, declared durable on every (re)connect: the work queue (`image_processing_queue`
//! by default) whose dead letters go to the fanout exchange `<queue>.dlx`, bound to the queue
//! `<queue>.dead`. Messages are persistent JSON [`JobMessage`]s with `message_id` set to
//! [`JobMessage::message_id`].
//!
//! What is guaranteed:
//! - `publish` returns `Ok` only after the broker confirmed the message (publisher confirms),
//!   so an `Ok` message survives a broker restart. Its wait is bounded: about one connect
//!   timeout (its own reconnect, or another publish's it queues behind) plus the confirm
//!   timeout.
//! - A delivery is removed only by an explicit `Ack`; a crash, a dropped delivery, a dropped
//!   consumer or a dead connection hands it back to the broker.
//! - After a connection or channel loss, the next publish reconnects (at most one attempt per
//!   back-off interval; in between, publishes fail at once with `Unavailable`), and each
//!   consumer stream reconnects by itself and goes on yielding.
//!
//! What is not:
//! - Exactly-once delivery. A publish that timed out may still have reached the queue, so the
//!   caller's retry can duplicate it; a delivery settled on a connection that then died comes
//!   again. Consumers must be idempotent (the engine checks the job's state).
//! - A settlement made after its channel died does nothing (and reports success): the broker
//!   redelivers the message, so a `DeadLetter` on a dead channel becomes a redelivery.
//! - Ordering across redeliveries.

mod consumer;
#[cfg(feature = "failpoints")]
mod dead_letters;
mod link;

use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use pixmill_actors::ports::{BackendError, ErrorKind, JobMessage, JobQueue, JobStream};
use tokio::sync::Mutex;

use consumer::RabbitStream;
#[cfg(feature = "failpoints")]
pub use dead_letters::drain_dead_letters;
use link::{map_error, Backoff, Link, BACKEND};

/// AMQP's delivery mode for messages written to disk.
const PERSISTENT: u8 = 2;

const JSON: &str = "application/json";

/// Where the broker is and how patient to be with it.
#[derive(Clone)]
pub struct RabbitConfig {
    /// `amqp://user:password@host:port/vhost` (`%2f` is the default vhost). A connection
    /// that dies silently (no reset) is noticed through AMQP heartbeats: the broker's
    /// interval (60 s by default) unless the URL sets `?heartbeat=<seconds>`.
    pub url: String,
    pub queue: String,
    /// Connection name shown by the broker, suffixed `-publisher` or `-consumer`.
    pub connection_name: String,
    /// Bound on one connection attempt (TCP, handshake, channel, declarations).
    pub connect_timeout: Duration,
    /// Bound on the wait for the broker's confirm of one publish, and on sending one
    /// settlement.
    pub confirm_timeout: Duration,
    /// First delay between reconnect attempts; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl RabbitConfig {
    pub const DEFAULT_QUEUE: &'static str = "image_processing_queue";

    /// A configuration with the defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            queue: Self::DEFAULT_QUEUE.to_owned(),
            connection_name: "pixmill".to_owned(),
            connect_timeout: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
        }
    }

    /// The URL without its credentials, for logs.
    fn redacted_url(&self) -> String {
        let Ok(uri) = self.url.parse::<lapin::uri::AMQPUri>() else {
            return "an unparsable URL".to_owned();
        };
        let scheme = match uri.scheme {
            lapin::uri::AMQPScheme::AMQP => "amqp",
            lapin::uri::AMQPScheme::AMQPS => "amqps",
        };
        let vhost = uri.vhost.replace('/', "%2f");
        format!(
            "{scheme}://{}:{}/{vhost}",
            uri.authority.host, uri.authority.port
        )
    }
}

impl std::fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("url", &self.redacted_url())
            .field("queue", &self.queue)
            .field("connection_name", &self.connection_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("confirm_timeout", &self.confirm_timeout)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .finish()
    }
}

/// The job queue on a RabbitMQ broker.
///
/// Publishes share one connection and channel, opened at connect and reopened on demand.
/// Each [`JobQueue::consume`] opens a connection of its own, so one consumer's failure or
/// drop never disturbs another's deliveries.
pub struct RabbitQueue {
    config: RabbitConfig,
    /// Held while the link is checked or reopened (at most the connect timeout), never
    /// while a publish waits for its confirm, so publishes run concurrently.
    publisher: Mutex<Publisher>,
}

struct Publisher {
    link: Option<Link>,
    /// Counts reopened links, so a publish that failed on an old one does not close a new one.
    generation: u64,
    backoff: Backoff,
}

impl RabbitQueue {
    /// Connects, declares the topology and enables publisher confirms.
    pub async fn connect(config: &RabbitConfig) -> Result<Self, BackendError> {
        let link = open_publisher(config).await?;
        Ok(Self {
            config: config.clone(),
            publisher: Mutex::new(Publisher {
                link: Some(link),
                generation: 0,
                backoff: Backoff::new(config.reconnect_min, config.reconnect_max),
            }),
        })
    }

    /// The publishing channel, reopening the link if it died and the back-off allows.
    async fn channel(&self) -> Result<(Channel, u64), BackendError> {
        let mut publisher = self.publisher.lock().await;
        if let Some(link) = &publisher.link {
            if link.is_open() {
                return Ok((link.channel.clone(), publisher.generation));
            }
            tracing::warn!("publisher connection lost; reconnecting");
            publisher.link = None;
        }

        let wait = publisher.backoff.remaining();
        if !wait.is_zero() {
            return Err(BackendError::new(
                BACKEND,
                ErrorKind::Unavailable,
                format!("broker unreachable; next reconnect attempt in {wait:?}"),
            ));
        }
        match open_publisher(&self.config).await {
            Ok(link) => {
                tracing::info!("publisher reconnected");
                publisher.backoff.succeeded();
                publisher.generation += 1;
                let channel = link.channel.clone();
                publisher.link = Some(link);
                Ok((channel, publisher.generation))
            }
            Err(e) => {
                publisher.backoff.failed();
                Err(e)
            }
        }
    }

    /// Drops the link a failed publish used, unless it was already replaced.
    async fn discard(&self, generation: u64) {
        let mut publisher = self.publisher.lock().await;
        if publisher.generation == generation {
            publisher.link = None;
        }
    }

    async fn send(&self, channel: &Channel, job: &JobMessage) -> Result<(), BackendError> {
        let payload = serde_json::to_vec(job).map_err(|e| BackendError::internal(BACKEND, e))?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(JSON.into())
            .with_message_id(job.message_id().into());
        // Mandatory: a message the broker cannot route (the queue was deleted) comes back
        // instead of vanishing.
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };

        let publish = async {
            channel
                .basic_publish(
                    "".into(),
                    self.config.queue.as_str().into(),
                    options,
                    &payload,
                    properties,
                )
                .await?
                .await
        };
        let confirmation = match tokio::time::timeout(self.config.confirm_timeout, publish).await {
            Ok(result) => result.map_err(|e| map_error("publish", e))?,
            Err(_) => return Err(BackendError::timeout(BACKEND, "publish confirm")),
        };

        if confirmation.is_nack() {
            return Err(BackendError::new(
                BACKEND,
                ErrorKind::Internal,
                "broker refused the message",
            ));
        }
        if confirmation.take_message().is_some() {
            return Err(BackendError::new(
                BACKEND,
                ErrorKind::Unavailable,
                format!("queue {} does not exist", self.config.queue),
            ));
        }
        Ok(())
    }
}

async fn open_publisher(config: &RabbitConfig) -> Result<Link, BackendError> {
    let link = Link::open(config, "publisher").await?;
    let select = link
        .channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default());
    match tokio::time::timeout(config.connect_timeout, select).await {
        Ok(result) => result.map_err(|e| map_error("enable confirms", e))?,
        Err(_) => return Err(BackendError::timeout(BACKEND, "enable confirms")),
    }
    Ok(link)
}

#[async_trait]
impl JobQueue for RabbitQueue {
    async fn publish(&self, job: &JobMessage) -> Result<(), BackendError> {
        let (channel, generation) = self.channel().await?;
        let result = self.send(&channel, job).await;
        if let Err(e) = &result {
            // A timed-out or failed publish leaves the link in doubt; open a fresh one next
            // time rather than queueing more confirms behind a stuck one.
            if e.kind != ErrorKind::Internal {
                self.discard(generation).await;
            }
        }
        result
    }

    async fn consume(&self, prefetch: u16) -> Result<Box<dyn JobStream>, BackendError> {
        let stream = RabbitStream::open(self.config.clone(), prefetch).await?;
        Ok(Box::new(stream))
    }

    fn is_durable(&self) -> bool {
        true
    }

    /// A passive declare of the queue on the publishing channel: proves the broker answers
    /// and the queue exists.
    async fn ping(&self) -> Result<(), BackendError> {
        let (channel, generation) = self.channel().await?;
        let check = channel.queue_declare(
            self.config.queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        );
        let result = match tokio::time::timeout(self.config.connect_timeout, check).await {
            Ok(result) => result.map(|_| ()).map_err(|e| map_error("ping", e)),
            Err(_) => Err(BackendError::timeout(BACKEND, "ping")),
        };
        if result.is_err() {
            self.discard(generation).await;
        }
        result
    }

    fn describe(&self) -> String {
        format!(
            "rabbitmq at {} (queue {})",
            self.config.redacted_url(),
            self.config.queue
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_carry_no_credentials() {
        let config = RabbitConfig::new("amqp://pixmill:s3cret@broker.internal:5673/%2f");

        let shown = format!("{config:?} {}", config.redacted_url());

        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("amqp://broker.internal:5673/%2f"), "{shown}");
    }
}
