use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{decode, Algorithm, Validation};
use pixmill_actors::Owner;
use serde::Deserialize;

use super::cache::{Trust, VerifiedTokens};
use super::header::{screen, Screened};
use super::keys::{KeySource, SigningKey};
use super::policy::{AudienceClaim, SigningAlgorithm};
use super::roles::{ClientRoles, RoleRequirement};
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
    /// `resource_access.<client>.roles`, by client.
    pub client_roles: ClientRoles,
    /// `exp`: when the token stops vouching for the caller; `None` past what a clock holds.
    pub expires_at: Option<SystemTime>,
}

impl Principal {
    pub fn has_role(&self, role: &RoleRequirement) -> bool {
        role.is_met_by(&self.roles, &self.client_roles)
    }

    /// How long the token remains valid from now (zero once expired); a connection that
    /// outlives its token (an event stream) ends by then.
    pub fn remaining(&self) -> Option<Duration> {
        self.expires_at.map(|at| {
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a],
            Self::Many(all) => all,
        }
    }
}

#[derive(Deserialize, Default)]
struct RoleList {
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
    /// Keycloak's token type: `Bearer` for access tokens, `ID`, `Refresh` or `Logout` for
    /// the others its realm keys sign. Other issuers may leave it out.
    typ: Option<String>,
    /// Seconds since the epoch; required (and checked) by `decode`. A number, as NumericDate
    /// may carry a fraction.
    exp: Option<f64>,
    #[serde(default)]
    realm_access: RoleList,
    #[serde(default)]
    resource_access: std::collections::BTreeMap<String, RoleList>,
}

/// A NumericDate (seconds since the epoch) as a time; `None` past what a clock holds.
fn epoch_time(seconds: f64) -> Option<SystemTime> {
    let since_epoch = Duration::try_from_secs_f64(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(since_epoch)
}

/// An issuer and the keys that may sign its tokens. A key is looked up only among its own
/// issuer's: a token signed with the standalone issuer's key cannot claim Keycloak's `iss`.
pub struct TrustedIssuer {
    pub iss: String,
    pub keys: Arc<dyn KeySource>,
}

/// What a token must satisfy besides its signature (the `auth.*` settings).
#[derive(Clone, Debug)]
pub struct TokenRules {
    pub audience: String,
    pub audience_claim: AudienceClaim,
    /// Never empty, never HMAC: [`SigningAlgorithm`] and the configuration see to both.
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
}

impl TokenRules {
    pub fn new(
        audience: String,
        audience_claim: AudienceClaim,
        algorithms: &[SigningAlgorithm],
        leeway: Duration,
    ) -> Self {
        Self {
            audience,
            audience_claim,
            algorithms: algorithms.iter().map(|a| a.algorithm()).collect(),
            leeway,
        }
    }
}

/// Verifies bearer tokens against the keys of the issuer each names.
pub struct TokenVerifier {
    issuers: Vec<TrustedIssuer>,
    rules: TokenRules,
    verified: VerifiedTokens,
}

impl TokenVerifier {
    pub fn new(issuers: Vec<TrustedIssuer>, rules: TokenRules) -> Self {
        Self {
            issuers,
            rules,
            verified: VerifiedTokens::default(),
        }
    }

    pub fn describe(&self) -> String {
        let issuers: Vec<String> = self
            .issuers
            .iter()
            .map(|i| format!("{} (keys from {})", i.iss, i.keys.describe()))
            .collect();
        format!(
            "issuers [{}], audience {} in {}, algorithms {:?}",
            issuers.join(", "),
            self.rules.audience,
            self.rules.audience_claim,
            self.rules.algorithms
        )
    }

    /// Whether every trusted issuer's keys are at hand; `Err` names the ones that are not.
    pub async fn ready(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        for issuer in &self.issuers {
            if let Err(why) = issuer.keys.ready().await {
                missing.push(why);
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }

    /// The caller a token names, if every check passes. A token accepted within the last
    /// minute is answered from [`VerifiedTokens`] while its `exp` and the key set that
    /// checked it allow.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let digest = VerifiedTokens::digest(token);
        if let Some(principal) = self.verified.get(&digest) {
            return Ok(principal);
        }
        let (principal, trust) = self.verify_in_full(token).await?;
        self.verified.insert(digest, principal.clone(), trust);
        Ok(principal)
    }

    /// Every check, and how long its result holds.
    async fn verify_in_full(&self, token: &str) -> Result<(Principal, Trust), AuthError> {
        let Screened { alg, kid, issuer } = screen(token, &self.rules.algorithms)?;
        let issuer = issuer.ok_or_else(|| AuthError::MissingClaim("iss".to_owned()))?;
        let trusted = self
            .issuers
            .iter()
            .find(|trusted| trusted.iss == issuer)
            .ok_or_else(|| self.wrong_issuer(&issuer))?;
        let SigningKey { key, freshness } = trusted.keys.key(kid.as_deref(), alg).await?;

        let mut validation = Validation::new(alg);
        // The one algorithm the header named, already checked against the configured list:
        // jsonwebtoken wants every listed algorithm to fit the key's type.
        validation.algorithms = vec![alg];
        validation.leeway = self.rules.leeway.as_secs();
        // `nbf` is checked when present but not required: Keycloak's access tokens carry
        // none.
        validation.validate_nbf = true;
        // The audience is checked below, in the claim `audience_claim` names.
        validation.validate_aud = false;
        validation.set_issuer(&[&trusted.iss]);
        validation.required_spec_claims = HashSet::from(["exp".to_owned(), "iss".to_owned()]);

        let data = decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            JwtErrorKind::ExpiredSignature => AuthError::Expired,
            JwtErrorKind::ImmatureSignature => AuthError::NotYetValid,
            JwtErrorKind::InvalidIssuer => self.wrong_issuer(&issuer),
            JwtErrorKind::InvalidSignature => AuthError::BadSignature,
            JwtErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
            JwtErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed(format!("{alg:?}")),
            _ => AuthError::Malformed,
        })?;
        // `decode` has already refused a token without `exp`; this only keeps the type honest.
        let expires = data
            .claims
            .exp
            .ok_or_else(|| AuthError::MissingClaim("exp".to_owned()))?;
        let trust = Trust {
            expires,
            key: freshness,
        };
        Ok((self.principal(data.claims)?, trust))
    }

    fn wrong_issuer(&self, token: &str) -> AuthError {
        let trusted: Vec<&str> = self.issuers.iter().map(|i| i.iss.as_str()).collect();
        AuthError::WrongIssuer {
            token: token.to_owned(),
            trusted: if trusted.is_empty() {
                "none".to_owned()
            } else {
                trusted.join(", ")
            },
        }
    }

    fn principal(&self, claims: Claims) -> Result<Principal, AuthError> {
        // An ID token can name this service too (`azp`, or `aud` with a mapper that adds it
        // to ID tokens), and is signed with the same key; only access tokens grant access.
        if let Some(typ) = claims.typ.filter(|t| !t.eq_ignore_ascii_case("Bearer")) {
            return Err(AuthError::NotAnAccessToken(typ));
        }
        let aud = claims.aud.map(Audience::into_vec);
        let addressed = self.rules.audience_claim.accepts(
            aud.as_deref(),
            claims.azp.as_deref(),
            &self.rules.audience,
        );
        if !addressed {
            let named = |claim: &str, values: &[String]| format!("{claim} {}", values.join(", "));
            let token = match (aud.as_deref(), claims.azp.as_deref()) {
                (Some(aud), Some(azp)) => format!("{} (azp {azp})", named("aud", aud)),
                (Some(aud), None) => named("aud", aud),
                (None, Some(azp)) => format!("azp {azp}"),
                (None, None) => "no audience (neither aud nor azp)".to_owned(),
            };
            return Err(AuthError::WrongAudience {
                token,
                expected: format!("{} in {}", self.rules.audience, self.rules.audience_claim),
            });
        }
        let sub = claims
            .sub
            .ok_or_else(|| AuthError::MissingClaim("sub".to_owned()))?;
        let owner = Owner::parse(sub).map_err(|_| AuthError::MissingClaim("sub".to_owned()))?;
        let client_roles = claims
            .resource_access
            .into_iter()
            .map(|(client, list)| (client, list.roles))
            .collect();
        Ok(Principal {
            owner,
            username: claims.preferred_username,
            roles: claims.realm_access.roles,
            client_roles,
            expires_at: claims.exp.and_then(epoch_time),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::auth::issuer::{LocalIssuer, LOCAL_ISSUER};
    use crate::auth::keys::LocalKeys;

    /// The issuer's key, counting how often a signature needed it.
    struct CountingKeys {
        inner: LocalKeys,
        lookups: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl KeySource for CountingKeys {
        async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<SigningKey, AuthError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.inner.key(kid, alg).await
        }

        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    fn verifier(issuer: &LocalIssuer) -> (TokenVerifier, Arc<AtomicUsize>) {
        let lookups = Arc::new(AtomicUsize::new(0));
        let keys = CountingKeys {
            inner: LocalKeys::new(issuer.jwks()),
            lookups: lookups.clone(),
        };
        let rules = TokenRules::new(
            "pixmill".to_owned(),
            AudienceClaim::default(),
            &[SigningAlgorithm::RS256],
            Duration::from_secs(0),
        );
        let trusted = TrustedIssuer {
            iss: LOCAL_ISSUER.to_owned(),
            keys: Arc::new(keys),
        };
        (TokenVerifier::new(vec![trusted], rules), lookups)
    }

    fn issuer() -> LocalIssuer {
        let pem = include_str!("../../tests/fixtures/issuer/private-key.pem");
        LocalIssuer::from_pem(pem).expect("the fixture key")
    }

    #[tokio::test]
    async fn a_token_seen_before_skips_the_signature_check_and_a_new_one_does_not() {
        let issuer = issuer();
        let (verifier, lookups) = verifier(&issuer);
        let ttl = Duration::from_secs(300);
        let token = issuer.mint("alice", &[], ttl, "pixmill").expect("a token");

        let first = verifier.verify(&token).await.expect("accepted");
        let again = verifier.verify(&token).await.expect("accepted again");
        assert_eq!(first, again);
        assert_eq!(first.owner.as_str(), "alice");
        assert_eq!(lookups.load(Ordering::SeqCst), 1, "checked in full once");

        let other = issuer.mint("bob", &[], ttl, "pixmill").expect("a token");
        assert_eq!(
            verifier.verify(&other).await.expect("bob").owner.as_str(),
            "bob"
        );
        assert_eq!(lookups.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_token_is_checked_in_full_every_time() {
        let issuer = issuer();
        let (verifier, lookups) = verifier(&issuer);
        let wrong_audience = issuer
            .mint("mallory", &[], Duration::from_secs(300), "someone-else")
            .expect("a token");
        for _ in 0..2 {
            assert!(matches!(
                verifier.verify(&wrong_audience).await,
                Err(AuthError::WrongAudience { .. })
            ));
        }
        assert_eq!(lookups.load(Ordering::SeqCst), 2);
    }
}
