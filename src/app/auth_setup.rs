//! Which tokens a process trusts.

use std::sync::Arc;

use crate::auth::issuer::{IssuerError, LocalIssuer, LOCAL_ISSUER};
use crate::auth::keys::{CachePolicy, HttpClientError, LocalKeys, RemoteJwks};
use crate::auth::verifier::{TokenRules, TrustedIssuer};
use crate::auth::TokenVerifier;
use crate::config::Config;

use super::Mode;

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    #[error(transparent)]
    HttpClient(#[from] HttpClientError),
    #[error(
        "no token issuer configured: set PIXMILL_AUTH__ISSUER to the Keycloak realm URL \
         (e.g. http://localhost:8081/realms/pixmill), or, only for trying pixmill without \
         Keycloak, PIXMILL_AUTH__TRUST_LOCAL_ISSUER_UNSAFE=true"
    )]
    NoIssuer,
}

/// Standalone mode trusts its own issuer (plus Keycloak when one is configured); a gateway
/// trusts Keycloak, and the local issuer only when told to, loudly. A worker trusts the
/// same, for its admin listener's `/v1/system` (operators' tokens); without an issuer it
/// starts anyway and refuses every token there, since it serves no one else.
pub fn verifier(config: &Config, mode: Mode) -> Result<TokenVerifier, AuthSetupError> {
    let auth = &config.auth;
    let mut issuers = Vec::new();
    let trust_local = match mode {
        Mode::Standalone => true,
        Mode::Gateway | Mode::Worker => config.auth.trust_local_issuer_unsafe,
    };
    if let Some(issuer) = &auth.issuer {
        let policy = CachePolicy {
            max_age: auth.jwks_max_age,
            min_refetch: auth.jwks_min_refetch,
            max_stale: auth.jwks_max_stale,
            fetch_timeout: auth.jwks_fetch_timeout,
        };
        let jwks = RemoteJwks::new(issuer.clone(), auth.jwks_url.clone(), policy)?;
        issuers.push(TrustedIssuer {
            iss: issuer.clone(),
            keys: Arc::new(jwks),
        });
    }
    // A worker never makes the key: one of its own would vouch for no token anyone holds.
    let key_missing = !LocalIssuer::exists_in(&config.issuer_dir());
    if trust_local && mode == Mode::Worker && key_missing {
        tracing::warn!(
            key_dir = %config.issuer_dir().display(),
            "trust_local_issuer_unsafe is set, but there is no local key here; this worker trusts only the configured issuer"
        );
    } else if trust_local {
        if mode != Mode::Standalone {
            tracing::warn!(
                key_dir = %config.issuer_dir().display(),
                "UNSAFE: this process trusts tokens minted by `pixmill token` with the local key; never do this in production"
            );
        }
        let local = LocalIssuer::open_or_create(&config.issuer_dir())?;
        issuers.push(TrustedIssuer {
            iss: LOCAL_ISSUER.to_owned(),
            keys: Arc::new(LocalKeys::new(local.jwks())),
        });
    }
    if issuers.is_empty() && mode == Mode::Gateway {
        return Err(AuthSetupError::NoIssuer);
    }
    let rules = TokenRules::new(
        auth.audience.clone(),
        auth.audience_claim,
        &auth.algorithms,
        auth.leeway,
    );
    Ok(TokenVerifier::new(issuers, rules))
}
