/// Why a request was not let in. Each has a stable code; all are `401` except a missing
/// role (`403`) and an issuer whose keys cannot be fetched (`503` with `Retry-After`: the
/// client did nothing wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs an Authorization: Bearer token")]
    MissingToken,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("tokens signed with {0} are not accepted")]
    AlgorithmNotAllowed(String),
    #[error("the token header carries {0}; key references in tokens are not trusted")]
    ForbiddenHeader(&'static str),
    #[error("the token was signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired; get a new one")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Both issuers are named: a realm reached under two host names (`localhost` from a
    /// browser, a service name inside Compose) is the usual cause, and issuers are public.
    #[error("the token was issued by {token:?}, which this service does not trust (it trusts {trusted})")]
    WrongIssuer { token: String, trusted: String },
    #[error("the token was issued for {token}, not for this service ({expected})")]
    WrongAudience { token: String, expected: String },
    #[error("the token is a {0:?} token, not an access token: send the access_token of the issuer's token response")]
    NotAnAccessToken(String),
    #[error("the token lacks a required claim: {0}")]
    MissingClaim(String),
    #[error("this action needs the {0}")]
    MissingRole(String),
    #[error("the token issuer's keys could not be fetched; try again shortly")]
    IssuerUnavailable {
        /// Seconds until pixmill asks the issuer again.
        retry_after: u64,
    },
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed => "malformed_token",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::ForbiddenHeader(_) => "forbidden_token_header",
            Self::UnknownKey => "unknown_signing_key",
            Self::BadSignature => "invalid_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongIssuer { .. } => "wrong_issuer",
            Self::WrongAudience { .. } => "wrong_audience",
            Self::NotAnAccessToken(_) => "not_an_access_token",
            Self::MissingClaim(_) => "missing_claim",
            Self::MissingRole(_) => "missing_role",
            Self::IssuerUnavailable { .. } => "issuer_unavailable",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::MissingRole(_) => 403,
            Self::IssuerUnavailable { .. } => 503,
            _ => 401,
        }
    }

    /// Seconds the client should wait before retrying, for the `Retry-After` header.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::IssuerUnavailable { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750) for this refusal.
    pub fn challenge(&self) -> String {
        match self {
            Self::MissingToken => "Bearer realm=\"pixmill\"".to_owned(),
            Self::MissingRole(_) => {
                "Bearer realm=\"pixmill\", error=\"insufficient_scope\"".to_owned()
            }
            other => format!(
                "Bearer realm=\"pixmill\", error=\"invalid_token\", error_description=\"{}\"",
                other.code()
            ),
        }
    }
}

impl From<super::header::HeaderRefusal> for AuthError {
    fn from(refusal: super::header::HeaderRefusal) -> Self {
        use super::header::HeaderRefusal;
        match refusal {
            HeaderRefusal::Malformed => Self::Malformed,
            HeaderRefusal::AlgorithmNotAllowed(alg) => Self::AlgorithmNotAllowed(alg),
            HeaderRefusal::ForbiddenHeader(name) => Self::ForbiddenHeader(name),
        }
    }
}
