//! A token issuer shaped like a Keycloak realm, on 127.0.0.1 with a port of its own, for
//! tests of a gateway configured with `auth.issuer`.
//!
//! It serves what pixmill reads from Keycloak, at Keycloak's paths:
//! `/realms/{realm}/.well-known/openid-configuration` (`issuer`, `jwks_uri`,
//! `token_endpoint`) and `/realms/{realm}/protocol/openid-connect/certs` (RS256 keys), and
//! mints access tokens with Keycloak's claims. Its keys are fixture PEMs, so no test waits
//! for RSA key generation. A test can rotate to a new key while a gateway runs, slow the
//! key endpoint down, take the realm down, and count how often the key set was fetched.
//!
//! Known limit: the token endpoint is only named in the discovery document, not served;
//! tests mint tokens directly.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json, Path as PathParam};
use poem::{get, handler, EndpointExt, Route, Server};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// The realm every test uses.
pub const REALM: &str = "pixmill";
/// The API's client id: the audience the gateway requires by default.
pub const API_CLIENT: &str = "pixmill-api";
/// The public client users sign in through; Keycloak names it in `azp`.
pub const CLI_CLIENT: &str = "pixmill-cli";

/// Published first; signs tokens until [`Keycloak::rotate`].
const FIRST_KEY: &str = "private-key.pem";
/// Rotated in by [`Keycloak::rotate`].
const NEXT_KEY: &str = "rotated-key.pem";
/// Never published: signs forged tokens.
const UNPUBLISHED_KEY: &str = "other-key.pem";

/// An RSA key as the realm holds it.
#[derive(Clone)]
struct RealmKey {
    kid: String,
    signing: Arc<EncodingKey>,
    /// The public half as a JWK.
    jwk: Value,
}

impl RealmKey {
    fn load(file: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/issuer")
            .join(file);
        let pem = std::fs::read_to_string(&path).expect("fixture key");
        let key = RsaPrivateKey::from_pkcs8_pem(&pem).expect("fixture key is PKCS#8 RSA");
        let n = key.n().to_bytes_be();
        // Keycloak's kids are opaque strings; a digest of the modulus is one.
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(&n));
        let jwk = json!({
            "kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(&n),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        });
        let signing = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("fixture key signs");
        Self {
            kid,
            signing: Arc::new(signing),
            jwk,
        }
    }
}

/// What the server and the minting side share.
struct RealmState {
    base: String,
    /// Published keys, the active (signing) one first.
    published: Mutex<Vec<RealmKey>>,
    jwks_delay: Mutex<Duration>,
    /// Set: every request is answered `503`, as a realm behind a proxy during an outage.
    down: AtomicBool,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

impl RealmState {
    fn issuer(&self) -> String {
        format!("{}/realms/{REALM}", self.base)
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Vec<RealmKey>> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running realm. Dropping it stops its server.
pub struct Keycloak {
    state: Arc<RealmState>,
    next: RealmKey,
    unpublished: RealmKey,
    _stop: oneshot::Sender<()>,
}

impl Keycloak {
    /// Starts the realm on a free loopback port, publishing one key.
    pub async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("tcp")
            .port();
        let state = Arc::new(RealmState {
            base: format!("http://127.0.0.1:{port}"),
            published: Mutex::new(vec![RealmKey::load(FIRST_KEY)]),
            jwks_delay: Mutex::new(Duration::ZERO),
            down: AtomicBool::new(false),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let routes = Route::new()
            .at(
                "/realms/:realm/.well-known/openid-configuration",
                get(discovery),
            )
            .at("/realms/:realm/protocol/openid-connect/certs", get(certs))
            .data(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = Server::new_with_acceptor(acceptor);
        tokio::spawn(server.run_with_graceful_shutdown(
            routes,
            async { drop(stopped.await) },
            Some(Duration::from_secs(1)),
        ));
        Self {
            state,
            next: RealmKey::load(NEXT_KEY),
            unpublished: RealmKey::load(UNPUBLISHED_KEY),
            _stop: stop,
        }
    }

    /// The realm's `iss`, what `auth.issuer` must be set to.
    pub fn issuer(&self) -> String {
        self.state.issuer()
    }

    /// A token as Keycloak issues it to `sub` signing in through the CLI client with
    /// `roles`: addressed to `pixmill-api` (and `account`), signed by the active key.
    pub fn mint(&self, sub: &str, roles: &[&str]) -> String {
        self.token(sub, roles).sign()
    }

    /// A token to adjust before signing.
    pub fn token(&self, sub: &str, roles: &[&str]) -> TokenBuilder {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "exp": now + 300, "iat": now, "nbf": now, "auth_time": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iss": self.issuer(),
            "aud": [API_CLIENT, "account"],
            "sub": sub,
            "typ": "Bearer",
            "azp": CLI_CLIENT,
            "sid": uuid::Uuid::new_v4().to_string(),
            "scope": "openid profile email",
            "realm_access": { "roles": roles },
            "resource_access": { "account": { "roles": ["view-profile"] } },
            "preferred_username": sub,
            "email_verified": false,
        });
        let key = self.state.published()[0].clone();
        TokenBuilder {
            claims,
            kid: key.kid.clone(),
            key,
        }
    }

    /// Rotates keys as Keycloak does when a new key gets the highest priority: the new key
    /// is published and signs from now on; the old one stays published.
    pub fn rotate(&self) {
        let mut published = self.state.published();
        assert!(
            published.iter().all(|k| k.kid != self.next.kid),
            "rotated already"
        );
        published.insert(0, self.next.clone());
    }

    /// Withdraws the realm's first key after [`Keycloak::rotate`], as an administrator
    /// does with a key that leaked: only the rotated key stays published.
    pub fn withdraw_first_key(&self) {
        let mut published = self.state.published();
        assert!(
            published.first().is_some_and(|k| k.kid == self.next.kid),
            "rotate first"
        );
        published.truncate(1);
    }

    /// A token signed by a key the realm never published, under `kid`.
    pub fn forged(&self, sub: &str, kid: &str) -> String {
        let mut token = self.token(sub, &[]);
        token.key = self.unpublished.clone();
        token.kid = kid.to_owned();
        token.sign()
    }

    /// Makes every key-set request take `delay` before it is answered, so that requests
    /// arriving meanwhile overlap the fetch.
    pub fn slow_down_jwks(&self, delay: Duration) {
        *self
            .state
            .jwks_delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Takes the realm down (`true`: every request answered `503`, still counted) or brings
    /// it back.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// How many times the key set was requested.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was requested.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }
}

/// Claims and a signing key, adjusted before [`TokenBuilder::sign`].
pub struct TokenBuilder {
    claims: Value,
    kid: String,
    key: RealmKey,
}

impl TokenBuilder {
    /// Replaces a claim; `Value::Null` removes it (Keycloak without an audience mapper
    /// sends no `aud`).
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        let claims = self.claims.as_object_mut().expect("claims are an object");
        if value.is_null() {
            claims.remove(name);
        } else {
            claims.insert(name.to_owned(), value);
        }
        self
    }

    pub fn sign(self) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid);
        encode(&header, &self.claims, &self.key.signing).expect("sign")
    }
}

#[handler]
fn discovery(
    PathParam(realm): PathParam<String>,
    state: Data<&Arc<RealmState>>,
) -> poem::Result<Json<Value>> {
    known_realm(&realm)?;
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    answering(&state)?;
    let issuer = state.issuer();
    Ok(Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
        "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "grant_types_supported": ["password", "refresh_token", "client_credentials"],
    })))
}

#[handler]
async fn certs(
    PathParam(realm): PathParam<String>,
    state: Data<&Arc<RealmState>>,
) -> poem::Result<Json<Value>> {
    known_realm(&realm)?;
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    answering(&state)?;
    let delay = *state
        .jwks_delay
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let keys: Vec<Value> = state.published().iter().map(|k| k.jwk.clone()).collect();
    Ok(Json(json!({ "keys": keys })))
}

/// A realm taken down with [`Keycloak::set_down`] answers `503`.
fn answering(state: &RealmState) -> poem::Result<()> {
    if state.down.load(Ordering::SeqCst) {
        return Err(poem::Error::from_status(
            poem::http::StatusCode::SERVICE_UNAVAILABLE,
        ));
    }
    Ok(())
}

/// Keycloak answers `404` for a realm it does not have.
fn known_realm(realm: &str) -> poem::Result<()> {
    if realm == REALM {
        return Ok(());
    }
    Err(poem::Error::from_status(poem::http::StatusCode::NOT_FOUND))
}
