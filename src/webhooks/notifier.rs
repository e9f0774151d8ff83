//! The engine's status events, plus a webhook for every job that ends and asked for one.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pixmill_actors::events::{StatusChanged, StatusEvents};
use pixmill_actors::ports::MetadataStore;
use poem_openapi::types::ToJSON;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::delivery::WebhookSender;
use super::target::CallbackUrl;
use crate::api::models::ImageDocument;

/// Deliveries in progress at once; more wait for a slot (each waiting one is a small task).
const CONCURRENT_DELIVERIES: usize = 32;

/// Passes every event on to `inner`; for a final status, reads the record and, when it has
/// a `callback_url`, delivers the status document in a task of its own so the engine never
/// waits for a webhook.
pub struct WebhookNotifier {
    inner: Arc<dyn StatusEvents>,
    metadata: Arc<dyn MetadataStore>,
    sender: Arc<WebhookSender>,
    slots: Arc<Semaphore>,
}

impl WebhookNotifier {
    pub fn new(
        inner: Arc<dyn StatusEvents>,
        metadata: Arc<dyn MetadataStore>,
        sender: Arc<WebhookSender>,
    ) -> Self {
        Self {
            inner,
            metadata,
            sender,
            slots: Arc::new(Semaphore::new(CONCURRENT_DELIVERIES)),
        }
    }
}

#[async_trait]
impl StatusEvents for WebhookNotifier {
    async fn publish(&self, event: StatusChanged) {
        if event.status.is_final() {
            let (metadata, sender, slots) = (
                self.metadata.clone(),
                self.sender.clone(),
                self.slots.clone(),
            );
            let span = tracing::Span::current();
            let event = event.clone();
            let delivery = async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                notify(metadata.as_ref(), &sender, event).await;
            };
            tokio::spawn(delivery.instrument(span));
        }
        self.inner.publish(event).await;
    }
}

async fn notify(metadata: &dyn MetadataStore, sender: &WebhookSender, event: StatusChanged) {
    let record = match metadata.get(&event.owner, event.image_id).await {
        Ok(Some(record)) => record,
        // Deleted since: nobody to tell about it.
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(error = %error, "could not read the finished job; its webhook is not sent");
            return;
        }
    };
    let Some(raw) = record.callback_url.as_deref() else {
        return;
    };
    let target = match CallbackUrl::parse(raw) {
        Ok(target) => target,
        Err(error) => {
            tracing::warn!(error = %error, "stored callback_url no longer parses; webhook not sent");
            return;
        }
    };
    let body = Bytes::from(ImageDocument::from(&record).to_json_string());
    sender.deliver(&target, body).await;
}
