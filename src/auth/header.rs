//! What is read from a token before its signature is checked: the JOSE header (algorithm,
//! `kid`, forbidden key references) and the `iss` claim, which picks the key set.
//!
//! A pure function of the token's text and the allowed algorithms, with no dependency on
//! the rest of pixmill, because it is the part an attacker controls byte for byte: the fuzz
//! target `token_header` (in `fuzz/`) includes this file as it is, and the regressions it
//! finds are replayed by the tests below.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{decode_header, Algorithm};
use serde::Deserialize;

/// Longest token looked at. Keycloak's access tokens are a few KiB even with many roles;
/// anything longer is refused as malformed before a byte of it is decoded, so a client
/// cannot make every request pay for base64 and JSON work on a huge header.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Header fields that point at or carry a key. Trusting them would let the token choose the
/// key it is checked with, so a token carrying any of them is refused outright.
const KEY_REFERENCES: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];

/// Why a token was refused before any key was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderRefusal {
    /// Not three base64url parts, a header or payload that is not JSON, or too long.
    Malformed,
    /// The header names an algorithm that is not configured (or none that exists).
    AlgorithmNotAllowed(String),
    /// The header carries one of [`KEY_REFERENCES`].
    ForbiddenHeader(&'static str),
}

/// What the rest of verification needs from a token that passed the screening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screened {
    /// One of the allowed algorithms.
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The unverified `iss`: it only chooses whose keys to check the signature with, and
    /// the signature check then verifies it like every other claim.
    pub issuer: Option<String>,
}

/// The payload fields read before verification.
#[derive(Deserialize)]
struct UnverifiedPayload {
    iss: Option<String>,
}

/// Screens `token` against `allowed` (which holds only asymmetric algorithms: the
/// configuration refuses the others).
pub fn screen(token: &str, allowed: &[Algorithm]) -> Result<Screened, HeaderRefusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(HeaderRefusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_part), Some(payload_part), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeaderRefusal::Malformed);
    };

    let header = decode_header(token).map_err(|_| unreadable_header(header_part, allowed))?;
    if !allowed.contains(&header.alg) {
        return Err(HeaderRefusal::AlgorithmNotAllowed(format!(
            "{:?}",
            header.alg
        )));
    }
    let present = [
        header.jku.is_some(),
        header.x5u.is_some(),
        header.jwk.is_some(),
        header.x5c.is_some(),
    ];
    if let Some((name, _)) = KEY_REFERENCES.into_iter().zip(present).find(|(_, is)| *is) {
        return Err(HeaderRefusal::ForbiddenHeader(name));
    }

    let payload = URL_SAFE_NO_PAD
        .decode(payload_part)
        .map_err(|_| HeaderRefusal::Malformed)?;
    let payload: UnverifiedPayload =
        serde_json::from_slice(&payload).map_err(|_| HeaderRefusal::Malformed)?;
    Ok(Screened {
        alg: header.alg,
        kid: header.kid,
        issuer: payload.iss,
    })
}

/// Why a header jsonwebtoken cannot read is refused: an algorithm it does not even know
/// (`none`, the unsigned-token attack, above all) is named as such, so the client reads
/// `algorithm_not_allowed` rather than a vague `malformed_token`.
fn unreadable_header(header_part: &str, allowed: &[Algorithm]) -> HeaderRefusal {
    #[derive(Deserialize)]
    struct AlgOnly {
        alg: String,
    }
    URL_SAFE_NO_PAD
        .decode(header_part)
        .ok()
        .and_then(|json| serde_json::from_slice::<AlgOnly>(&json).ok())
        .filter(|header| {
            header
                .alg
                .parse::<Algorithm>()
                .map_or(true, |alg| !allowed.contains(&alg))
        })
        .map_or(HeaderRefusal::Malformed, |header| {
            HeaderRefusal::AlgorithmNotAllowed(header.alg)
        })
}

/// What must hold for any input, checked by the fuzz target and by the replay of its
/// findings: `None` when `screen` kept its contract on `token`, else what it broke.
///
/// The contract: a token over [`MAX_TOKEN_BYTES`] is malformed; an accepted token has an
/// allowed algorithm, a header (read independently of jsonwebtoken, as plain JSON) with no
/// key reference, and an `alg` that names the accepted algorithm.
pub fn screen_violation(token: &str, allowed: &[Algorithm]) -> Option<String> {
    let result = screen(token, allowed);
    if token.len() > MAX_TOKEN_BYTES && result != Err(HeaderRefusal::Malformed) {
        return Some(format!(
            "an oversized token was not refused as malformed: {result:?}"
        ));
    }
    let screened = result.ok()?;
    if !allowed.contains(&screened.alg) {
        return Some(format!("accepted {:?}, which is not allowed", screened.alg));
    }
    let header = token
        .split('.')
        .next()
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok());
    let Some(header) = header else {
        return Some("accepted a token whose header is not a JSON object".to_owned());
    };
    let carries = |name: &&str| header.get(*name).is_some_and(|value| !value.is_null());
    if let Some(name) = KEY_REFERENCES.into_iter().find(carries) {
        return Some(format!("accepted a header carrying {name}"));
    }
    let named = header.get("alg").and_then(|alg| alg.as_str());
    if named != Some(format!("{:?}", screened.alg).as_str()) {
        return Some(format!(
            "accepted {:?} from a header naming {named:?}",
            screened.alg
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn token(header: serde_json::Value, payload: serde_json::Value) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    const RS256: &[Algorithm] = &[Algorithm::RS256];

    #[test]
    fn a_plain_rs256_header_passes_with_its_kid_and_issuer() {
        let screened = screen(
            &token(json!({"alg": "RS256", "kid": "k1"}), json!({"iss": "i"})),
            RS256,
        );
        assert_eq!(
            screened,
            Ok(Screened {
                alg: Algorithm::RS256,
                kid: Some("k1".to_owned()),
                issuer: Some("i".to_owned()),
            })
        );
    }

    #[test]
    fn algorithms_outside_the_list_are_named() {
        let refused = |alg: &str, allowed: &[Algorithm]| {
            screen(&token(json!({"alg": alg}), json!({})), allowed)
        };
        let not_allowed = |alg: &str| Err(HeaderRefusal::AlgorithmNotAllowed(alg.to_owned()));
        assert_eq!(refused("none", RS256), not_allowed("none"));
        assert_eq!(refused("HS256", RS256), not_allowed("HS256"));
        assert_eq!(refused("PS256", RS256), not_allowed("PS256"));
        assert!(refused("PS256", &[Algorithm::RS256, Algorithm::PS256]).is_ok());
    }

    #[test]
    fn key_references_are_refused() {
        for name in KEY_REFERENCES {
            let value = if name == "x5c" {
                json!(["AA"])
            } else {
                json!("http://127.0.0.1:9/")
            };
            let header = json!({"alg": "RS256", name: value});
            let refused = screen(&token(header, json!({})), RS256);
            // jsonwebtoken may not parse a junk `jwk`; refused either way, never accepted.
            assert!(refused.is_err(), "{name}: {refused:?}");
        }
    }

    #[test]
    fn shapes_that_are_not_a_jws_are_malformed() {
        let good = token(json!({"alg": "RS256"}), json!({}));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            &format!("{good}.extra"),
            &token(json!({"alg": "RS256"}), json!("not an object")),
            &token(json!({"alg": "RS256"}), json!({"iss": 7})),
            &"a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert_eq!(
                screen(bad, RS256).map(|_| ()),
                Err(HeaderRefusal::Malformed),
                "{bad}"
            );
        }
    }

    /// Every input the fuzzer ever crashed on (and the seeds it starts from) keeps holding
    /// the contract. Findings land in `tests/fixtures/token_fuzz_regressions/`.
    #[test]
    fn every_token_fuzz_regression_holds_the_contract() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/token_fuzz_regressions"
        );
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("the regression folder")
            .map(|entry| entry.expect("an entry").path())
            .filter(|path| path.is_file() && path.extension().is_none_or(|e| e != "md"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "the seeds are missing from {dir}");
        for path in files {
            let bytes = std::fs::read(&path).expect("a regression file");
            let token = String::from_utf8_lossy(&bytes);
            for allowed in [
                RS256,
                &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            ] {
                assert_eq!(
                    screen_violation(&token, allowed),
                    None,
                    "{}",
                    path.display()
                );
            }
        }
    }
}
