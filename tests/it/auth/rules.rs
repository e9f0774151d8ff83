//! The configurable token checks, each through the API of a standalone app configured for
//! it: `auth.algorithms`, `auth.audience_claim`, `auth.upload_role` and `auth.leeway`.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use pixmill::config::{AudienceClaim, RoleRequirement, SigningAlgorithm};
use serde_json::{json, Value};

use super::{app_with, status_of};
use crate::support::tokens::{claims, sign, sign_with_alg};
use crate::support::{corpus, Standalone};

/// Asserts that `token` gets `status` (and, for a refusal, `code`) on `GET /v1/images`.
async fn assert_answer(app: &Standalone, what: &str, token: &str, status: u16, code: Option<&str>) {
    let (got, challenge, body) = status_of(app, Some(token)).await;
    assert_eq!(got, status, "{what}: {body}");
    if let Some(code) = code {
        assert_eq!(body["code"].as_str(), Some(code), "{what}: {body}");
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer") && c.contains(code)),
            "{what}: the challenge does not name {code}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_algorithms_are_accepted() {
    let good = claims("alice", json!({}));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |_| {}).await;
    let ps256 = sign_with_alg(&good, Algorithm::PS256);
    assert_answer(
        &app,
        "PS256 by default",
        &ps256,
        401,
        Some("algorithm_not_allowed"),
    )
    .await;
    app.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |c| {
        c.auth.algorithms = ["RS256", "PS256"]
            .iter()
            .map(|name| SigningAlgorithm::parse(name).expect("asymmetric"))
            .collect();
    })
    .await;
    assert_answer(&app, "PS256 configured", &ps256, 200, None).await;
    assert_answer(&app, "RS256 configured", &sign(&good, false), 200, None).await;
    let rs384 = sign_with_alg(&good, Algorithm::RS384);
    assert_answer(
        &app,
        "RS384 not configured",
        &rs384,
        401,
        Some("algorithm_not_allowed"),
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audience_is_read_from_the_configured_claim() {
    let token =
        |aud: Value, azp: &str| sign(&claims("alice", json!({"aud": aud, "azp": azp})), false);
    // (to the API in aud, azp the CLI) / (no aud, azp the API) / (aud elsewhere, azp the API)
    let in_aud = token(json!(["pixmill-api", "account"]), "pixmill-cli");
    let azp_only = token(Value::Null, "pixmill-api");
    let aud_elsewhere = token(json!(["account"]), "pixmill-api");
    let cases = [
        (AudienceClaim::Aud, [200, 401, 401]),
        (AudienceClaim::Azp, [401, 200, 200]),
        (AudienceClaim::AudOrAzp, [200, 200, 401]),
    ];
    for (claim, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut app = app_with(dir.path(), |c| c.auth.audience_claim = claim).await;
        let tokens = [
            ("in aud", &in_aud),
            ("azp only", &azp_only),
            ("aud elsewhere", &aud_elsewhere),
        ];
        for ((what, token), status) in tokens.into_iter().zip(expected) {
            let code = (status == 401).then_some("wrong_audience");
            assert_answer(&app, &format!("{claim}: {what}"), token, status, code).await;
        }
        app.stop().await;
    }
}

/// `POST /v1/images` of a small photo with a token carrying these realm and client roles.
async fn upload_with_roles(app: &Standalone, realm: &[&str], clients: Value) -> (u16, Value) {
    let token = sign(
        &claims(
            "uploader-test",
            json!({"realm_access": {"roles": realm}, "resource_access": clients}),
        ),
        false,
    );
    app.upload(&token, &corpus("rocket.jpg"), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_form_of_upload_role_is_required() {
    let realm_role = (&["uploader"][..], json!({}));
    let client_role = (&[][..], json!({"pixmill-api": {"roles": ["uploader"]}}));
    let other_clients_role = (&[][..], json!({"account": {"roles": ["uploader"]}}));
    // The configured role, and which of the three tokens may upload.
    let cases = [
        ("uploader", [true, false, false]),
        ("realm:uploader", [true, false, false]),
        ("client:pixmill-api:uploader", [false, true, false]),
    ];
    for (written, allowed) in cases {
        let role = RoleRequirement::parse(written).expect("a role");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut app = app_with(dir.path(), |c| c.auth.upload_role = Some(role)).await;
        let holders = [&realm_role, &client_role, &other_clients_role];
        for ((realm, clients), may) in holders.into_iter().zip(allowed) {
            let (status, body) = upload_with_roles(&app, realm, clients.clone()).await;
            let what = format!("{written}, token with {realm:?} and {clients}");
            if may {
                assert_eq!(status, 202, "{what}: {body}");
            } else {
                assert_eq!(
                    (status, body["code"].as_str()),
                    (403, Some("missing_role")),
                    "{what}: {body}"
                );
            }
        }
        // Reading needs no role.
        assert_answer(
            &app,
            written,
            &sign(&claims("reader", json!({})), false),
            200,
            None,
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_is_a_403_with_an_insufficient_scope_challenge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let role = RoleRequirement::parse("client:pixmill-api:uploader").expect("a role");
    let mut app = app_with(dir.path(), |c| c.auth.upload_role = Some(role)).await;
    let token = sign(&claims("nobody", json!({})), false);
    let part =
        reqwest::multipart::Part::bytes(std::fs::read(corpus("rocket.jpg")).expect("fixture"))
            .file_name("rocket.jpg");
    let response = app
        .http
        .post(app.url("/v1/images"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status().as_u16(), 403);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(body["code"], "missing_role", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("uploader") && m.contains("pixmill-api")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_leeway_replaces_the_default() {
    let now = chrono::Utc::now().timestamp();
    let token = |changes: Value| sign(&claims("alice", changes), false);
    let expired_90s = token(json!({"exp": now - 90, "iat": now - 600, "nbf": now - 600}));
    let valid_in_90s = token(json!({"nbf": now + 90, "iat": now + 90}));
    let expired_1h = token(json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}));
    let expired_5s = token(json!({"exp": now - 5, "iat": now - 600, "nbf": now - 600}));
    // Keycloak's access tokens carry no `nbf`: it is checked when present, never required.
    let no_nbf = token(json!({"nbf": null}));

    // Two minutes: what the default 30 s refuses is forgiven, an hour is not.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |c| c.auth.leeway = Duration::from_secs(120)).await;
    assert_answer(&app, "expired 90 s ago", &expired_90s, 200, None).await;
    assert_answer(&app, "valid in 90 s", &valid_in_90s, 200, None).await;
    assert_answer(
        &app,
        "expired an hour ago",
        &expired_1h,
        401,
        Some("token_expired"),
    )
    .await;
    assert_answer(&app, "no nbf", &no_nbf, 200, None).await;
    app.stop().await;

    // None: what the default 30 s forgives is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |c| c.auth.leeway = Duration::ZERO).await;
    assert_answer(
        &app,
        "expired 5 s ago",
        &expired_5s,
        401,
        Some("token_expired"),
    )
    .await;
    assert_answer(
        &app,
        "valid in 90 s",
        &valid_in_90s,
        401,
        Some("token_not_yet_valid"),
    )
    .await;
    assert_answer(&app, "no nbf", &no_nbf, 200, None).await;
    app.stop().await;
}
