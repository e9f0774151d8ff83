//! Routes status events to the clients waiting on that image, and to no one else.
//!
//! One task per gateway receives the [`StatusFeed`] and looks each event's image up in a
//! map of waiters, so an event costs one wake-up of that task and one per waiter of its
//! image, however many clients wait on other images. (A feed receiver per waiter would
//! wake every waiter on every event: 10,000 long polls and 300 changes a second would be
//! three million wake-ups a second, each to find the event was for someone else.)
//!
//! Each waiter holds a [`Watch`] with a [`Notify`] of its own. `notify_one` keeps a permit
//! when the waiter is not waiting at that moment (it may be reading the store), so an event
//! that arrives between its looks is not lost. When the task falls behind the feed
//! (`Lagged`) it cannot know whose events it missed, so it wakes every waiter once; when the
//! feed closes, waiters carry on with their re-read clocks alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use pixmill_actors::ImageId;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

use crate::fastpath::StatusFeed;

/// The waiters of each image, by image.
#[derive(Clone)]
pub struct Watchers {
    registry: Arc<Registry>,
    /// Held so the feed's subscription (Redis' included) lives as long as the gateway.
    _feed: Arc<dyn StatusFeed>,
}

/// Each image's waiters, by the number their [`Watch`] was given.
type Waiting = HashMap<ImageId, HashMap<u64, Arc<Notify>>>;

#[derive(Default)]
struct Registry {
    waiting: Mutex<Waiting>,
    next_entry: AtomicU64,
}

/// One waiter's registration; dropping it leaves the map.
pub struct Watch {
    registry: Arc<Registry>,
    image: ImageId,
    entry: u64,
    notify: Arc<Notify>,
}

impl Watchers {
    /// Starts routing the feed's events; call from within the runtime. The routing task ends
    /// when the feed closes, which dropping the last `Watchers` handle (and with it the feed)
    /// brings about, unless something else holds the feed: then at its next event.
    pub fn start(feed: Arc<dyn StatusFeed>) -> Self {
        let registry = Arc::new(Registry::default());
        let mut events = feed.subscribe();
        let routed = Arc::downgrade(&registry);
        tokio::spawn(async move {
            loop {
                let received = events.recv().await;
                let Some(registry) = Weak::upgrade(&routed) else {
                    return;
                };
                match received {
                    Ok(event) => registry.wake(Some(event.image_id)),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "status events lagged; waking every waiter");
                        registry.wake(None);
                    }
                    Err(RecvError::Closed) => {
                        tracing::debug!("status feed closed; waiters carry on with re-reads");
                        return;
                    }
                }
            }
        });
        Self {
            registry,
            _feed: feed,
        }
    }

    /// Registers interest in `image`'s changes from now on. Take it before reading the
    /// image, so a change between the read and the wait still wakes the waiter.
    pub fn watch(&self, image: ImageId) -> Watch {
        let entry = self.registry.next_entry.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        self.registry
            .lock()
            .entry(image)
            .or_default()
            .insert(entry, Arc::clone(&notify));
        Watch {
            registry: Arc::clone(&self.registry),
            image,
            entry,
            notify,
        }
    }

    /// Images with at least one waiter.
    #[cfg(test)]
    fn images_watched(&self) -> usize {
        self.registry.lock().len()
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The map is consistent after every statement, so a panic elsewhere leaves it usable.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the waiters of `image`, or every waiter for `None`; outside the lock, so
    /// waiters coming and going do not wait for thousands of wake-ups.
    fn wake(&self, image: Option<ImageId>) {
        let woken: Vec<Arc<Notify>> = {
            let waiting = self.lock();
            match image {
                Some(image) => waiting
                    .get(&image)
                    .into_iter()
                    .flat_map(|w| w.values())
                    .cloned()
                    .collect(),
                None => waiting.values().flat_map(|w| w.values()).cloned().collect(),
            }
        };
        woken.iter().for_each(|notify| notify.notify_one());
    }
}

impl Watch {
    /// The image this waiter watches.
    pub fn image(&self) -> ImageId {
        self.image
    }

    /// Resolves at the next event for this image (at once if one came since the last call).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiting = self.registry.lock();
        if let Some(entries) = waiting.get_mut(&self.image) {
            entries.remove(&self.entry);
            if entries.is_empty() {
                waiting.remove(&self.image);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt;
    use pixmill_actors::events::{StatusChanged, StatusEvents};
    use pixmill_actors::{Owner, Status};

    use super::*;
    use crate::backends::memory_events::MemoryEvents;

    fn changed(id: ImageId) -> StatusChanged {
        StatusChanged {
            image_id: id,
            owner: Owner::parse("someone").expect("a valid owner"),
            status: Status::Completed,
        }
    }

    /// Lets the routing task run until `watch` is woken, or says it was not.
    async fn woken(watch: &Watch) -> bool {
        tokio::time::timeout(Duration::from_millis(200), watch.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn an_event_wakes_the_waiters_of_its_image_only() {
        let feed = Arc::new(MemoryEvents::default());
        let watchers = Watchers::start(feed.clone());
        let (a, b) = (ImageId::new(), ImageId::new());
        let (first_a, second_a, only_b) = (watchers.watch(a), watchers.watch(a), watchers.watch(b));

        feed.publish(changed(a)).await;

        assert!(woken(&first_a).await);
        assert!(woken(&second_a).await);
        assert!(!woken(&only_b).await, "a waiter on another image was woken");
    }

    #[tokio::test]
    async fn an_event_between_two_waits_is_kept_for_the_next() {
        let feed = Arc::new(MemoryEvents::default());
        let watchers = Watchers::start(feed.clone());
        let id = ImageId::new();
        let watch = watchers.watch(id);

        feed.publish(changed(id)).await;
        tokio::time::sleep(Duration::from_millis(50)).await; // routed while no one waits

        assert_eq!(watch.changed().now_or_never(), Some(()));
        assert_eq!(watch.changed().now_or_never(), None, "one event, one wake");
    }

    #[tokio::test]
    async fn lost_events_wake_every_waiter() {
        let feed = Arc::new(MemoryEvents::default());
        let watchers = Watchers::start(feed.clone());
        let watch = watchers.watch(ImageId::new());

        // More events for other images than the feed keeps, before the router runs: it
        // learns it lagged, not whose events it lost.
        for _ in 0..2_000 {
            feed.publish(changed(ImageId::new())).await;
        }

        assert!(woken(&watch).await, "a waiter slept through lost events");
    }

    /// A feed that says when it is dropped (a Redis feed drops its subscription then).
    struct DropCounting {
        events: MemoryEvents,
        dropped: Arc<std::sync::atomic::AtomicBool>,
    }

    impl StatusFeed for DropCounting {
        fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StatusChanged> {
            self.events.subscribe()
        }
    }

    impl Drop for DropCounting {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_feed_lives_as_long_as_its_watchers() {
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchers = Watchers::start(Arc::new(DropCounting {
            events: MemoryEvents::default(),
            dropped: dropped.clone(),
        }));
        tokio::task::yield_now().await;
        assert!(
            !dropped.load(Ordering::SeqCst),
            "the feed was dropped while in use"
        );

        drop(watchers);
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn waiters_leave_the_map_when_dropped() {
        let feed = Arc::new(MemoryEvents::default());
        let watchers = Watchers::start(feed.clone());
        let id = ImageId::new();
        let (one, two) = (watchers.watch(id), watchers.watch(id));
        let other = watchers.watch(ImageId::new());
        assert_eq!(watchers.images_watched(), 2);

        drop(one);
        assert_eq!(watchers.images_watched(), 2);
        drop(two);
        drop(other);
        assert_eq!(watchers.images_watched(), 0);
    }
}
