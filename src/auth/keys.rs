//! Where verification keys come from: a JWKS, fetched from the issuer or built locally.
//! Each key source belongs to one issuer (see [`super::verifier::TrustedIssuer`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock as StdRwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use super::AuthError;

/// A key that can check a token's signature, and for how long.
pub struct SigningKey {
    pub key: Arc<DecodingKey>,
    pub freshness: KeyFreshness,
}

/// How long a key may be trusted without asking its issuer again. What a token verified
/// with the key is remembered for ([`super::cache`]) goes no further, so remembering never
/// outlasts the key. The default is a key trusted for good (the standalone issuer's: its set
/// cannot change while the process runs).
#[derive(Clone, Debug, Default)]
pub struct KeyFreshness {
    /// When the set the key came from stops being fresh (`auth.jwks_max_age` after its
    /// fetch).
    pub until: Option<Instant>,
    /// The fetch that set came from: a later fetch that brought a different set (a key
    /// rotated in or withdrawn) ends the key's freshness before `until`.
    pub version: Option<SetVersion>,
}

impl KeyFreshness {
    /// Whether the key is still as fresh at `now` as it was when it was looked up.
    pub fn holds_at(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now < until)
            && self.version.as_ref().is_none_or(SetVersion::is_current)
    }
}

/// Which of an issuer's key sets a key came from.
#[derive(Clone, Debug)]
pub struct SetVersion {
    current: Arc<AtomicU64>,
    seen: u64,
}

impl SetVersion {
    /// Whether the issuer's keys are still the set this key came from.
    fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire) == self.seen
    }
}

/// Finds the key a token names.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The key published under `kid` that can check an `alg` signature.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<SigningKey, AuthError>;

    /// Whether keys are at hand to check tokens with, for readiness: `Err` says why not.
    /// A source that holds its keys is always ready.
    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    fn describe(&self) -> String;
}

/// Whether `jwk` can check a signature made with `alg`: a signing key (not one published
/// for encryption, as Keycloak's `RSA-OAEP` key is) of the algorithm's key type and curve.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return false;
    }
    match (&jwk.algorithm, alg.family()) {
        (AlgorithmParameters::RSA(_), AlgorithmFamily::Rsa) => true,
        (AlgorithmParameters::EllipticCurve(ec), AlgorithmFamily::Ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        (AlgorithmParameters::OctetKeyPair(_), AlgorithmFamily::Ed) => true,
        // A symmetric (`oct`) key never verifies anything: HMAC is refused at the header.
        _ => false,
    }
}

fn find(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthError> {
    let mut usable = set.keys.iter().filter(|jwk| fits(jwk, alg));
    let jwk = match kid {
        Some(kid) => usable.find(|jwk| jwk.common.key_id.as_deref() == Some(kid)),
        // A token without `kid` is accepted only when exactly one key could have signed it.
        None => usable.next().filter(|_| usable.next().is_none()),
    };
    let jwk = jwk.ok_or(AuthError::UnknownKey)?;
    DecodingKey::from_jwk(jwk)
        .map(Arc::new)
        .map_err(|_| AuthError::UnknownKey)
}

/// A fixed key set: the standalone issuer's public key.
pub struct LocalKeys {
    set: JwkSet,
}

impl LocalKeys {
    pub fn new(set: JwkSet) -> Self {
        Self { set }
    }
}

#[async_trait]
impl KeySource for LocalKeys {
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<SigningKey, AuthError> {
        Ok(SigningKey {
            key: find(&self.set, kid, alg)?,
            freshness: KeyFreshness::default(),
        })
    }

    fn describe(&self) -> String {
        format!("local issuer key ({} key)", self.set.keys.len())
    }
}

/// How [`RemoteJwks`] caches and refetches (the `auth.jwks_*` settings).
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    /// A set younger than this is used without asking the issuer.
    pub max_age: Duration,
    /// Shortest time between two fetches, whatever their cause.
    pub min_refetch: Duration,
    /// How long past `max_age` a set still serves while no fresh one can be fetched.
    pub max_stale: Duration,
    /// Longest one fetch (discovery and key set together) may take.
    pub fetch_timeout: Duration,
}

impl CachePolicy {
    /// Whether a set fetched at `fetched` may still check tokens: within `max_age` plus
    /// `max_stale`.
    fn serves(&self, fetched: Instant) -> bool {
        fetched.elapsed() < self.max_age + self.max_stale
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client for the token issuer: {0}")]
pub struct HttpClientError(#[from] reqwest::Error);

struct Cached {
    set: JwkSet,
    fetched: Instant,
}

/// The bookkeeping of fetches. Its mutex is held for the whole of a fetch, so there is one
/// fetch at a time; a caller that needs the fetch's result (a cold cache, an unknown `kid`,
/// a set past `max_stale`) waits for it, at most `fetch_timeout`.
#[derive(Default)]
struct Fetches {
    last_attempt: Option<Instant>,
    last_failed: bool,
}

impl Fetches {
    fn may_fetch(&self, policy: &CachePolicy) -> bool {
        self.last_attempt
            .is_none_or(|at| at.elapsed() >= policy.min_refetch)
    }

    /// Whole seconds until the next fetch may start, at least one: the `Retry-After` of an
    /// `issuer_unavailable` refusal.
    fn retry_after(&self, policy: &CachePolicy) -> u64 {
        let Some(at) = self.last_attempt else {
            return 1;
        };
        let left = policy.min_refetch.saturating_sub(at.elapsed());
        let rounded_up = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        rounded_up.max(1)
    }
}

/// What the cache can say about a key without asking the issuer.
enum Lookup {
    /// From a set younger than `max_age`.
    Fresh(SigningKey),
    /// From an older set still within `max_stale`: serve it, refresh in the background.
    Stale(SigningKey),
    /// No set, a set past `max_stale`, or a set without this key.
    Missing,
}

/// The shared state of a [`RemoteJwks`]; behind an `Arc` so a background refresh can own it.
struct Inner {
    http: reqwest::Client,
    issuer: String,
    /// `auth.jwks_url`: when set, the discovery document is never fetched.
    configured_jwks_url: Option<String>,
    /// The `jwks_uri` of the discovery document, once read. It is read again only after a
    /// fetch from it failed, in case the issuer moved its keys.
    discovered_jwks_url: StdRwLock<Option<String>>,
    policy: CachePolicy,
    cache: RwLock<Option<Cached>>,
    /// The version of the cached set: bumped, under the cache's write lock, by each fetch
    /// that brings a set different from the one before.
    set_version: Arc<AtomicU64>,
    fetches: Arc<Mutex<Fetches>>,
}

/// An issuer's JWKS over HTTP (Keycloak: `{issuer}/protocol/openid-connect/certs`, found via
/// `{issuer}/.well-known/openid-configuration`), cached for `max_age`.
///
/// Once the set is older than `max_age` the cached keys keep serving while one request
/// starts a refresh in the background, so no request waits on a slow or unreachable issuer;
/// past `max_age + max_stale` without a successful fetch, tokens are refused with
/// `issuer_unavailable`. A token naming a `kid` the set lacks triggers a fetch that its
/// request waits for, so key rotation works without a restart. Every fetch, whatever its
/// cause, is at least `min_refetch` after the previous one, so neither a flood of forged
/// `kid`s nor an outage multiplies the requests to the issuer.
///
/// Known limit: a key rotated in within `min_refetch` of the last fetch is refused
/// (`unknown_signing_key`) until that interval has passed.
pub struct RemoteJwks {
    inner: Arc<Inner>,
}

#[derive(serde::Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl RemoteJwks {
    /// Fails when the HTTP client cannot be built: a client without the fetch timeout would
    /// let a hung issuer hold requests forever, so there is no fallback.
    pub fn new(
        issuer: String,
        jwks_url: Option<String>,
        policy: CachePolicy,
    ) -> Result<Self, HttpClientError> {
        let http = reqwest::Client::builder()
            .timeout(policy.fetch_timeout)
            .connect_timeout(policy.fetch_timeout)
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                issuer,
                configured_jwks_url: jwks_url,
                discovered_jwks_url: StdRwLock::new(None),
                policy,
                cache: RwLock::new(None),
                set_version: Arc::default(),
                fetches: Arc::new(Mutex::new(Fetches::default())),
            }),
        })
    }

    /// Starts a refresh in the background unless one is running or `min_refetch` forbids
    /// it. Never waits: the caller is serving a stale key meanwhile.
    fn refresh_in_background(&self) {
        let Ok(mut fetches) = self.inner.fetches.clone().try_lock_owned() else {
            return;
        };
        if !fetches.may_fetch(&self.inner.policy) {
            return;
        }
        fetches.last_attempt = Some(Instant::now());
        let inner = self.inner.clone();
        // The task holds the fetch lock until the fetch ends (within `fetch_timeout`), so a
        // request that must wait for fresh keys waits for this fetch rather than starting
        // another one.
        tokio::spawn(async move {
            fetches.last_failed = inner.refresh().await.is_err();
        });
    }

    /// The slow path: waits for a running fetch, or fetches if `min_refetch` allows.
    async fn fetch_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<SigningKey, AuthError> {
        let inner = &self.inner;
        let mut fetches = inner.fetches.lock().await;
        // A fetch that finished while this caller waited may have brought the key.
        if let Lookup::Fresh(key) | Lookup::Stale(key) = inner.lookup(kid, alg).await {
            return Ok(key);
        }
        if inner.fetch_if_allowed(&mut fetches).await {
            if let Lookup::Fresh(key) | Lookup::Stale(key) = inner.lookup(kid, alg).await {
                return Ok(key);
            }
        }
        if fetches.last_failed {
            return Err(AuthError::IssuerUnavailable {
                retry_after: fetches.retry_after(&inner.policy),
            });
        }
        Err(AuthError::UnknownKey)
    }
}

impl Inner {
    /// A key set is cached and still serves (see [`CachePolicy::serves`]).
    async fn has_usable_set(&self) -> bool {
        self.cache
            .read()
            .await
            .as_ref()
            .is_some_and(|cached| self.policy.serves(cached.fetched))
    }

    /// Fetches now if `min_refetch` allows, recording the attempt and whether it failed in
    /// `fetches`, whose lock the caller holds so that no other fetch starts meanwhile.
    /// Whether it fetched.
    async fn fetch_if_allowed(&self, fetches: &mut Fetches) -> bool {
        if !fetches.may_fetch(&self.policy) {
            return false;
        }
        fetches.last_attempt = Some(Instant::now());
        fetches.last_failed = self.refresh().await.is_err();
        true
    }

    async fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        let cache = self.cache.read().await;
        let Some(cached) = cache.as_ref() else {
            return Lookup::Missing;
        };
        if !self.policy.serves(cached.fetched) {
            return Lookup::Missing;
        }
        let key = match find(&cached.set, kid, alg) {
            Ok(key) => SigningKey {
                key,
                freshness: KeyFreshness {
                    until: cached.fetched.checked_add(self.policy.max_age),
                    // Read under the same read lock as the set: a fetch replaces both at once.
                    version: Some(SetVersion {
                        current: self.set_version.clone(),
                        seen: self.set_version.load(Ordering::Acquire),
                    }),
                },
            },
            Err(_) => return Lookup::Missing,
        };
        if cached.fetched.elapsed() < self.policy.max_age {
            Lookup::Fresh(key)
        } else {
            Lookup::Stale(key)
        }
    }

    /// Fetches the set, within `fetch_timeout`, and caches it.
    async fn refresh(&self) -> Result<(), AuthError> {
        let unavailable = AuthError::IssuerUnavailable { retry_after: 1 };
        let fetched = tokio::time::timeout(self.policy.fetch_timeout, self.fetch()).await;
        let set = match fetched {
            Ok(Ok(set)) => set,
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                tracing::warn!(
                    issuer = %self.issuer,
                    timeout_ms = self.policy.fetch_timeout.as_millis() as u64,
                    "the token issuer did not answer in time"
                );
                return Err(unavailable);
            }
        };
        tracing::info!(issuer = %self.issuer, keys = set.keys.len(), "fetched the issuer's signing keys");
        let mut cache = self.cache.write().await;
        if cache.as_ref().is_some_and(|old| old.set != set) {
            self.set_version.fetch_add(1, Ordering::AcqRel);
        }
        *cache = Some(Cached {
            set,
            fetched: Instant::now(),
        });
        Ok(())
    }

    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        if let Some(url) = &self.configured_jwks_url {
            return self.get_json(url).await.map_err(FetchFailure::into_auth);
        }
        let known = self
            .discovered_jwks_url
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let url = match known {
            Some(url) => url,
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let doc: Discovery = self
                    .get_json(&discovery)
                    .await
                    .map_err(FetchFailure::into_auth)?;
                self.remember_jwks_url(Some(doc.jwks_uri.clone()));
                doc.jwks_uri
            }
        };
        self.get_json(&url).await.map_err(|failure| {
            // The issuer moved its keys: read the discovery document again next time. Any
            // other failure (an outage) keeps the address, so a down issuer gets one request
            // per attempt, not two.
            if failure.not_found {
                self.remember_jwks_url(None);
            }
            failure.into_auth()
        })
    }

    fn remember_jwks_url(&self, url: Option<String>) {
        *self
            .discovered_jwks_url
            .write()
            .unwrap_or_else(PoisonError::into_inner) = url;
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchFailure> {
        let failed = |not_found| FetchFailure { not_found };
        let response = self.http.get(url).send().await.map_err(|error| {
            tracing::warn!(url, error = %error, "could not reach the token issuer");
            failed(false)
        })?;
        let status = response.status();
        if !status.is_success() {
            tracing::warn!(
                url,
                status = status.as_u16(),
                "the token issuer refused the key request"
            );
            return Err(failed(status == reqwest::StatusCode::NOT_FOUND));
        }
        response.json().await.map_err(|error| {
            tracing::warn!(url, error = %error, "the token issuer sent an unreadable document");
            failed(false)
        })
    }
}

/// A request to the issuer that failed (already logged).
struct FetchFailure {
    not_found: bool,
}

impl FetchFailure {
    fn into_auth(self) -> AuthError {
        AuthError::IssuerUnavailable { retry_after: 1 }
    }
}

#[async_trait]
impl KeySource for RemoteJwks {
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<SigningKey, AuthError> {
        match self.inner.lookup(kid, alg).await {
            Lookup::Fresh(key) => Ok(key),
            Lookup::Stale(key) => {
                self.refresh_in_background();
                Ok(key)
            }
            Lookup::Missing => self.fetch_for(kid, alg).await,
        }
    }

    /// Ready while a key set is cached within `max_age + max_stale`; otherwise it fetches,
    /// if `min_refetch` allows (so probing readiness adds no load on the issuer).
    async fn ready(&self) -> Result<(), String> {
        let inner = &self.inner;
        if inner.has_usable_set().await {
            return Ok(());
        }
        let mut fetches = inner.fetches.lock().await;
        if !inner.has_usable_set().await {
            inner.fetch_if_allowed(&mut fetches).await;
        }
        if inner.has_usable_set().await {
            Ok(())
        } else {
            Err(format!("no signing keys from {}", inner.issuer))
        }
    }

    fn describe(&self) -> String {
        match &self.inner.configured_jwks_url {
            Some(url) => format!("JWKS {url}"),
            None => format!("OIDC discovery at {}", self.inner.issuer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_rest_of_the_refetch_interval_rounded_up() {
        let policy = CachePolicy {
            max_age: Duration::from_secs(600),
            min_refetch: Duration::from_secs(10),
            max_stale: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
        };
        assert_eq!(Fetches::default().retry_after(&policy), 1);
        let just_now = Fetches {
            last_attempt: Some(Instant::now()),
            last_failed: true,
        };
        assert!((9..=10).contains(&just_now.retry_after(&policy)));
    }
}
