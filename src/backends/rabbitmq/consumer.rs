//! A consumer stream that survives connection loss, and the settlement of its deliveries.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Consumer};
use pixmill_actors::ports::{BackendError, Delivery, JobMessage, JobStream, Settle, Settlement};

use super::link::{map_error, Backoff, Link, BACKEND};
use super::RabbitConfig;

/// One consumer on its own connection.
///
/// When the connection or channel dies, the stream reconnects by itself: it re-declares the
/// topology, sets the prefetch again and starts a new consumer, then goes on yielding. Each
/// failed attempt is yielded as an `Err` item (the stream is still alive: call `next` again,
/// which waits out the back-off first), so the caller can log it and report unreadiness.
/// Deliveries still held from the dead channel settle as no-ops; the broker redelivers them.
/// The stream never ends by itself; dropping it closes its connection, which hands every
/// unsettled delivery back to the broker.
pub(super) struct RabbitStream {
    config: RabbitConfig,
    prefetch: u16,
    live: Option<LiveConsumer>,
    backoff: Backoff,
}

/// Field order matters for drop: the consumer before its channel and connection.
struct LiveConsumer {
    consumer: Consumer,
    /// Used only to cancel the consumer; otherwise kept for the connection's lifetime.
    _link: Link,
}

impl RabbitStream {
    /// Opens the first consumer; fails if the broker cannot be reached now.
    pub async fn open(config: RabbitConfig, prefetch: u16) -> Result<Self, BackendError> {
        let live = start(&config, prefetch).await?;
        let backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
        Ok(Self {
            config,
            prefetch,
            live: Some(live),
            backoff,
        })
    }

    async fn reconnect(&mut self) -> Result<(), BackendError> {
        let wait = self.backoff.remaining();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        match start(&self.config, self.prefetch).await {
            Ok(live) => {
                tracing::info!(queue = %self.config.queue, "consumer reconnected");
                self.backoff.succeeded();
                self.live = Some(live);
                Ok(())
            }
            Err(e) => {
                self.backoff.failed();
                Err(e)
            }
        }
    }

    fn settle_timeout(&self) -> Duration {
        self.config.confirm_timeout
    }
}

/// Opens a connection, sets the prefetch and starts consuming with manual acks.
async fn start(config: &RabbitConfig, prefetch: u16) -> Result<LiveConsumer, BackendError> {
    let link = Link::open(config, "consumer").await?;
    let setup = async {
        link.channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        link.channel
            .basic_consume(
                config.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    };
    match tokio::time::timeout(config.connect_timeout, setup).await {
        Ok(Ok(consumer)) => Ok(LiveConsumer {
            consumer,
            _link: link,
        }),
        Ok(Err(e)) => Err(map_error("start consumer", e)),
        Err(_) => Err(BackendError::timeout(BACKEND, "starting the consumer")),
    }
}

#[async_trait]
impl JobStream for RabbitStream {
    async fn next(&mut self) -> Option<Result<Delivery, BackendError>> {
        loop {
            let Some(live) = self.live.as_mut() else {
                if let Err(e) = self.reconnect().await {
                    return Some(Err(e));
                }
                continue;
            };

            match live.consumer.next().await {
                Some(Ok(delivery)) => {
                    if let Some(delivery) = accept(delivery, self.settle_timeout()).await {
                        return Some(Ok(delivery));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer channel failed; reconnecting");
                    self.live = None;
                }
                None => {
                    // The broker cancelled the consumer (the queue was deleted) or the
                    // channel closed.
                    tracing::warn!("consumer ended; reconnecting");
                    self.live = None;
                }
            }
        }
    }

    /// Cancels the consumer on the broker (`basic.cancel`) and keeps the channel open, so
    /// deliveries already taken are still acknowledged on it.
    async fn stop_taking(&mut self) {
        let Some(live) = self.live.as_ref() else {
            return;
        };
        let cancel = live
            ._link
            .channel
            .basic_cancel(live.consumer.tag(), BasicCancelOptions::default());
        match tokio::time::timeout(self.config.connect_timeout, cancel).await {
            Ok(Ok(())) => tracing::info!(queue = %self.config.queue, "stopped taking jobs"),
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "could not cancel the consumer; jobs taken meanwhile go back when it closes")
            }
            Err(_) => tracing::warn!(
                "cancelling the consumer timed out; jobs taken meanwhile go back when it closes"
            ),
        }
    }
}

/// Turns a broker delivery into a [`Delivery`]; a payload that is not a [`JobMessage`] is
/// dead-lettered here and never reaches the engine.
async fn accept(delivery: lapin::message::Delivery, timeout: Duration) -> Option<Delivery> {
    let job = match serde_json::from_slice::<JobMessage>(&delivery.data) {
        Ok(job) => job,
        Err(e) => {
            let message_id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string());
            tracing::warn!(?message_id, error = %e, "malformed job message; dead-lettering it");
            let settle = RabbitSettle {
                acker: delivery.acker,
                timeout,
            };
            if let Err(e) = Box::new(settle).settle(Settlement::DeadLetter).await {
                tracing::warn!(error = %e, "could not dead-letter a malformed message");
            }
            return None;
        }
    };
    let settle = RabbitSettle {
        acker: delivery.acker,
        timeout,
    };
    Some(Delivery::new(job, delivery.redelivered, Box::new(settle)))
}

/// Settles one delivery on the channel it came from.
struct RabbitSettle {
    acker: Acker,
    timeout: Duration,
}

#[async_trait]
impl Settle for RabbitSettle {
    async fn settle(self: Box<Self>, how: Settlement) -> Result<(), BackendError> {
        let settle = async {
            match how {
                Settlement::Ack => self.acker.ack(BasicAckOptions::default()).await,
                Settlement::Requeue => self.acker.nack(requeue(true)).await,
                // Rejected without requeue, the broker routes it to the dead-letter exchange.
                Settlement::DeadLetter => self.acker.nack(requeue(false)).await,
            }
        };
        match tokio::time::timeout(self.timeout, settle).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) | Ok(Err(_)) => {
                // The channel is gone, and with it the broker's record of this delivery: it
                // is redelivered to another consumer, so there is nothing left to settle.
                tracing::debug!(
                    ?how,
                    "settled a delivery from a closed channel; the broker redelivers it"
                );
                Ok(())
            }
            Err(_) => Err(BackendError::timeout(BACKEND, "settling a delivery")),
        }
    }

    fn abandon(self: Box<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Outside a runtime the process is shutting down; the broker requeues the
            // message when the connection closes.
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = self.acker.nack(requeue(true)).await {
                tracing::debug!(error = %e, "could not requeue an abandoned delivery");
            }
        });
    }
}

fn requeue(requeue: bool) -> BasicNackOptions {
    BasicNackOptions {
        requeue,
        ..BasicNackOptions::default()
    }
}
