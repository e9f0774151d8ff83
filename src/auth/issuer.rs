//! The standalone token issuer: an RSA key in the data dir, and tokens shaped like
//! Keycloak's (`iss`, `sub`, `aud`, `azp`, `typ`, `preferred_username`,
//! `realm_access.roles`), so everything downstream treats them exactly alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The `iss` of standalone tokens.
pub const LOCAL_ISSUER: &str = "pixmill-standalone";
/// The client named in `azp` of standalone tokens.
const LOCAL_CLIENT: &str = "pixmill-cli";
const KEY_FILE: &str = "private-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("could not read or write the issuer key in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the issuer key {path} is open to other users (mode {mode:04o}); anyone who can read it can sign tokens for any owner and role, and anyone who can replace it can too: `chmod 600` it")]
    Unprotected { path: PathBuf, mode: u32 },
    #[error("the issuer key in {path} is not a PKCS#8 RSA key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("could not sign the token: {0}")]
    Sign(String),
}

/// The standalone issuer's key pair.
pub struct LocalIssuer {
    key: RsaPrivateKey,
    pem: String,
    kid: String,
}

impl LocalIssuer {
    /// Whether `dir` holds a key already (else [`Self::open_or_create`] makes a new one).
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(KEY_FILE).is_file()
    }

    /// Loads the key from `dir`, creating it (RSA 2048, file mode 0600) on first use.
    pub fn open_or_create(dir: &Path) -> Result<Self, IssuerError> {
        let path = dir.join(KEY_FILE);
        let io = |source| IssuerError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(pem) => {
                check_private(&path)?;
                Self::from_pem(&pem).map_err(|reason| IssuerError::BadKey {
                    path: path.clone(),
                    reason,
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                create_private_dir(dir).map_err(io)?;
                let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| {
                    IssuerError::BadKey {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| IssuerError::BadKey {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                write_private(&path, pem.as_bytes()).map_err(io)?;
                tracing::info!(path = %path.display(), "created the standalone issuer key");
                Self::from_pem(&pem).map_err(|reason| IssuerError::BadKey {
                    path: path.clone(),
                    reason,
                })
            }
            Err(error) => Err(io(error)),
        }
    }

    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
        let kid = hex::encode(&Sha256::digest(key.n().to_bytes_be())[..8]);
        Ok(Self {
            key,
            pem: pem.to_owned(),
            kid,
        })
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> JwkSet {
        let doc = json!({ "keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(self.key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.key.e().to_bytes_be()),
        }]});
        // The document is built from a valid key just above; it always parses.
        serde_json::from_value(doc).unwrap_or(JwkSet { keys: Vec::new() })
    }

    /// A token for `subject` carrying `roles`, valid for `ttl`.
    pub fn mint(
        &self,
        subject: &str,
        roles: &[String],
        ttl: Duration,
        audience: &str,
    ) -> Result<String, IssuerError> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": LOCAL_ISSUER,
            "sub": subject,
            "aud": audience,
            "azp": LOCAL_CLIENT,
            "typ": "Bearer",
            "preferred_username": subject,
            "realm_access": { "roles": roles },
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs() as i64,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let key = EncodingKey::from_rsa_pem(self.pem.as_bytes())
            .map_err(|e| IssuerError::Sign(e.to_string()))?;
        encode(&header, &claims, &key).map_err(|e| IssuerError::Sign(e.to_string()))
    }
}

/// Refuses a key file that users other than its owner may read or write, as ssh does.
fn check_private(path: &Path) -> Result<(), IssuerError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| IssuerError::Io {
                path: path.to_owned(),
                source,
            })?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IssuerError::Unprotected {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(())
}

/// The key's folder, made for its owner alone (others could otherwise place a key of
/// their own in it before the first start).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_key_others_may_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE);
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/issuer/private-key.pem"
        );
        std::fs::copy(fixture, &path).expect("copy the fixture key");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refusal = LocalIssuer::open_or_create(dir.path())
            .err()
            .expect("a world-readable key is refused");
        assert!(
            matches!(refusal, IssuerError::Unprotected { mode: 0o644, .. }),
            "{refusal}"
        );
        assert!(refusal.to_string().contains("chmod 600"), "{refusal}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let issuer = LocalIssuer::open_or_create(dir.path()).expect("the owner's own key");
        assert_eq!(issuer.jwks().keys.len(), 1);
    }
}
