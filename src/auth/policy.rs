//! The configurable parts of token checking, as types the configuration is parsed into, so
//! that a setting pixmill cannot honour safely stops the process at start.

use std::fmt;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer, Serialize};

/// A signature algorithm tokens may use: an asymmetric one only (RSA, RSA-PSS, ECDSA,
/// EdDSA). An HMAC algorithm is refused when the configuration is read: its key is a shared
/// secret, and a verifier holding only the issuer's *public* key that accepted HS256 could
/// be fooled by a token keyed with that public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SigningAlgorithm(Algorithm);

/// The names `auth.algorithms` accepts, for the error message.
const ASYMMETRIC: &str = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

impl SigningAlgorithm {
    pub const RS256: Self = Self(Algorithm::RS256);

    pub fn parse(name: &str) -> Result<Self, String> {
        let algorithm: Algorithm = name.parse().map_err(|_| {
            format!("unknown signature algorithm `{name}`; use one of {ASYMMETRIC}")
        })?;
        if algorithm.family() == jsonwebtoken::AlgorithmFamily::Hmac {
            return Err(format!(
                "`{name}` is a shared-secret (HMAC) algorithm, which a verifier holding only \
                 public keys must never accept; use one of {ASYMMETRIC}"
            ));
        }
        Ok(Self(algorithm))
    }

    pub fn algorithm(self) -> Algorithm {
        self.0
    }
}

impl TryFrom<String> for SigningAlgorithm {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Self::parse(&name)
    }
}

impl From<SigningAlgorithm> for String {
    fn from(algorithm: SigningAlgorithm) -> Self {
        format!("{:?}", algorithm.0)
    }
}

/// `auth.algorithms`: at least one, since an empty list would refuse every token.
pub fn non_empty_algorithms<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SigningAlgorithm>, D::Error> {
    let algorithms = Vec::<SigningAlgorithm>::deserialize(deserializer)?;
    if algorithms.is_empty() {
        return Err(serde::de::Error::custom(format!(
            "auth.algorithms is empty, which would refuse every token; use one or more of {ASYMMETRIC}"
        )));
    }
    Ok(algorithms)
}

/// Which claim must name this API (`auth.audience`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudienceClaim {
    /// `aud` must contain the audience; a token without `aud` is refused.
    Aud,
    /// `azp` (Keycloak: the client the token was issued to) must be the audience; `aud` is
    /// ignored.
    Azp,
    /// `aud` decides when the token has one; only a token without `aud` is judged by its
    /// `azp`. Keycloak adds `aud` only through an audience mapper, so this accepts both a
    /// realm with the mapper and one where the API's own client requests the tokens.
    #[default]
    AudOrAzp,
}

impl AudienceClaim {
    /// Whether a token with these claims is addressed to `audience`.
    pub fn accepts(self, aud: Option<&[String]>, azp: Option<&str>, audience: &str) -> bool {
        let in_aud = || aud.is_some_and(|all| all.iter().any(|a| a == audience));
        let is_azp = || azp == Some(audience);
        match self {
            Self::Aud => in_aud(),
            Self::Azp => is_azp(),
            Self::AudOrAzp if aud.is_some() => in_aud(),
            Self::AudOrAzp => is_azp(),
        }
    }
}

impl fmt::Display for AudienceClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Aud => "aud",
            Self::Azp => "azp",
            Self::AudOrAzp => "aud_or_azp",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_algorithms_parse() {
        for good in [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ] {
            let parsed = SigningAlgorithm::parse(good).expect(good);
            assert_eq!(String::from(parsed), good);
        }
        for bad in ["HS256", "HS384", "HS512", "none", "rs256", ""] {
            assert!(SigningAlgorithm::parse(bad).is_err(), "{bad}");
        }
        let hmac = SigningAlgorithm::parse("HS256").expect_err("refused");
        assert!(hmac.contains("shared-secret"), "{hmac}");
    }

    #[test]
    fn each_audience_rule_reads_its_claim() {
        let api = "pixmill-api";
        let aud = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let to_api = aud(&[api, "account"]);
        let elsewhere = aud(&["account"]);
        use AudienceClaim::*;
        assert!(Aud.accepts(Some(&to_api), None, api));
        assert!(!Aud.accepts(None, Some(api), api));
        assert!(Azp.accepts(Some(&elsewhere), Some(api), api));
        assert!(!Azp.accepts(Some(&to_api), Some("pixmill-cli"), api));
        assert!(AudOrAzp.accepts(Some(&to_api), Some("pixmill-cli"), api));
        assert!(AudOrAzp.accepts(None, Some(api), api));
        assert!(
            !AudOrAzp.accepts(Some(&elsewhere), Some(api), api),
            "aud decides"
        );
        assert!(!AudOrAzp.accepts(None, None, api));
    }
}
