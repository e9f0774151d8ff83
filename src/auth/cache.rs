//! Tokens already verified, so that a client's next request skips the signature check.
//!
//! A client sends the same access token with every request until it expires (five minutes
//! by Keycloak's default), and checking an RS256 signature is the one costly step of
//! [`TokenVerifier::verify`](super::TokenVerifier::verify): some 80 µs of CPU per request in
//! the gateway's profile. An entry answers for at most [`MAX_AGE`], never past the token's
//! `exp`, never past the freshness of the key set that checked it (`auth.jwks_max_age`
//! after its fetch; a set served stale during an outage vouches for nothing here), and not
//! once a fetch has brought the issuer a different set (a key rotated in or withdrawn).
//! After any of these the token is verified in full again, with the leeway, exactly as if
//! it had never been seen. Only accepted tokens are kept, and they are kept by their
//! SHA-256, so the map holds no bearer token.
//!
//! Known shortcoming: `nbf` is not looked at again, so a wall clock stepped back by more
//! than `auth.leeway` within [`MAX_AGE`] of a token's first use does not make it "not yet
//! valid" again, as a full check would.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::keys::KeyFreshness;
use super::Principal;

/// How long a verified token is trusted without checking its signature again.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Entries kept at most: far more callers than one gateway serves within [`MAX_AGE`]. An
/// entry is its principal (owner, name, roles: a few hundred bytes for Keycloak's usual
/// tokens), so the map stays within some 16 MB even with long role lists.
pub const CAPACITY: usize = 16_384;

type TokenDigest = [u8; 32];

/// How long a full check's result holds.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The token's `exp`, in seconds since the epoch.
    pub expires: f64,
    /// The key that checked the signature.
    pub key: KeyFreshness,
}

struct Entry {
    principal: Principal,
    trust: Trust,
    /// [`MAX_AGE`] after the full check.
    verified_until: Instant,
}

impl Entry {
    fn is_fresh(&self, now_unix: f64, now: Instant) -> bool {
        now_unix < self.trust.expires && now < self.verified_until && self.trust.key.holds_at(now)
    }
}

/// The verified tokens, by digest.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<TokenDigest, Entry>>,
}

impl VerifiedTokens {
    pub fn digest(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The principal of a token verified within [`MAX_AGE`] that has not expired.
    pub fn get(&self, digest: &TokenDigest) -> Option<Principal> {
        self.get_at(digest, unix_now(), Instant::now())
    }

    /// Keeps what a full check of a token found, for as long as `trust` allows.
    pub fn insert(&self, digest: TokenDigest, principal: Principal, trust: Trust) {
        self.insert_at(digest, principal, trust, unix_now(), Instant::now());
    }

    fn get_at(&self, digest: &TokenDigest, now_unix: f64, now: Instant) -> Option<Principal> {
        let entries = self.lock();
        entries
            .get(digest)
            .filter(|entry| entry.is_fresh(now_unix, now))
            .map(|entry| entry.principal.clone())
    }

    fn insert_at(
        &self,
        digest: TokenDigest,
        principal: Principal,
        trust: Trust,
        now_unix: f64,
        now: Instant,
    ) {
        let entry = Entry {
            principal,
            trust,
            verified_until: now + MAX_AGE,
        };
        // A token accepted only by the leeway, or with a key served stale, is checked in
        // full each time.
        if !entry.is_fresh(now_unix, now) {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(&digest) {
            entries.retain(|_, kept| kept.is_fresh(now_unix, now));
            // Still full of live tokens: start over rather than track recency on every hit;
            // the cost is one full check per caller.
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenDigest, Entry>> {
        // The map is only ever read or replaced whole-entry, so a panic elsewhere while it
        // was held left nothing half-written.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixmill_actors::Owner;

    fn principal(sub: &str) -> Principal {
        Principal {
            owner: Owner::parse(sub.to_owned()).expect("a valid owner"),
            username: None,
            roles: vec!["uploader".to_owned()],
            client_roles: Default::default(),
            expires_at: None,
        }
    }

    const NOW: f64 = 1_800_000_000.0;

    /// A token expiring at `expires`, checked with a key that never goes stale.
    fn until(expires: f64) -> Trust {
        Trust {
            expires,
            key: KeyFreshness::default(),
        }
    }

    #[test]
    fn a_verified_token_is_answered_until_its_exp() {
        let cache = VerifiedTokens::default();
        let start = Instant::now();
        let digest = VerifiedTokens::digest("token-a");
        cache.insert_at(digest, principal("alice"), until(NOW + 30.0), NOW, start);

        let hit = cache.get_at(&digest, NOW + 29.0, start + Duration::from_secs(29));
        assert_eq!(hit, Some(principal("alice")));
        assert_eq!(
            cache.get_at(&digest, NOW + 30.0, start + Duration::from_secs(30)),
            None,
            "an expired token must be checked in full again"
        );
        assert_eq!(
            cache.get_at(&VerifiedTokens::digest("token-b"), NOW, start),
            None
        );
    }

    #[test]
    fn an_entry_is_trusted_for_max_age_at_most() {
        let cache = VerifiedTokens::default();
        let start = Instant::now();
        let digest = VerifiedTokens::digest("long-lived");
        cache.insert_at(digest, principal("bob"), until(NOW + 86_400.0), NOW, start);

        let almost = MAX_AGE - Duration::from_millis(1);
        assert!(cache.get_at(&digest, NOW + 59.0, start + almost).is_some());
        assert_eq!(cache.get_at(&digest, NOW + 60.0, start + MAX_AGE), None);
    }

    #[test]
    fn an_entry_never_outlives_the_freshness_of_its_key_set() {
        let cache = VerifiedTokens::default();
        let start = Instant::now();
        let digest = VerifiedTokens::digest("remote");
        let trust = Trust {
            expires: NOW + 300.0,
            key: KeyFreshness {
                until: Some(start + Duration::from_secs(5)),
                version: None,
            },
        };
        cache.insert_at(digest, principal("grace"), trust, NOW, start);
        let four = Duration::from_secs(4);
        assert!(cache.get_at(&digest, NOW + 4.0, start + four).is_some());
        let five = Duration::from_secs(5);
        assert_eq!(cache.get_at(&digest, NOW + 5.0, start + five), None);

        // A set served stale while the issuer is down vouches for nothing here.
        let stale = Trust {
            expires: NOW + 300.0,
            key: KeyFreshness {
                until: Some(start),
                version: None,
            },
        };
        cache.insert_at(
            VerifiedTokens::digest("stale"),
            principal("heidi"),
            stale,
            NOW,
            start,
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_token_past_its_exp_is_not_kept() {
        // Accepted within the leeway: the next request must be checked (and refused) in full.
        let cache = VerifiedTokens::default();
        let start = Instant::now();
        let digest = VerifiedTokens::digest("in-leeway");
        cache.insert_at(digest, principal("carol"), until(NOW - 5.0), NOW, start);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.get_at(&digest, NOW, start), None);
    }

    #[test]
    fn a_full_cache_drops_stale_entries_first_and_never_grows_past_capacity() {
        let cache = VerifiedTokens::default();
        let start = Instant::now();
        for i in 0..CAPACITY {
            // Half of them expire at NOW + 10.
            let expires = if i % 2 == 0 { NOW + 10.0 } else { NOW + 100.0 };
            let digest = VerifiedTokens::digest(&format!("token-{i}"));
            cache.insert_at(digest, principal("dave"), until(expires), NOW, start);
        }
        assert_eq!(cache.len(), CAPACITY);

        let later = start + Duration::from_secs(20);
        let newcomer = VerifiedTokens::digest("newcomer");
        cache.insert_at(
            newcomer,
            principal("erin"),
            until(NOW + 100.0),
            NOW + 20.0,
            later,
        );
        assert_eq!(
            cache.len(),
            CAPACITY / 2 + 1,
            "only the expired were dropped"
        );
        let live = VerifiedTokens::digest("token-1");
        assert!(cache.get_at(&live, NOW + 20.0, later).is_some());

        // Full of live tokens: it starts over instead of growing.
        for i in 0..CAPACITY {
            let digest = VerifiedTokens::digest(&format!("more-{i}"));
            cache.insert_at(
                digest,
                principal("frank"),
                until(NOW + 100.0),
                NOW + 20.0,
                later,
            );
        }
        // CAPACITY / 2 - 1 inserts filled it, the next one cleared it and stayed, and the
        // CAPACITY / 2 after it joined that one.
        assert_eq!(cache.len(), CAPACITY / 2 + 1);
        assert_eq!(cache.get_at(&newcomer, NOW + 20.0, later), None);
    }
}
