//! Where verification keys come from: a JWKS, fetched from the issuer or built locally.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use tokio::sync::{Mutex, RwLock};

use super::AuthError;

/// Finds the key a token names.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    async fn key(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError>;

    fn describe(&self) -> String;
}

fn find(set: &JwkSet, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
    let jwk = match kid {
        Some(kid) => set.find(kid),
        // A token without `kid` is accepted only when the set has exactly one key.
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
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
    async fn key(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        find(&self.set, kid)
    }

    fn describe(&self) -> String {
        format!("local issuer key ({} key)", self.set.keys.len())
    }
}

/// Several sources tried in order; a gateway trusting both Keycloak and the local issuer.
pub struct AnyOf(pub Vec<Arc<dyn KeySource>>);

#[async_trait]
impl KeySource for AnyOf {
    async fn key(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        let mut last = AuthError::UnknownKey;
        for source in &self.0 {
            match source.key(kid).await {
                Ok(key) => return Ok(key),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

struct Cached {
    set: JwkSet,
    fetched: Instant,
}

/// An issuer's JWKS over HTTP (Keycloak: `{issuer}/protocol/openid-connect/certs`, found via
/// `{issuer}/.well-known/openid-configuration`). Cached for `max_age`; a token naming an
/// unknown `kid` triggers a refetch, at most once per `min_refetch`, so key rotation works
/// without a restart and a flood of forged `kid`s cannot hammer the issuer.
///
/// Known limit: a key rotated in within `min_refetch` of the last fetch is refused
/// (`unknown_signing_key`) until that interval has passed.
pub struct RemoteJwks {
    http: reqwest::Client,
    issuer: String,
    jwks_url: Option<String>,
    max_age: Duration,
    min_refetch: Duration,
    cache: RwLock<Option<Cached>>,
    /// When the last fetch started. Held for the whole of a fetch, so there is one fetch at
    /// a time and callers arriving meanwhile wait for its keys (at most the two requests'
    /// timeouts) instead of refusing a good token.
    last_attempt: Mutex<Option<Instant>>,
}

#[derive(serde::Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl RemoteJwks {
    pub fn new(issuer: String, jwks_url: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            issuer,
            jwks_url,
            max_age: Duration::from_secs(600),
            min_refetch: Duration::from_secs(10),
            cache: RwLock::new(None),
            last_attempt: Mutex::new(None),
        }
    }

    /// Sets the shortest time between two refetches (default 10 s; `auth.jwks_min_refetch`).
    pub fn with_min_refetch(mut self, min_refetch: Duration) -> Self {
        self.min_refetch = min_refetch;
        self
    }

    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let doc: Discovery = self.get_json(&discovery).await?;
                doc.jwks_uri
            }
        };
        self.get_json(&url).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, AuthError> {
        let response = self.http.get(url).send().await.map_err(|error| {
            tracing::warn!(url, error = %error, "could not reach the token issuer");
            AuthError::KeysUnavailable
        })?;
        let response = response.error_for_status().map_err(|error| {
            tracing::warn!(url, error = %error, "the token issuer refused the key request");
            AuthError::KeysUnavailable
        })?;
        response.json().await.map_err(|error| {
            tracing::warn!(url, error = %error, "the token issuer sent an unreadable document");
            AuthError::KeysUnavailable
        })
    }

    /// The key from the cached set, while that set is younger than `max_age`.
    async fn cached(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        let cache = self.cache.read().await;
        let cached = cache
            .as_ref()
            .filter(|c| c.fetched.elapsed() < self.max_age)?;
        find(&cached.set, kid).ok()
    }

    /// Fetches the set and caches it.
    async fn refresh(&self) -> Result<(), AuthError> {
        let set = self.fetch().await?;
        tracing::info!(keys = set.keys.len(), "fetched the issuer's signing keys");
        *self.cache.write().await = Some(Cached {
            set,
            fetched: Instant::now(),
        });
        Ok(())
    }
}

#[async_trait]
impl KeySource for RemoteJwks {
    async fn key(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        if let Some(key) = self.cached(kid).await {
            return Ok(key);
        }
        let mut last_attempt = self.last_attempt.lock().await;
        // A fetch that finished while this caller waited may have brought the key.
        if let Some(key) = self.cached(kid).await {
            return Ok(key);
        }
        let mut refreshed = Ok(());
        if last_attempt.is_none_or(|at| at.elapsed() >= self.min_refetch) {
            *last_attempt = Some(Instant::now());
            refreshed = self.refresh().await;
        }
        drop(last_attempt);

        // An expired set still serves while the issuer cannot be reached.
        let cache = self.cache.read().await;
        match cache.as_ref() {
            Some(cached) => find(&cached.set, kid),
            None => Err(refreshed.err().unwrap_or(AuthError::KeysUnavailable)),
        }
    }

    fn describe(&self) -> String {
        match &self.jwks_url {
            Some(url) => format!("JWKS {url}"),
            None => format!("OIDC discovery at {}", self.issuer),
        }
    }
}
