//! The engine's status events, passed on, with the webhook dispatcher woken for every job
//! that ends, so its webhook goes out at once instead of at the dispatcher's next poll.

use std::sync::Arc;

use async_trait::async_trait;
use pixmill_actors::events::{StatusChanged, StatusEvents};

use super::dispatcher::WebhookDispatcher;

/// Passes every event on to `inner`; a final status also wakes the dispatcher (the store
/// marked its webhook due in the same write that recorded the status).
pub struct WebhookNotifier {
    inner: Arc<dyn StatusEvents>,
    dispatcher: Arc<WebhookDispatcher>,
}

impl WebhookNotifier {
    pub fn new(inner: Arc<dyn StatusEvents>, dispatcher: Arc<WebhookDispatcher>) -> Self {
        Self { inner, dispatcher }
    }
}

#[async_trait]
impl StatusEvents for WebhookNotifier {
    async fn publish(&self, event: StatusChanged) {
        if event.status.is_final() {
            self.dispatcher.wake();
        }
        self.inner.publish(event).await;
    }
}
