//! The sending half of the webhook outbox: takes the webhooks the metadata store holds due
//! (see [`MetadataStore::take_due_webhooks`]), sends each in a task of its own, and settles
//! it: cleared once delivered, refused or given up, due again after a back-off otherwise.
//!
//! Every process that runs the engine runs one. The store hands each due webhook to one of
//! them at a time, so several workers never send the same attempt; a worker that stops
//! mid-attempt, or dies, leaves the webhook held until its hold runs out, and then any
//! worker (this one after a restart) takes it again. So a webhook is delivered at least
//! once; a receiver may see one twice (a worker that died after the POST but before the
//! settle, or a settle that failed) and should treat a repeat of an image's final status as
//! one event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use pixmill_actors::metrics::EngineMetrics;
use pixmill_actors::ports::{DueWebhook, MetadataStore};
use poem_openapi::types::ToJSON;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::delivery::{Attempt, WebhookSender};
use super::target::CallbackUrl;
use crate::api::models::ImageDocument;
use crate::metrics::Metrics;

/// Attempts in flight at once.
const CONCURRENT_DELIVERIES: u32 = 32;

/// How often the outbox is read when nothing wakes the dispatcher: how late a retry whose
/// back-off ran out, or a webhook another worker left behind, is sent at most.
const POLL: Duration = Duration::from_secs(1);

/// How long a taken webhook stays held beyond one attempt's longest run: past it, the
/// sender is presumed dead and another may take the webhook. It covers the take and the
/// settle around the attempt, each of which a slow database may stretch to some 17 s
/// (PostgreSQL's pool wait, reuse check and query timeout).
const HOLD_MARGIN: Duration = Duration::from_secs(60);

/// How long a stopping process waits for the attempts in flight to end and be settled.
/// Those still running then are cut off; their holds run out and they are sent again.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One process's webhook dispatcher.
pub struct WebhookDispatcher {
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// What the dispatcher's loop and its delivery tasks share.
struct Shared {
    metadata: Arc<dyn MetadataStore>,
    sender: WebhookSender,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    /// Wakes the loop: a job ended here, or a slot freed while due webhooks were left.
    wake: Notify,
    /// The last read of the outbox filled every free slot, so more may be due.
    backlog: AtomicBool,
}

impl WebhookDispatcher {
    /// A dispatcher that takes nothing until [`Self::start`]: a process starts it once
    /// everything else has started, so one that fails to start holds no webhooks.
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        sender: WebhookSender,
        metrics: Arc<Metrics>,
    ) -> Self {
        let shared = Arc::new(Shared {
            metadata,
            sender,
            metrics,
            slots: Arc::new(Semaphore::new(CONCURRENT_DELIVERIES as usize)),
            wake: Notify::new(),
            backlog: AtomicBool::new(false),
        });
        Self {
            shared,
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        }
    }

    /// Starts the loop that reads the outbox; without a secret, none: a webhook this
    /// process cannot sign stays due for a process that can (a gateway with the secret may
    /// have accepted it), where taking it here would end it unsent.
    pub fn start(&self) {
        if !self.shared.sender.enabled() {
            tracing::warn!(
                "webhooks.secret is not set: this process sends no webhooks; due ones wait in the outbox for a process that has the secret (give every worker the gateways' secret)"
            );
            return;
        }
        let task = tokio::spawn(run(self.shared.clone(), self.stop.clone()));
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// Reads the outbox now rather than at the next poll: a job just ended here. Without a
    /// secret no upload can name a target, so there is nothing new to read.
    pub fn wake(&self) {
        if self.shared.sender.enabled() {
            self.shared.wake.notify_one();
        }
    }

    /// Stops taking webhooks, then waits up to [`STOP_GRACE`] for the attempts in flight.
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let in_flight = self.shared.slots.acquire_many(CONCURRENT_DELIVERIES);
        if tokio::time::timeout(STOP_GRACE, in_flight).await.is_err() {
            tracing::warn!(
                grace_ms = STOP_GRACE.as_millis() as u64,
                "webhook attempts still running at shutdown; they are sent again when their hold runs out"
            );
        }
    }
}

impl Drop for WebhookDispatcher {
    /// A dispatcher dropped without [`Self::stop`] (a process that failed to start) ends
    /// its loop; attempts in flight run on until the runtime ends.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        take_and_send(&shared).await;
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Takes as many due webhooks as there are free slots and sends each in a task.
async fn take_and_send(shared: &Arc<Shared>) {
    // Only this loop takes slots, so all the free ones can be had; those no webhook needs
    // are released when `slots` drops.
    let free = shared.slots.available_permits();
    let taken = match free {
        0 => None,
        n => shared.slots.clone().try_acquire_many_owned(n as u32).ok(),
    };
    let Some(mut slots) = taken else {
        // None free: a delivery that ends wakes the loop.
        shared.backlog.store(true, Ordering::Relaxed);
        return;
    };
    let hold = shared.sender.attempt_timeout() + HOLD_MARGIN;
    let due = match shared
        .metadata
        .take_due_webhooks(Utc::now(), hold, free as u32)
        .await
    {
        Ok(due) => due,
        Err(error) => {
            shared.metrics.backend_error(&error);
            tracing::warn!(error = %error, "could not read the webhook outbox; will retry");
            return;
        }
    };
    shared.backlog.store(due.len() == free, Ordering::Relaxed);
    for webhook in due {
        // The store returns at most `free` webhooks, one slot each (one beyond them would
        // stay held, and be sent when its hold runs out).
        let Some(slot) = slots.split(1) else {
            break;
        };
        let span = tracing::info_span!(
            "webhook",
            image_id = %webhook.record.id,
            attempt = webhook.attempt
        );
        tokio::spawn(deliver(shared.clone(), webhook, slot).instrument(span));
    }
}

/// One attempt at one webhook, then its settlement; with webhooks left waiting for a
/// slot, wakes the loop once this one's is free.
async fn deliver(shared: Arc<Shared>, webhook: DueWebhook, slot: OwnedSemaphorePermit) {
    attempt_and_settle(&shared, webhook).await;
    drop(slot);
    if shared.backlog.load(Ordering::Relaxed) {
        shared.wake.notify_one();
    }
}

async fn attempt_and_settle(shared: &Shared, webhook: DueWebhook) {
    let sender = &shared.sender;
    let attempt = webhook.attempt;
    let outcome = if attempt > sender.max_attempts() {
        // Earlier attempts were cut off by senders that stopped or died: give up.
        Attempt::Transient("no attempts left: earlier ones were cut off".to_owned())
    } else {
        match webhook
            .record
            .callback_url
            .as_deref()
            .map(CallbackUrl::parse)
        {
            Some(Ok(target)) => {
                let body = Bytes::from(ImageDocument::from(&webhook.record).to_json_string());
                sender.send(&target, body).await
            }
            Some(Err(error)) => Attempt::Permanent(format!("the callback_url is invalid: {error}")),
            None => Attempt::Permanent("the image has no callback_url".to_owned()),
        }
    };
    let next = match outcome {
        Attempt::Delivered => {
            shared.metrics.webhook("delivered");
            tracing::info!("webhook delivered");
            None
        }
        Attempt::Permanent(reason) => {
            shared.metrics.webhook("refused");
            tracing::warn!(reason = %reason, "webhook refused; not retrying");
            None
        }
        Attempt::Transient(reason) if attempt >= sender.max_attempts() => {
            shared.metrics.webhook("gave_up");
            tracing::warn!(reason = %reason, "webhook failed; giving up");
            None
        }
        Attempt::Transient(reason) => {
            let delay = sender.retry_delay(attempt);
            tracing::info!(reason = %reason, retry_in_ms = delay.as_millis() as u64, "webhook failed; will retry");
            Some(after(delay))
        }
    };
    match shared
        .metadata
        .settle_webhook(webhook.record.id, webhook.held_until, next)
        .await
    {
        Ok(true) => {}
        // Deleted since, or held so long that another sender took it over.
        Ok(false) => tracing::info!("webhook no longer held here; left to its current state"),
        Err(error) => {
            shared.metrics.backend_error(&error);
            tracing::warn!(error = %error, "could not settle the webhook; it is sent again when its hold runs out");
        }
    }
}

/// Now + `delay`, saturating instead of overflowing.
fn after(delay: Duration) -> DateTime<Utc> {
    let now = Utc::now();
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
