//! Bearer tokens: who is calling.
//!
//! Every token, Keycloak's or the standalone issuer's, goes through the one
//! [`verifier::TokenVerifier`]: keys by `kid` from a JWKS, RS256 only, `iss`, `exp`, `nbf`
//! and the audience checked. Standalone mode differs only in where its JWKS comes from
//! ([`keys::LocalKeys`], built from the key in the data dir, instead of
//! [`keys::RemoteJwks`]).

pub mod error;
pub mod issuer;
pub mod keys;
pub mod verifier;

pub use error::AuthError;
pub use verifier::{Principal, TokenVerifier};
