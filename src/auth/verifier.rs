use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use pixmill_actors::Owner;
use serde::Deserialize;

use super::keys::KeySource;
use super::AuthError;

/// The caller, as its token describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `sub`: the owner of everything this caller uploads.
    pub owner: Owner,
    /// `preferred_username`, for logs.
    pub username: Option<String>,
    /// `realm_access.roles`.
    pub roles: Vec<String>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(a) => a == wanted,
            Self::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

#[derive(Deserialize, Default)]
struct RealmAccess {
    #[serde(default)]
    roles: Vec<String>,
}

/// The claims pixmill reads; `exp`, `nbf` and `iss` are checked by the JWT library.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    aud: Option<Audience>,
    azp: Option<String>,
    preferred_username: Option<String>,
    #[serde(default)]
    realm_access: RealmAccess,
}

/// Verifies bearer tokens against one issuer's keys.
pub struct TokenVerifier {
    issuers: Vec<String>,
    audience: String,
    leeway_secs: u64,
    keys: Arc<dyn KeySource>,
}

/// Only asymmetric algorithms, so a public key can never double as an HMAC secret.
const ALLOWED: [Algorithm; 1] = [Algorithm::RS256];

/// Longest token looked at. Keycloak's access tokens are a few KiB even with many roles;
/// anything longer is refused as malformed before a byte of it is decoded, so a client
/// cannot make every request pay for base64 and JSON work on a huge header.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

impl TokenVerifier {
    pub fn new(
        issuers: Vec<String>,
        audience: String,
        leeway_secs: u64,
        keys: Arc<dyn KeySource>,
    ) -> Self {
        Self {
            issuers,
            audience,
            leeway_secs,
            keys,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "issuers {:?}, audience {}, keys from {}",
            self.issuers,
            self.audience,
            self.keys.describe()
        )
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let header = decode_header(token).map_err(|_| refusal_of_unreadable_header(token))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(AuthError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
        }
        if header.jku.is_some() {
            return Err(AuthError::ForbiddenHeader("jku"));
        }
        if header.x5u.is_some() {
            return Err(AuthError::ForbiddenHeader("x5u"));
        }
        if header.jwk.is_some() {
            return Err(AuthError::ForbiddenHeader("jwk"));
        }
        let key = self.keys.key(header.kid.as_deref()).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = ALLOWED.to_vec();
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        // The audience is checked below, so that Keycloak's `azp` can stand in for a
        // missing `aud`.
        validation.validate_aud = false;
        validation.set_issuer(&self.issuers);
        validation.required_spec_claims = HashSet::from(["exp".to_owned(), "iss".to_owned()]);

        let data = decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            JwtErrorKind::ExpiredSignature => AuthError::Expired,
            JwtErrorKind::ImmatureSignature => AuthError::NotYetValid,
            JwtErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            JwtErrorKind::InvalidSignature => AuthError::BadSignature,
            JwtErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
            JwtErrorKind::InvalidAlgorithm => {
                AuthError::AlgorithmNotAllowed(format!("{:?}", header.alg))
            }
            _ => AuthError::Malformed,
        })?;
        let claims = data.claims;

        let audience_ok = match &claims.aud {
            Some(aud) => aud.contains(&self.audience),
            None => claims.azp.as_deref() == Some(self.audience.as_str()),
        };
        if !audience_ok {
            return Err(AuthError::WrongAudience);
        }
        let sub = claims
            .sub
            .ok_or_else(|| AuthError::MissingClaim("sub".to_owned()))?;
        let owner = Owner::parse(sub).map_err(|_| AuthError::MissingClaim("sub".to_owned()))?;
        Ok(Principal {
            owner,
            username: claims.preferred_username,
            roles: claims.realm_access.roles,
        })
    }
}

/// Why a header jsonwebtoken cannot read is refused: an algorithm it does not even know
/// (`none`, the unsigned-token attack, above all) is named as such, so the client reads
/// `algorithm_not_allowed` rather than a vague `malformed_token`.
fn refusal_of_unreadable_header(token: &str) -> AuthError {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[derive(Deserialize)]
    struct AlgOnly {
        alg: String,
    }
    token
        .split('.')
        .next()
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|json| serde_json::from_slice::<AlgOnly>(&json).ok())
        .filter(|header| {
            header
                .alg
                .parse::<Algorithm>()
                .map_or(true, |alg| !ALLOWED.contains(&alg))
        })
        .map_or(AuthError::Malformed, |header| {
            AuthError::AlgorithmNotAllowed(header.alg)
        })
}
