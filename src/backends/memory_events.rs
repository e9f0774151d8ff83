//! Status changes within one process (standalone mode without Redis): a broadcast channel
//! the engine publishes into and the gateway's waiting clients subscribe to.

use async_trait::async_trait;
use pixmill_actors::events::{StatusChanged, StatusEvents};
use tokio::sync::broadcast;

use crate::fastpath::StatusFeed;

/// Events kept for slow listeners; one that falls further behind misses some and re-reads
/// the status from the store instead.
const BUFFER: usize = 1024;

pub struct MemoryEvents {
    sender: broadcast::Sender<StatusChanged>,
}

impl Default for MemoryEvents {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
        }
    }
}

impl StatusFeed for MemoryEvents {
    fn subscribe(&self) -> broadcast::Receiver<StatusChanged> {
        self.sender.subscribe()
    }
}

#[async_trait]
impl StatusEvents for MemoryEvents {
    async fn publish(&self, event: StatusChanged) {
        // No listener is not an error.
        let _ = self.sender.send(event);
    }
}
