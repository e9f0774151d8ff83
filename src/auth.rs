//! Bearer tokens: who is calling.
//!
//! Every token, Keycloak's or the standalone issuer's, goes through the one
//! [`verifier::TokenVerifier`]: [`header::screen`] refuses what is wrong before any key is
//! looked at (an algorithm not configured, a key reference in the header), the `iss` picks
//! the issuer and only that issuer's keys ([`keys::RemoteJwks`] from the issuer's JWKS, or
//! [`keys::LocalKeys`] from the key in the data dir), and the signature, `iss`, `exp`,
//! `nbf` (when present) and the audience are checked ([`policy`]). Roles are read from both
//! of Keycloak's places ([`roles`]). A token that passed is answered from [`cache`] for up to
//! a minute, never past its `exp` nor past the key set that checked it.

pub mod cache;
pub mod error;
pub mod header;
pub mod issuer;
pub mod keys;
pub mod policy;
pub mod roles;
pub mod verifier;

pub use error::AuthError;
pub use verifier::{Principal, TokenVerifier};
