//! Opening a connection and channel with the queue's topology declared, the reconnect
//! back-off, and the mapping of lapin's errors.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use pixmill_actors::ports::{BackendError, ErrorKind};
use tokio::time::Instant;

use super::RabbitConfig;

pub(super) const BACKEND: &str = "rabbitmq";

/// The names derived from the queue's: `<queue>.dlx` (a fanout exchange) and `<queue>.dead`.
#[derive(Clone, Debug)]
pub(super) struct Topology {
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
}

impl Topology {
    pub fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            dead_letter_exchange: format!("{queue}.dlx"),
            dead_letter_queue: format!("{queue}.dead"),
        }
    }

    /// Declares everything, durable. Declaring is idempotent, so every (re)connect does it.
    async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.dead_letter_queue.as_str().into(),
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_letter_exchange.as_str().into()),
        );
        channel
            .queue_declare(self.queue.as_str().into(), durable, arguments)
            .await?;
        Ok(())
    }
}

/// A connection with one channel on it. Dropping it closes both.
pub(super) struct Link {
    pub connection: Connection,
    pub channel: Channel,
}

impl Link {
    /// Connects, opens a channel and declares the topology, within the connect timeout.
    /// `role` names the connection on the broker (`<connection_name>-<role>`), which is how
    /// an operator tells pixmill's publishers from its consumers.
    pub async fn open(config: &RabbitConfig, role: &str) -> Result<Self, BackendError> {
        let open = async {
            let properties = ConnectionProperties::default()
                .with_connection_name(format!("{}-{role}", config.connection_name).into());
            let connection = Connection::connect(&config.url, properties).await?;
            let channel = connection.create_channel().await?;
            Topology::new(&config.queue).declare(&channel).await?;
            Ok::<_, lapin::Error>(Self {
                connection,
                channel,
            })
        };
        match tokio::time::timeout(config.connect_timeout, open).await {
            Ok(result) => result.map_err(|e| map_error("connect", e)),
            Err(_) => Err(BackendError::timeout(BACKEND, "connecting to the broker")),
        }
    }

    /// Whether both the connection and the channel are still usable.
    pub fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// Exponential back-off between reconnect attempts, from `min` doubling to `max`.
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    next_delay: Duration,
    not_before: Option<Instant>,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next_delay: min,
            not_before: None,
        }
    }

    /// How long until the next attempt is due; zero when it is due now.
    pub fn remaining(&self) -> Duration {
        self.not_before
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    pub fn failed(&mut self) {
        self.not_before = Some(Instant::now() + self.next_delay);
        self.next_delay = (self.next_delay * 2).min(self.max);
    }

    pub fn succeeded(&mut self) {
        self.next_delay = self.min;
        self.not_before = None;
    }
}

/// Sorts lapin's errors by what the caller should do about them.
pub(super) fn map_error(what: &str, error: lapin::Error) -> BackendError {
    let kind = match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => ErrorKind::NotFound,
            // A queue declared earlier with other arguments, or a user without rights:
            // only an operator can fix these.
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
            | AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => ErrorKind::Rejected,
            _ => ErrorKind::Unavailable,
        },
        _ => ErrorKind::Unavailable,
    };
    BackendError::new(BACKEND, kind, format!("{what}: {error}")).with_source(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_and_resets() {
        let (min, max) = (Duration::from_secs(10), Duration::from_secs(25));
        let mut backoff = Backoff::new(min, max);
        assert!(
            backoff.remaining().is_zero(),
            "the first attempt is due at once"
        );

        let delays: Vec<Duration> = (0..4)
            .map(|_| {
                let delay = backoff.next_delay;
                backoff.failed();
                delay
            })
            .collect();
        assert_eq!(delays, [10, 20, 25, 25].map(Duration::from_secs));
        assert!(!backoff.remaining().is_zero());

        backoff.succeeded();
        assert!(backoff.remaining().is_zero());
        assert_eq!(backoff.next_delay, min);
    }
}
