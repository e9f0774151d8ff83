//! Waiting for an image to change: long polls (`GET /v1/images/{id}?wait=30s`) and event
//! streams (`GET /v1/images/{id}/events`).
//!
//! A waiter registers with the gateway's [`Watchers`](super::watchers::Watchers) before its
//! first read, so no change between the read and the registration is missed, and re-reads
//! the image when an event names it. Events are best effort (a lost Redis message, a feed
//! that fell behind), so the waiter also re-reads every `reread` interval: a lost event only
//! delays the client. The store stays the truth; an event is only a hint to look.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use pixmill_actors::{ImageId, ImageRecord};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::watchers::Watch;
use super::Gateway;
use crate::api::errors::ApiError;
use crate::auth::Principal;
use crate::metrics::WaitingGuard;

/// How long clients may wait, and how often a waiter looks at the store by itself.
#[derive(Clone, Copy, Debug)]
pub struct WaitLimits {
    /// Longest long poll; longer asks are cut to this.
    pub max_wait: Duration,
    /// How often a waiter re-reads the image even without an event.
    pub reread: Duration,
    /// Longest life of an event stream; the client reconnects after it.
    pub stream_lifetime: Duration,
}

impl Default for WaitLimits {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_secs(60),
            reread: Duration::from_secs(2),
            stream_lifetime: Duration::from_secs(600),
        }
    }
}

/// Why a waiter woke up.
enum Wake {
    /// An event named the image, events were lost, or the re-read interval passed.
    Look,
    /// The wait is over.
    Deadline,
}

/// One waiter: its registration for the image's events, its re-read clock and its deadline.
struct Waiter {
    watch: Watch,
    reread: Interval,
    deadline: Instant,
    /// Counted as waiting (`pixmill_http_waiting_requests`) from the first read on.
    counted: Option<WaitingGuard>,
}

impl Waiter {
    fn new(gateway: &Gateway, id: ImageId, patience: Duration) -> Self {
        let mut reread =
            tokio::time::interval_at(Instant::now() + gateway.waits.reread, gateway.waits.reread);
        reread.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            watch: gateway.watchers.watch(id),
            reread,
            deadline: Instant::now() + patience,
            counted: None,
        }
    }

    /// Counts the request as waiting; called once its first read is done, so the count
    /// means "will answer on a change", not "still reading".
    fn count(&mut self, gateway: &Gateway) {
        self.counted
            .get_or_insert_with(|| gateway.metrics.waiting());
    }

    async fn next(&mut self) -> Wake {
        tokio::select! {
            _ = self.watch.changed() => Wake::Look,
            _ = self.reread.tick() => Wake::Look,
            _ = tokio::time::sleep_until(self.deadline) => Wake::Deadline,
        }
    }
}

/// The stream of status documents for one image.
pub type RecordStream = Pin<Box<dyn Stream<Item = ImageRecord> + Send>>;

impl Gateway {
    /// The caller's image once its status differs from the one it had when the call began,
    /// or after `wait` (then as it is). A final status answers at once: it cannot change.
    pub async fn image_after_change(
        &self,
        who: &Principal,
        raw_id: &str,
        wait: Duration,
    ) -> Result<ImageRecord, ApiError> {
        let id: ImageId = raw_id.parse().map_err(|_| ApiError::image_not_found())?;
        let patience = wait.min(self.waits.max_wait);
        let mut waiter = Waiter::new(self, id, patience);
        let first = self.image(who, raw_id).await?;
        if first.status.is_final() || patience.is_zero() {
            return Ok(first);
        }
        waiter.count(self);
        loop {
            let wake = waiter.next().await;
            let now = self.image(who, raw_id).await?;
            if now.status != first.status || matches!(wake, Wake::Deadline) || self.is_draining() {
                return Ok(now);
            }
        }
    }

    /// The caller's image now and then after every change, ending after a final status, when
    /// the image disappears, when the gateway drains, after the stream's lifetime, or when
    /// the caller's token expires (the token was checked once, at connect; a stream must
    /// not go on vouching for it).
    pub async fn image_changes(
        self: Arc<Self>,
        who: Principal,
        raw_id: &str,
    ) -> Result<RecordStream, ApiError> {
        let id: ImageId = raw_id.parse().map_err(|_| ApiError::image_not_found())?;
        let lifetime = who.remaining().map_or(self.waits.stream_lifetime, |left| {
            left.min(self.waits.stream_lifetime)
        });
        let mut waiter = Waiter::new(&self, id, lifetime);
        let first = self.image(&who, raw_id).await?;
        waiter.count(&self);
        let state = StreamState {
            gateway: self,
            who,
            waiter,
            next: Some(first),
            last: None,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            StreamState::step,
        )))
    }
}

struct StreamState {
    gateway: Arc<Gateway>,
    who: Principal,
    waiter: Waiter,
    /// A document to send before waiting again.
    next: Option<ImageRecord>,
    /// The document sent last.
    last: Option<ImageRecord>,
}

impl StreamState {
    async fn step(mut self) -> Option<(ImageRecord, Self)> {
        loop {
            if let Some(record) = self.next.take() {
                self.last = Some(record.clone());
                return Some((record, self));
            }
            let done = self.last.as_ref().is_some_and(|r| r.status.is_final());
            if done || self.gateway.is_draining() {
                return None;
            }
            if let Wake::Deadline = self.waiter.next().await {
                return None;
            }
            let id = self.waiter.watch.image().to_string();
            match self.gateway.image(&self.who, &id).await {
                Ok(record) if self.last.as_ref() != Some(&record) => self.next = Some(record),
                Ok(_) => {}
                Err(error) if error.code == "image_not_found" => return None,
                // A backend hiccup: the next wake tries again.
                Err(_) => {}
            }
        }
    }
}
