//! Keys and their issuers: a key signs only for its own issuer, and the issuer's key set is
//! cached through rotation, a slow issuer and an outage, with a standalone app trusting
//! both its own issuer and a Keycloak-shaped realm (`auth.issuer`).
//!
//! The sleeps below only make a cached key set stale; no assertion depends on how long
//! anything took.

use std::time::Duration;

use pixmill::auth::issuer::LOCAL_ISSUER;
use pixmill::config::Config;
use serde_json::json;

use super::{app_with, status_of};
use crate::support::keycloak::Keycloak;
use crate::support::production::within;
use crate::support::tokens::{claims, sign, token_for};
use crate::support::{check_of, Standalone};

/// `GET /v1/images`: the status, the code and the `Retry-After` header.
async fn answer(app: &Standalone, token: &str) -> (u16, String, Option<u64>) {
    let response = app
        .http
        .get(app.url("/v1/images"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    (status, code, retry_after)
}

/// Waits (up to 20 s) until `token` is let in, asking every 50 ms.
async fn until_accepted(app: &Standalone, token: &str, what: &str) {
    within(Duration::from_secs(20), what, async {
        while answer(app, token).await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Trust `realm` with a short-lived cache: a set is stale after 200 ms.
fn trust(realm: &Keycloak, config: &mut Config) {
    config.auth.issuer = Some(realm.issuer());
    config.auth.jwks_max_age = Duration::from_millis(200);
    config.auth.jwks_min_refetch = Duration::from_millis(100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_signs_only_for_its_own_issuer() {
    let realm = Keycloak::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |c| c.auth.issuer = Some(realm.issuer())).await;
    assert_eq!(
        status_of(&app, Some(&realm.mint("alice", &[]))).await.0,
        200
    );
    assert_eq!(status_of(&app, Some(&token_for("alice"))).await.0, 200);

    // The standalone issuer's key claiming the realm's `iss`, and the realm's key claiming
    // the standalone issuer's: each names a key its claimed issuer does not publish.
    let local_as_realm = sign(&claims("mallory", json!({"iss": realm.issuer()})), false);
    let realm_as_local = realm
        .token("mallory", &[])
        .claim("iss", json!(LOCAL_ISSUER))
        .claim("aud", json!("pixmill-api"))
        .sign();
    for (what, token) in [
        ("local key, realm iss", local_as_realm),
        ("realm key, local iss", realm_as_local),
    ] {
        let (status, _, body) = status_of(&app, Some(&token)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unknown_signing_key")),
            "{what}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_serve_through_an_outage_and_a_rotation_needs_no_restart() {
    let realm = Keycloak::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |c| trust(&realm, c)).await;
    let token = realm.mint("alice", &[]);
    assert_eq!(answer(&app, &token).await.0, 200);
    assert_eq!((realm.discovery_fetches(), realm.jwks_fetches()), (1, 1));

    // The realm goes down and the set goes stale: requests keep being served from the
    // cache while refreshes are attempted (and fail) behind them.
    realm.set_down(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    within(
        Duration::from_secs(20),
        "two refresh attempts during the outage",
        async {
            while realm.jwks_fetches() < 3 {
                let (status, code, _) = answer(&app, &token).await;
                assert_eq!(
                    status, 200,
                    "served from the cache during the outage: {code}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;

    // Back up, with a new signing key: its first token gets in once a refetch is allowed.
    realm.set_down(false);
    realm.rotate();
    let rotated = realm.mint("alice", &[]);
    within(
        Duration::from_secs(20),
        "the rotated key to be accepted",
        async {
            loop {
                let (status, code, _) = answer(&app, &rotated).await;
                if status == 200 {
                    break;
                }
                // Right after the outage the last fetch failed: 503 until the next may start.
                assert!(
                    matches!(
                        (status, code.as_str()),
                        (401, "unknown_signing_key") | (503, "issuer_unavailable")
                    ),
                    "{status} {code}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
    assert_eq!(
        answer(&app, &token).await.0,
        200,
        "the old key is still published"
    );
    assert_eq!(
        realm.discovery_fetches(),
        1,
        "the discovery document is read once"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_key_stops_vouching_for_tokens_it_already_verified() {
    let realm = Keycloak::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The key set stays fresh for the default ten minutes: only its change can end the
    // gateway's memory of the tokens it verified.
    let mut app = app_with(dir.path(), |c| {
        c.auth.issuer = Some(realm.issuer());
        c.auth.jwks_min_refetch = Duration::from_millis(100);
    })
    .await;
    let old = realm.mint("alice", &[]);
    for _ in 0..2 {
        assert_eq!(answer(&app, &old).await.0, 200);
    }

    realm.rotate();
    realm.withdraw_first_key();
    let new = realm.mint("alice", &[]);
    // The new kid makes the gateway fetch the set again, once the refetch interval allows.
    until_accepted(&app, &new, "the rotated key to be accepted").await;
    let (status, code, _) = answer(&app, &old).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "unknown_signing_key"),
        "a token of the withdrawn key, verified a moment ago, must not be let in"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_issuer_holds_up_no_request_while_the_cache_is_usable() {
    let realm = Keycloak::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |c| {
        trust(&realm, c);
        // Far longer than the client below waits: a request that waited for the fetch
        // would fail, not merely be slow.
        c.auth.jwks_fetch_timeout = Duration::from_secs(600);
    })
    .await;
    let token = realm.mint("alice", &[]);
    assert_eq!(answer(&app, &token).await.0, 200);

    realm.slow_down_jwks(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The first request on the stale set starts the refresh that hangs.
    assert_eq!(answer(&app, &token).await.0, 200);
    within(
        Duration::from_secs(20),
        "the refresh to reach the realm",
        async {
            while realm.jwks_fetches() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await;
    let impatient = Standalone {
        app: None,
        base: app.base.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
    };
    for _ in 0..10 {
        assert_eq!(answer(&impatient, &token).await.0, 200);
    }
    assert_eq!(
        realm.jwks_fetches(),
        2,
        "one refresh, still outstanding, and no second"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_staleness_bound_tokens_are_refused_until_the_issuer_is_back() {
    let realm = Keycloak::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |c| {
        trust(&realm, c);
        c.auth.jwks_max_stale = Duration::from_millis(200);
    })
    .await;
    let token = realm.mint("alice", &[]);
    assert_eq!(answer(&app, &token).await.0, 200);

    realm.set_down(true);
    // Past max_age + max_stale (400 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, code, retry_after) = answer(&app, &token).await;
    assert_eq!((status, code.as_str()), (503, "issuer_unavailable"));
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    // The standalone issuer's tokens are not affected.
    assert_eq!(answer(&app, &token_for("bob")).await.0, 200);

    realm.set_down(false);
    until_accepted(&app, &token, "the realm's tokens to be accepted again").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_is_a_503_with_retry_after() {
    // A loopback port nothing listens on: connections are refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let issuer = format!("http://127.0.0.1:{port}/realms/pixmill");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = app_with(dir.path(), |c| c.auth.issuer = Some(issuer.clone())).await;
    let token = sign(&claims("alice", json!({"iss": issuer})), false);
    for attempt in ["first", "second, within the refetch interval"] {
        let response = app
            .http
            .get(app.url("/v1/images"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status().as_u16(), 503, "{attempt}");
        let retry_after: Option<u64> = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        assert!(
            retry_after.is_some_and(|s| s >= 1),
            "{attempt}: {retry_after:?}"
        );
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(body["code"], "issuer_unavailable", "{attempt}: {body}");
    }
    // Readiness shows it, and what it means, but stays 200: every gateway depends on the
    // issuer alike, so taking them out of a load balancer would help no one.
    let (status, report) = app.readyz().await;
    assert_eq!(status, 200);
    let check = check_of(&report, "issuer");
    assert_eq!(
        (&check["ok"], &check["required"]),
        (&json!(false), &json!(false)),
        "{report}"
    );
    assert!(
        check["problem"]
            .as_str()
            .is_some_and(|p| p.contains("issuer_unavailable")),
        "{report}"
    );
    app.stop().await;
}
