//! The in-process fast paths for standalone mode: a status cache and an upload rate limit
//! held in this process's memory. They are correct for one gateway process only; several
//! gateways sharing a database need the Redis ones.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pixmill_actors::ports::BackendError;
use pixmill_actors::{ImageId, ImageRecord, Owner};

use crate::fastpath::{delete_mark_ttl, Cached, RateDecision, RateLimiter, StatusCache};

/// A per-owner upload limit: at most `uploads` uploads in any `window` (a sliding
/// window). Shared by the in-process and the Redis limiter. `uploads = 0` refuses every
/// upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub uploads: u32,
    pub window: Duration,
}

/// Takes a lock whose holder may have panicked: every critical section here leaves the
/// maps consistent after each single statement, so the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`RateLimiter`] in process memory: the times of each owner's recent uploads.
///
/// Memory is one entry per upload inside the window, per owner; owners with no upload in
/// the window are swept out once the map has doubled since the last sweep.
pub struct MemoryRateLimiter {
    config: RateLimitConfig,
    state: Mutex<Windows>,
}

struct Windows {
    uploads: HashMap<Owner, VecDeque<Instant>>,
    sweep_at: usize,
}

const FIRST_SWEEP_AT: usize = 1_024;

impl MemoryRateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            state: Mutex::new(Windows {
                uploads: HashMap::new(),
                sweep_at: FIRST_SWEEP_AT,
            }),
        }
    }

    /// The check at a given instant; [`RateLimiter::check`] passes the current one.
    pub fn check_at(&self, owner: &Owner, now: Instant) -> RateDecision {
        let window = self.config.window;
        let mut state = lock(&self.state);
        if state.uploads.len() >= state.sweep_at {
            state.sweep(now, window);
        }
        let recent = state.uploads.entry(owner.clone()).or_default();
        while recent
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            recent.pop_front();
        }
        if recent.len() < self.config.uploads as usize {
            recent.push_back(now);
            return RateDecision::Allowed;
        }
        // A refused upload is not counted, so retrying early does not push the limit out.
        let retry_after = match recent.front() {
            Some(oldest) => (*oldest + window).saturating_duration_since(now),
            None => window,
        };
        RateDecision::Limited {
            retry_after: retry_after.max(Duration::from_millis(1)),
        }
    }
}

impl Windows {
    fn sweep(&mut self, now: Instant, window: Duration) {
        self.uploads.retain(|_, recent| {
            recent
                .back()
                .is_some_and(|at| now.saturating_duration_since(*at) < window)
        });
        self.sweep_at = (self.uploads.len() * 2).max(FIRST_SWEEP_AT);
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, owner: &Owner) -> Result<RateDecision, BackendError> {
        Ok(self.check_at(owner, Instant::now()))
    }

    fn describe(&self) -> String {
        format!(
            "in-process rate limit, {} uploads per {:?}",
            self.config.uploads, self.config.window
        )
    }
}

/// A [`StatusCache`] in process memory, bounded in size and age.
///
/// When full, expired entries go first, then the document closest to expiry (delete marks
/// stay); that scan is linear in the capacity, which is fine for the few thousand entries
/// standalone mode keeps.
pub struct MemoryStatusCache {
    ttl: Duration,
    capacity: usize,
    /// Per image: its final document, or `None` for the mark of a delete; and the expiry.
    entries: Mutex<HashMap<ImageId, (Option<ImageRecord>, Instant)>>,
}

type Entries = HashMap<ImageId, (Option<ImageRecord>, Instant)>;

impl MemoryStatusCache {
    /// A cache holding at most `capacity` records (at least one), each for at most `ttl`.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Frees a place for a new entry, a delete's mark when `for_mark`; false when there is
    /// none it may take. Expired entries go first, then the document closest to expiry. A
    /// mark gives way only to another mark: losing a document costs a read of the store,
    /// losing a mark could let a late fill bring a deleted image back.
    fn make_room(&self, entries: &mut Entries, now: Instant, for_mark: bool) -> bool {
        entries.retain(|_, (_, expires)| *expires > now);
        if entries.len() < self.capacity {
            return true;
        }
        let victim = entries
            .iter()
            .filter(|(_, (entry, _))| for_mark || entry.is_some())
            .min_by_key(|(_, (entry, expires))| (entry.is_none(), *expires))
            .map(|(id, _)| *id);
        victim.is_some_and(|id| entries.remove(&id).is_some())
    }

    /// Stores `entry` for `id` for `ttl`; with `replace` false, only where no live entry is.
    fn store(&self, id: ImageId, entry: Option<ImageRecord>, ttl: Duration, replace: bool) {
        let mut entries = lock(&self.entries);
        let now = Instant::now();
        let live = entries.get(&id).is_some_and(|(_, expires)| *expires > now);
        if live && !replace {
            return;
        }
        let full = entries.len() >= self.capacity && !entries.contains_key(&id);
        if full && !self.make_room(&mut entries, now, entry.is_none()) {
            return;
        }
        entries.insert(id, (entry, now + ttl));
    }
}

#[async_trait]
impl StatusCache for MemoryStatusCache {
    async fn get(&self, id: ImageId) -> Result<Cached, BackendError> {
        let mut entries = lock(&self.entries);
        let now = Instant::now();
        match entries.get(&id) {
            Some((Some(record), expires)) if *expires > now => {
                Ok(Cached::Final(Box::new(record.clone())))
            }
            Some((None, expires)) if *expires > now => Ok(Cached::Deleted),
            Some(_) => {
                entries.remove(&id);
                Ok(Cached::Unknown)
            }
            None => Ok(Cached::Unknown),
        }
    }

    async fn put(&self, record: &ImageRecord) -> Result<(), BackendError> {
        self.store(record.id, Some(record.clone()), self.ttl, false);
        Ok(())
    }

    async fn mark_deleted(&self, id: ImageId) -> Result<(), BackendError> {
        self.store(id, None, delete_mark_ttl(self.ttl), true);
        Ok(())
    }

    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "in-process status cache, {} entries for {:?}",
            self.capacity, self.ttl
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(uploads: u32, window: Duration) -> MemoryRateLimiter {
        MemoryRateLimiter::new(RateLimitConfig { uploads, window })
    }

    #[test]
    fn the_upload_after_the_limit_waits_for_the_oldest_to_leave_the_window() {
        let limiter = limiter(3, Duration::from_secs(60));
        let alice = Owner::parse("alice").unwrap();
        let start = Instant::now();
        for second in 0..3 {
            let at = start + Duration::from_secs(second);
            assert_eq!(limiter.check_at(&alice, at), RateDecision::Allowed);
        }

        let refused = limiter.check_at(&alice, start + Duration::from_secs(10));

        assert_eq!(
            refused,
            RateDecision::Limited {
                retry_after: Duration::from_secs(50)
            }
        );
        let later = start + Duration::from_secs(60);
        assert_eq!(limiter.check_at(&alice, later), RateDecision::Allowed);
    }

    #[test]
    fn owners_have_separate_limits() {
        let limiter = limiter(1, Duration::from_secs(60));
        let now = Instant::now();
        let alice = Owner::parse("alice").unwrap();
        let bob = Owner::parse("bob").unwrap();

        assert_eq!(limiter.check_at(&alice, now), RateDecision::Allowed);
        assert!(matches!(
            limiter.check_at(&alice, now),
            RateDecision::Limited { .. }
        ));
        assert_eq!(limiter.check_at(&bob, now), RateDecision::Allowed);
    }

    #[test]
    fn idle_owners_are_swept() {
        let limiter = limiter(5, Duration::from_secs(1));
        let start = Instant::now();
        for n in 0..FIRST_SWEEP_AT {
            let owner = Owner::parse(format!("owner-{n}")).unwrap();
            limiter.check_at(&owner, start);
        }
        let alice = Owner::parse("alice").unwrap();

        limiter.check_at(&alice, start + Duration::from_secs(2));

        assert_eq!(lock(&limiter.state).uploads.len(), 1);
    }

    fn record() -> ImageRecord {
        let now = chrono::Utc::now();
        ImageRecord {
            id: ImageId::new(),
            owner: Owner::parse("alice").unwrap(),
            status: pixmill_actors::Status::Pending,
            spec: pixmill_actors::JobSpec::single(
                pixmill_actors::Pipeline::default_thumbnail(),
                pixmill_actors::OutputSpec::default(),
            ),
            original: pixmill_actors::StoredImage {
                key: "raw/x".to_owned(),
                format: pixmill_actors::ImageFormat::Png,
                width: 1,
                height: 1,
                bytes: 1,
                sha256: "00".repeat(32),
                frames: 1,
            },
            variants: Vec::new(),
            error: None,
            callback_url: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn cache_hits_until_deleted_and_stays_bounded() {
        let cache = MemoryStatusCache::new(Duration::from_secs(60), 1);
        let (first, second) = (record(), record());

        cache.put(&first).await.unwrap();
        assert_eq!(
            cache.get(first.id).await.unwrap(),
            Cached::Final(Box::new(first.clone()))
        );
        cache.mark_deleted(first.id).await.unwrap();
        assert_eq!(cache.get(first.id).await.unwrap(), Cached::Deleted);
        // A read that fetched the row before the delete comes back late: still deleted.
        cache.put(&first).await.unwrap();
        assert_eq!(cache.get(first.id).await.unwrap(), Cached::Deleted);

        // Full of a mark, the cache keeps the mark and not the next document.
        cache.put(&second).await.unwrap();
        assert_eq!(cache.get(first.id).await.unwrap(), Cached::Deleted);
        assert_eq!(cache.get(second.id).await.unwrap(), Cached::Unknown);
    }

    #[tokio::test]
    async fn at_capacity_documents_give_way_before_delete_marks() {
        let cache = MemoryStatusCache::new(Duration::from_secs(60), 2);
        let (deleted, older, newer, third) = (record(), record(), record(), record());
        cache.mark_deleted(deleted.id).await.unwrap();
        cache.put(&older).await.unwrap();

        // The mark was stored first and expires first (everything lives 60 s here), yet
        // the document goes.
        cache.put(&newer).await.unwrap();
        assert_eq!(cache.get(deleted.id).await.unwrap(), Cached::Deleted);
        assert_eq!(cache.get(older.id).await.unwrap(), Cached::Unknown);
        assert_eq!(
            cache.get(newer.id).await.unwrap(),
            Cached::Final(Box::new(newer.clone()))
        );

        // A new mark takes a document's place too.
        cache.mark_deleted(third.id).await.unwrap();
        assert_eq!(cache.get(third.id).await.unwrap(), Cached::Deleted);
        assert_eq!(cache.get(deleted.id).await.unwrap(), Cached::Deleted);
        assert_eq!(cache.get(newer.id).await.unwrap(), Cached::Unknown);
    }

    #[tokio::test]
    async fn expired_entries_are_misses() {
        let cache = MemoryStatusCache::new(Duration::ZERO, 8);
        let entry = record();

        cache.put(&entry).await.unwrap();

        assert_eq!(cache.get(entry.id).await.unwrap(), Cached::Unknown);
    }
}
