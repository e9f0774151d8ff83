//! Who gets in: every refusal is a 401 (403 for a missing role, 503 while the issuer's keys
//! cannot be fetched) with a challenge or a `Retry-After` and a stable code, and an owner
//! only ever sees their own images.
//!
//! - [`rules`]: the configurable checks (algorithms, audience claim, upload role, leeway).
//! - [`issuer_keys`]: keys bound to their issuer, the JWKS cache through rotation and outage.

mod issuer_keys;
mod rules;

use std::sync::Arc;

use pixmill::config::Config;
use pixmill_actors::faults::NoFaults;
use serde_json::json;

use crate::support::tokens::{
    claims, issuer_jwk, sign, sign_hs256_with_public_key, sign_with_header, token_for, unsigned,
};
use crate::support::{corpus, standalone_config, Standalone};

/// A standalone app in `dir` with its configuration adjusted by `tune`.
async fn app_with(dir: &std::path::Path, tune: impl FnOnce(&mut Config)) -> Standalone {
    let mut config = standalone_config(dir);
    tune(&mut config);
    Standalone::start_with(config, Arc::new(NoFaults)).await
}

/// `GET /v1/images` with `token`: the status, the `WWW-Authenticate` challenge and the body.
async fn status_of(
    app: &Standalone,
    token: Option<&str>,
) -> (u16, Option<String>, serde_json::Value) {
    let mut request = app.http.get(app.url("/v1/images"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, challenge, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let now = chrono::Utc::now().timestamp();
    let cases = [
        ("no token", None, "missing_token"),
        ("garbage", Some("not.a.jwt".to_owned()), "malformed_token"),
        (
            "wrong signature",
            Some(sign(&claims("mallory", json!({})), true)),
            "invalid_signature",
        ),
        (
            "expired",
            Some(sign(
                &claims(
                    "alice",
                    json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}),
                ),
                false,
            )),
            "token_expired",
        ),
        (
            "not yet valid",
            Some(sign(&claims("alice", json!({"nbf": now + 3600})), false)),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            Some(sign(
                &claims("alice", json!({"iss": "https://evil.example/realms/x"})),
                false,
            )),
            "wrong_issuer",
        ),
        (
            "wrong audience",
            Some(sign(
                &claims(
                    "alice",
                    json!({"aud": "another-api", "azp": "another-client"}),
                ),
                false,
            )),
            "wrong_audience",
        ),
        (
            // Keycloak signs ID tokens with the realm's key too; one can name this API.
            "an ID token",
            Some(sign(&claims("alice", json!({"typ": "ID"})), false)),
            "not_an_access_token",
        ),
        (
            "no exp",
            Some(sign(&claims("alice", json!({"exp": null})), false)),
            "missing_claim",
        ),
        (
            "no sub",
            Some(sign(&claims("alice", json!({"sub": null})), false)),
            "missing_claim",
        ),
    ];
    for (what, token, code) in cases {
        let (status, challenge, body) = status_of(&app, token.as_deref()).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["code"].as_str(), Some(code), "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer")),
            "{what}: no WWW-Authenticate"
        );
    }

    // The two mix-ups behind most 401s in a new deployment say what the token had and what
    // was expected.
    let foreign = sign(
        &claims("alice", json!({"iss": "https://evil.example/realms/x"})),
        false,
    );
    let (_, _, body) = status_of(&app, Some(&foreign)).await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("https://evil.example/realms/x") && message.contains("pixmill-standalone"),
        "{body}"
    );
    let elsewhere = sign(
        &claims(
            "alice",
            json!({"aud": "another-api", "azp": "another-client"}),
        ),
        false,
    );
    let (_, _, body) = status_of(&app, Some(&elsewhere)).await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("aud another-api") && message.contains("pixmill-api in aud_or_azp"),
        "{body}"
    );

    // Keycloak without an audience mapper: no `aud`, `azp` names the API.
    let azp_only = sign(
        &claims("alice", json!({"aud": null, "azp": "pixmill-api"})),
        false,
    );
    assert_eq!(status_of(&app, Some(&azp_only)).await.0, 200);
    assert_eq!(status_of(&app, Some(&token_for("alice"))).await.0, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_algorithms_and_key_headers_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let good = claims("mallory", json!({}));
    let cases = [
        ("alg=none", unsigned(&good), "algorithm_not_allowed"),
        (
            "HS256 keyed with the issuer's public key",
            sign_hs256_with_public_key(&good),
            "algorithm_not_allowed",
        ),
        (
            "jku to the attacker's key set",
            sign_with_header(&good, json!({"jku": "http://127.0.0.1:9/jwks.json"})),
            "forbidden_token_header",
        ),
        (
            "x5u to the attacker's certificate",
            sign_with_header(&good, json!({"x5u": "http://127.0.0.1:9/cert.pem"})),
            "forbidden_token_header",
        ),
        (
            "embedded jwk",
            sign_with_header(&good, json!({"jwk": issuer_jwk()})),
            "forbidden_token_header",
        ),
        (
            "no iss",
            sign(&claims("mallory", json!({"iss": null})), false),
            "missing_claim",
        ),
    ];
    for (what, token, code) in cases {
        let (status, challenge, body) = status_of(&app, Some(&token)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some(code)),
            "{what}: {body}"
        );
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer") && c.contains("invalid_token")),
            "{what}: no invalid_token challenge"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_within_the_leeway_is_forgiven() {
    // `auth.leeway` is 30 s by default: a token that expired 5 s ago, or becomes valid in
    // 5 s, is a clock a little off, not an attack; a minute is refused (see above for hours).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let now = chrono::Utc::now().timestamp();
    let cases = [
        (
            "expired 5 s ago",
            json!({"exp": now - 5, "iat": now - 600, "nbf": now - 600}),
            200,
        ),
        ("valid in 5 s", json!({"nbf": now + 5, "iat": now + 5}), 200),
        (
            "expired 90 s ago",
            json!({"exp": now - 90, "iat": now - 600, "nbf": now - 600}),
            401,
        ),
        (
            "valid in 90 s",
            json!({"nbf": now + 90, "iat": now + 90}),
            401,
        ),
    ];
    for (what, changes, expected) in cases {
        let token = sign(&claims("alice", changes), false);
        let (status, _, body) = status_of(&app, Some(&token)).await;
        assert_eq!(status, expected, "{what}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owners_image_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let alice = token_for("alice");
    let bob = token_for("bob");
    let (_, doc) = app.upload(&alice, &corpus("rocket.jpg"), None).await;
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    app.wait_until_final(&alice, &id, std::time::Duration::from_secs(60))
        .await;

    for path in [
        format!("/v1/images/{id}"),
        format!("/v1/images/{id}/original"),
        format!("/v1/images/{id}/processed"),
    ] {
        let (status, body) = app.get_json(&bob, &path).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("image_not_found")),
            "{path}"
        );
    }
    let (status, random) = app
        .get_json(&bob, &format!("/v1/images/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(
        (status, random["code"].as_str()),
        (404, Some("image_not_found"))
    );
    assert_eq!(app.delete_image(&bob, &id).await, 404);
    let (_, listing) = app.get_json(&bob, "/v1/images").await;
    assert_eq!(listing["items"].as_array().map(Vec::len), Some(0));
    // Alice still has it.
    assert_eq!(
        app.get_json(&alice, &format!("/v1/images/{id}")).await.0,
        200
    );
    app.stop().await;
}
