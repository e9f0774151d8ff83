//! Tokens for tests: good ones from the fixture issuer key, and every kind of bad one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pixmill::auth::issuer::{LocalIssuer, LOCAL_ISSUER};
use serde_json::{json, Value};

pub fn fixture_key_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/issuer/private-key.pem")
}

fn other_key_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/issuer/other-key.pem")
}

fn fixture_issuer() -> LocalIssuer {
    let pem = std::fs::read_to_string(fixture_key_path()).expect("fixture key");
    LocalIssuer::from_pem(&pem).expect("fixture key parses")
}

/// What `pixmill token --sub SUB` prints, for the fixture key.
pub fn token_for(sub: &str) -> String {
    fixture_issuer()
        .mint(sub, &[], Duration::from_secs(600), "pixmill-api")
        .expect("mint")
}

pub fn token_with_roles(sub: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    fixture_issuer()
        .mint(sub, &roles, Duration::from_secs(600), "pixmill-api")
        .expect("mint")
}

fn kid() -> String {
    let jwks = serde_json::to_value(fixture_issuer().jwks()).expect("jwks");
    jwks["keys"][0]["kid"].as_str().expect("kid").to_owned()
}

/// Claims like the issuer's, with `changes` applied (a `null` removes a claim).
pub fn claims(sub: &str, changes: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": LOCAL_ISSUER, "sub": sub, "aud": "pixmill-api", "azp": "pixmill-cli", "typ": "Bearer",
        "iat": now, "nbf": now, "exp": now + 600, "realm_access": {"roles": []},
    });
    if let (Some(target), Some(changes)) = (claims.as_object_mut(), changes.as_object()) {
        for (key, value) in changes {
            if value.is_null() {
                target.remove(key);
            } else {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    claims
}

/// Signs `claims` with the fixture key (or, with `other_key`, a key the server never saw).
pub fn sign(claims: &Value, other_key: bool) -> String {
    let path = if other_key {
        other_key_path()
    } else {
        fixture_key_path()
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid());
    sign_header(&header, claims, &path)
}

/// Signs `claims` with the fixture key (an RSA key) under `alg`, e.g. PS256 or RS384.
pub fn sign_with_alg(claims: &Value, alg: Algorithm) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid());
    sign_header(&header, claims, &fixture_key_path())
}

/// An RS256 token from the fixture key whose header also carries `extra` (e.g. `jku`), as
/// an attacker pointing the verifier at keys of their own would send it.
pub fn sign_with_header(claims: &Value, extra: Value) -> String {
    let mut header = serde_json::to_value(Header::new(Algorithm::RS256)).expect("header");
    header["kid"] = json!(kid());
    if let (Some(target), Some(extra)) = (header.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    let header: Header = serde_json::from_value(header).expect("header fields");
    sign_header(&header, claims, &fixture_key_path())
}

/// Signs `claims` under `header` with the RSA private key in the PEM file at `key`.
fn sign_header(header: &Header, claims: &Value, key: &Path) -> String {
    let pem = std::fs::read(key).expect("key");
    encode(
        header,
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("pem"),
    )
    .expect("sign")
}

/// The fixture issuer's public key as it appears in its JWKS: what an attacker has.
pub fn issuer_jwk() -> Value {
    let jwks = serde_json::to_value(fixture_issuer().jwks()).expect("jwks");
    jwks["keys"][0].clone()
}

/// The classic key-confusion forgery: HS256, keyed with the issuer's *public* key (PEM).
pub fn sign_hs256_with_public_key(claims: &Value) -> String {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let pem = std::fs::read_to_string(fixture_key_path()).expect("key");
    let public = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
        .expect("fixture key")
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("public pem");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid());
    let key = EncodingKey::from_secret(public.as_bytes()).expect("hmac key");
    encode(&header, claims, &key).expect("sign")
}

/// `alg: none`: the claims with no signature at all.
pub fn unsigned(claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid()});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}
