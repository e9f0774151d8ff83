//! Keycloak's tokens at a production gateway: audience, issuer and role rules, keys rotated
//! without a restart, and a key fetch that neither a flood nor a burst can multiply.

use std::time::Duration;

use futures_util::future::join_all;
use pixmill::config::RoleRequirement;
use serde_json::{json, Value};

use super::{header, list_with, post_upload, UPLOADER};
use crate::support::corpus;
use crate::support::keycloak::{Keycloak, API_CLIENT, CLI_CLIENT};
use crate::support::production::{within, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_tokens_need_the_audience_and_the_upload_role() {
    let issuer = Keycloak::start().await;
    let Some(cluster) = Cluster::start(&issuer, 0, |c| {
        c.auth.upload_role = Some(RoleRequirement::realm(UPLOADER))
    })
    .await
    else {
        return;
    };
    let app = &cluster.gateway;

    // Addressed to another client only.
    let elsewhere = issuer
        .token("alice", &[UPLOADER])
        .claim("aud", json!(["account"]))
        .sign();
    let (status, challenge, body) = list_with(app, &elsewhere).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("wrong_audience")),
        "{body}"
    );
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("invalid_token"),
        "{challenge}"
    );
    // Without an audience mapper Keycloak sends no `aud`: then `azp` must name the API.
    let no_aud_cli = issuer
        .token("alice", &[])
        .claim("aud", Value::Null)
        .claim("azp", json!(CLI_CLIENT))
        .sign();
    let (status, _, body) = list_with(app, &no_aud_cli).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("wrong_audience")),
        "{body}"
    );
    let no_aud_api = issuer
        .token("alice", &[])
        .claim("aud", Value::Null)
        .claim("azp", json!(API_CLIENT))
        .sign();
    assert_eq!(list_with(app, &no_aud_api).await.0, 200);
    // Another realm of the same server is another issuer.
    let other_realm = issuer
        .token("alice", &[])
        .claim("iss", json!(issuer.issuer().replace("/pixmill", "/master")))
        .sign();
    let (status, _, body) = list_with(app, &other_realm).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("wrong_issuer")),
        "{body}"
    );

    // Reading needs no role; uploading does.
    let reader = issuer.mint("carol", &[]);
    assert_eq!(list_with(app, &reader).await.0, 200);
    let response = post_upload(app, &reader, &corpus("rocket.jpg"), None, None).await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(header(&response, "www-authenticate").contains("insufficient_scope"));
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(body["code"], "missing_role", "{body}");
    let (status, doc) = app
        .upload(
            &issuer.mint("carol", &[UPLOADER]),
            &corpus("rocket.jpg"),
            None,
        )
        .await;
    assert_eq!(
        (status, doc["owner"].as_str()),
        (202, Some("carol")),
        "{doc}"
    );
    cluster.stop().await;
}

/// The `kid` in a token's header.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_trusted_without_restarting_the_gateway() {
    let issuer = Keycloak::start().await;
    let min_refetch = Duration::from_millis(200);
    let Some(cluster) = Cluster::start(&issuer, 0, |c| c.auth.jwks_min_refetch = min_refetch).await
    else {
        return;
    };
    let app = &cluster.gateway;
    let before = issuer.mint("rotator", &[]);
    assert_eq!(list_with(app, &before).await.0, 200);
    assert_eq!(issuer.jwks_fetches(), 1);

    issuer.rotate();
    let after = issuer.mint("rotator", &[]);
    assert_ne!(
        kid_of(&after),
        kid_of(&before),
        "the rotation changed nothing"
    );
    // Until `min_refetch` has passed since the last fetch the new key is not fetched, and
    // the token is refused as signed by an unknown key; after that, one refetch finds it.
    within(
        Duration::from_secs(10),
        "the rotated key to be accepted",
        async {
            loop {
                let (status, _, body) = list_with(app, &after).await;
                if status == 200 {
                    break;
                }
                assert_eq!(
                    (status, body["code"].as_str()),
                    (401, Some("unknown_signing_key")),
                    "{body}"
                );
                tokio::time::sleep(min_refetch / 4).await;
            }
        },
    )
    .await;
    assert_eq!(issuer.jwks_fetches(), 2, "one refetch for the new kid");
    assert_eq!(
        issuer.discovery_fetches(),
        1,
        "a refetch reuses the discovered address"
    );
    // The old key is still published (Keycloak keeps it until it is removed).
    assert_eq!(list_with(app, &before).await.0, 200);
    assert_eq!(issuer.jwks_fetches(), 2);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_does_not_hammer_the_issuer() {
    let issuer = Keycloak::start().await;
    // Longer than the test: every refetch the flood could cause falls inside the window
    // the first fetch opened.
    let Some(cluster) = Cluster::start(&issuer, 0, |c| {
        c.auth.jwks_min_refetch = Duration::from_secs(3600)
    })
    .await
    else {
        return;
    };
    let app = &cluster.gateway;
    assert_eq!(list_with(app, &issuer.mint("victim", &[])).await.0, 200);
    assert_eq!(issuer.jwks_fetches(), 1);

    for _ in 0..5 {
        let forged: Vec<String> = (0..20)
            .map(|_| issuer.forged("mallory", &uuid::Uuid::new_v4().to_string()))
            .collect();
        let answers = join_all(forged.iter().map(|token| list_with(app, token))).await;
        for (status, _, body) in answers {
            assert_eq!(
                (status, body["code"].as_str()),
                (401, Some("unknown_signing_key")),
                "{body}"
            );
        }
    }
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "100 unknown kids fetched the key set again"
    );
    assert_eq!(issuer.discovery_fetches(), 1);
    // Good tokens still get in.
    assert_eq!(list_with(app, &issuer.mint("victim", &[])).await.0, 200);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_arriving_during_a_key_fetch_wait_for_it() {
    let issuer = Keycloak::start().await;
    let min_refetch = Duration::from_millis(200);
    let Some(cluster) = Cluster::start(&issuer, 0, |c| c.auth.jwks_min_refetch = min_refetch).await
    else {
        return;
    };
    let app = &cluster.gateway;
    // A slow issuer: every request of a burst arrives while the first one's fetch of the key
    // set is still out.
    issuer.slow_down_jwks(Duration::from_millis(500));
    let burst = |sub: &str| -> Vec<String> {
        (0..8)
            .map(|n| issuer.mint(&format!("{sub}-{n}"), &[]))
            .collect()
    };

    // On a fresh gateway, with no keys yet.
    let tokens = burst("cold");
    for (status, _, body) in join_all(tokens.iter().map(|token| list_with(app, token))).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "the burst fetched the key set more than once"
    );

    // Right after a rotation, once the refetch interval allows a fetch (the sleep only sets
    // that up; nothing below depends on timing).
    tokio::time::sleep(min_refetch * 2).await;
    issuer.rotate();
    let tokens = burst("rotated");
    for (status, _, body) in join_all(tokens.iter().map(|token| list_with(app, token))).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(issuer.jwks_fetches(), 2);
    cluster.stop().await;
}
