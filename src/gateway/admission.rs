//! Who may start an upload, decided before a byte of its body is read: the upload role, the
//! owner's share of the upload slots and the owner's upload rate.
//!
//! These checks run in the upload-slot extractor (`api::upload_slot`), right after the
//! bearer token and before the form. Were they to run after the body, a caller without the
//! role, or one over its rate, could still hold slots with slow bodies until each ended in
//! `408`, and the rate limit would never count those requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pixmill_actors::Owner;
use poem::http::StatusCode;

use super::Gateway;
use crate::api::errors::ApiError;
use crate::auth::Principal;
use crate::fastpath::RateDecision;

/// Uploads in progress per owner, in this gateway process; at most `cap` each.
///
/// Known limit: the count is per gateway process, like `server.max_concurrent_uploads`; an
/// owner may hold `cap` uploads on each gateway behind a load balancer.
pub struct OwnerUploads {
    cap: usize,
    in_progress: Arc<Mutex<HashMap<Owner, usize>>>,
}

/// One owner's claim on an upload; released (the count decremented, the entry removed at
/// zero) when the upload's request ends, whatever its outcome.
pub struct OwnerPermit {
    owner: Owner,
    in_progress: Arc<Mutex<HashMap<Owner, usize>>>,
}

/// Every critical section leaves the map consistent after each single statement, so a lock
/// whose holder panicked is still usable.
fn lock(map: &Mutex<HashMap<Owner, usize>>) -> MutexGuard<'_, HashMap<Owner, usize>> {
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

impl OwnerUploads {
    /// `cap` below 1 is read as 1: a cap of 0 would refuse every upload.
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            in_progress: Arc::default(),
        }
    }

    /// A permit for `owner`, or `None` when the owner already has `cap` uploads in progress.
    pub fn try_acquire(&self, owner: &Owner) -> Option<OwnerPermit> {
        let mut in_progress = lock(&self.in_progress);
        let count = in_progress.entry(owner.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(OwnerPermit {
            owner: owner.clone(),
            in_progress: self.in_progress.clone(),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

impl Drop for OwnerPermit {
    fn drop(&mut self) {
        let mut in_progress = lock(&self.in_progress);
        if let Some(count) = in_progress.get_mut(&self.owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_progress.remove(&self.owner);
            }
        }
    }
}

/// `Retry-After` in whole seconds, rounded up: a client told to come back in 1 s when the
/// window frees in 1.9 s would be refused again. Never 0, which would invite a busy loop.
pub fn retry_after_seconds(retry_after: Duration) -> u64 {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    seconds.max(1)
}

impl Gateway {
    /// Admits `who` to start an upload: the role, then a share of the owner's concurrent
    /// uploads, then one count against the owner's rate. The order keeps refusals cheap and
    /// keeps an upload refused for its concurrency from spending its rate.
    pub async fn admit_upload(&self, who: &Principal) -> Result<OwnerPermit, ApiError> {
        if let Some(role) = &self.upload_role {
            self.require_role(who, role)?;
        }
        let Some(permit) = self.owner_uploads.try_acquire(&who.owner) else {
            tracing::debug!(owner = %who.owner, cap = self.owner_uploads.cap(), "upload refused: owner has every upload slot it may hold");
            return Err(too_many_concurrent(self.owner_uploads.cap()));
        };
        self.check_rate(who).await?;
        Ok(permit)
    }

    async fn check_rate(&self, who: &Principal) -> Result<(), ApiError> {
        match self.limiter.check(&who.owner).await {
            Ok(RateDecision::Allowed) => Ok(()),
            Ok(RateDecision::Limited { retry_after }) => {
                let seconds = retry_after_seconds(retry_after);
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many uploads; try again in {seconds} s"),
                );
                error.retry_after = Some(seconds);
                Err(error)
            }
            Err(error) => {
                // Failing open: a rate-limiter outage must not become an upload outage.
                crate::metrics::note_backend_error(&error);
                tracing::warn!(error = %error, owner = %who.owner, "rate limiter unavailable; allowing the upload");
                Ok(())
            }
        }
    }
}

fn too_many_concurrent(cap: usize) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_concurrent_uploads",
        if cap == 1 {
            "you have an upload in progress, the most allowed at once; wait for it to end"
                .to_owned()
        } else {
            format!(
                "you have {cap} uploads in progress, the most allowed at once; wait for one to end"
            )
        },
    );
    // The shortest useful wait: uploads end within the request timeout, most far sooner.
    error.retry_after = Some(1);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1_900)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn an_owner_holds_at_most_cap_permits_and_gets_them_back() {
        let uploads = OwnerUploads::new(2);
        let owner = |name: &str| Owner::parse(name).expect("valid owner");
        let (alice, bob) = (owner("alice"), owner("bob"));

        let first = uploads.try_acquire(&alice).expect("first");
        let second = uploads.try_acquire(&alice).expect("second");
        assert!(uploads.try_acquire(&alice).is_none(), "a third at once");
        assert!(uploads.try_acquire(&bob).is_some(), "bob has his own share");

        drop(first);
        let third = uploads
            .try_acquire(&alice)
            .expect("a released permit is reusable");
        drop((second, third));
        assert!(
            lock(&uploads.in_progress).is_empty(),
            "idle owners are forgotten"
        );
    }
}
