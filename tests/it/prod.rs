//! Production mode end to end: a gateway app and worker apps on PostgreSQL, RabbitMQ, S3
//! and Redis, trusting a Keycloak-shaped realm. Real photos go through the HTTP API, the
//! queue and the workers; tokens are checked the way Keycloak's must be; keys rotate
//! under a running gateway; the Redis fast paths answer through the API.
//!
//! Run with the services up: `CI=1 scripts/test-services.sh cargo test --test it prod::`.

use std::path::Path;
use std::time::Duration;

use bb8_redis::redis::aio::MultiplexedConnection;
use bb8_redis::redis::AsyncCommands;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::keycloak::{Keycloak, API_CLIENT, CLI_CLIENT};
use crate::support::production::{within, Cluster};
use crate::support::{corpus, Standalone};

const PATIENCE: Duration = Duration::from_secs(120);
const UPLOADER: &str = "uploader";

fn is_grayscale(image: &image::DynamicImage) -> bool {
    image.to_rgb8().pixels().all(|p| {
        let [r, g, b] = p.0;
        r.abs_diff(g) <= 2 && g.abs_diff(b) <= 2
    })
}

/// Downloads the primary rendition; returns its content type and the decoded image.
async fn download_processed(
    app: &Standalone,
    token: &str,
    doc: &Value,
) -> (String, image::DynamicImage) {
    let response = app
        .download(
            token,
            doc["processed"]["url"].as_str().expect("processed url"),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().await.expect("body");
    (
        content_type,
        image::load_from_memory(&bytes).expect("result decodes"),
    )
}

fn id_of(doc: &Value) -> String {
    doc["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {doc}"))
        .to_owned()
}

/// `GET /v1/images` with `token`: the status, the `WWW-Authenticate` challenge and the body.
async fn list_with(app: &Standalone, token: &str) -> (u16, String, Value) {
    let response = app
        .http
        .get(app.url("/v1/images"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let challenge = header(&response, "www-authenticate");
    (status, challenge, response.json().await.unwrap_or_default())
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `POST /v1/images` of `file` with optional `steps` and `Idempotency-Key`.
async fn post_upload(
    app: &Standalone,
    token: &str,
    file: &Path,
    steps: Option<&str>,
    key: Option<&str>,
) -> reqwest::Response {
    let part =
        reqwest::multipart::Part::bytes(std::fs::read(file).expect("fixture")).file_name("upload");
    let mut form = reqwest::multipart::Form::new().part("file", part);
    if let Some(steps) = steps {
        form = form.text("steps", steps.to_owned());
    }
    let mut request = app
        .http
        .post(app.url("/v1/images"))
        .bearer_auth(token)
        .multipart(form);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("upload request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_go_through_a_gateway_and_two_workers() {
    let issuer = Keycloak::start().await;
    let Some(cluster) = Cluster::start(&issuer, 2, |c| {
        c.auth.upload_role = Some(UPLOADER.to_owned())
    })
    .await
    else {
        return;
    };
    let app = &cluster.gateway;
    let alice = issuer.mint("alice", &[UPLOADER]);

    // The one large photo: 10.6 megapixels to 800 wide, grayscale.
    let bridge_steps = r#"[{"op":"resize","width":800},{"op":"grayscale"}]"#;
    let (status, bridge) = app
        .upload(
            &alice,
            &corpus("Bridge_by_Sander_Klootwijk.jpg"),
            Some(bridge_steps),
        )
        .await;
    assert_eq!(status, 202, "{bridge}");
    assert_eq!(
        (bridge["status"].as_str(), bridge["owner"].as_str()),
        (Some("PENDING"), Some("alice"))
    );
    // A PNG keeps its format; a small JPEG is never enlarged.
    let astronaut_steps = r#"[{"op":"resize","width":256},{"op":"grayscale"}]"#;
    let (status, astronaut) = app
        .upload(&alice, &corpus("astronaut.png"), Some(astronaut_steps))
        .await;
    assert_eq!(status, 202, "{astronaut}");
    let (status, rocket) = app
        .upload(
            &alice,
            &corpus("rocket.jpg"),
            Some(r#"[{"op":"resize","width":2000}]"#),
        )
        .await;
    assert_eq!(status, 202, "{rocket}");

    let mut done = Vec::new();
    for doc in [&bridge, &astronaut, &rocket] {
        let doc = app.wait_until_final(&alice, &id_of(doc), PATIENCE).await;
        assert_eq!(doc["status"], "COMPLETED", "{doc}");
        // Two consumers on one queue, redeliveries, the relay: still one attempt each.
        assert_eq!(doc["attempts"], 1, "{doc}");
        done.push(doc);
    }
    let [bridge, astronaut, rocket] = <[Value; 3]>::try_from(done).expect("three documents");

    let (content_type, image) = download_processed(app, &alice, &bridge).await;
    assert_eq!(content_type, "image/jpeg");
    assert_eq!((image.width(), image.height()), (800, 450));
    assert!(is_grayscale(&image), "grayscale output has colour");
    assert_eq!(
        (
            bridge["processed"]["width"].as_u64(),
            bridge["processed"]["height"].as_u64()
        ),
        (Some(800), Some(450))
    );

    let (content_type, image) = download_processed(app, &alice, &astronaut).await;
    assert_eq!(content_type, "image/png");
    assert_eq!((image.width(), image.height()), (256, 256));
    assert!(is_grayscale(&image));

    let (content_type, image) = download_processed(app, &alice, &rocket).await;
    assert_eq!(content_type, "image/jpeg");
    assert_eq!((image.width(), image.height()), (640, 427));
    assert!(!is_grayscale(&image), "no grayscale step was asked for");
    let original = app
        .download(
            &alice,
            rocket["original"]["url"].as_str().unwrap_or_default(),
        )
        .await;
    let bytes = original.bytes().await.expect("original");
    assert_eq!(
        bytes.as_ref(),
        std::fs::read(corpus("rocket.jpg"))
            .expect("fixture")
            .as_slice()
    );

    // Another owner, with the same role, sees none of it.
    let bob = issuer.mint("bob", &[UPLOADER]);
    let id = id_of(&rocket);
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
    let response = app
        .http
        .delete(app.url(&format!("/v1/images/{id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 404);
    let (status, _, listing) = list_with(app, &bob).await;
    assert_eq!(
        (status, listing["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    assert_eq!(
        app.get_json(&alice, &format!("/v1/images/{id}")).await.0,
        200
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_tokens_need_the_audience_and_the_upload_role() {
    let issuer = Keycloak::start().await;
    let Some(cluster) = Cluster::start(&issuer, 0, |c| {
        c.auth.upload_role = Some(UPLOADER.to_owned())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_rate_limited_per_owner_in_redis() {
    let issuer = Keycloak::start().await;
    let Some(cluster) = Cluster::start(&issuer, 0, |c| c.cache.uploads_per_window = 3).await else {
        return;
    };
    let app = &cluster.gateway;
    let token = issuer.mint("ratey", &[]);
    for n in 1..=3 {
        let (status, body) = app.upload(&token, &corpus("rocket.jpg"), None).await;
        assert_eq!(status, 202, "upload {n}: {body}");
    }
    let response = post_upload(app, &token, &corpus("rocket.jpg"), None, None).await;
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = header(&response, "retry-after")
        .parse()
        .expect("a Retry-After in seconds");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After {retry_after} outside the 60 s window"
    );
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(body["code"], "rate_limited", "{body}");
    // Another owner has a window of their own.
    assert_eq!(
        app.upload(&issuer.mint("calm", &[]), &corpus("rocket.jpg"), None)
            .await
            .0,
        202
    );

    let mut redis = cluster.redis().await;
    let window: i64 = redis
        .zcard(format!("{}rate:ratey", cluster.names.key_prefix))
        .await
        .expect("ZCARD");
    assert_eq!(window, 3, "the refused upload was counted in the window");
    assert_eq!(
        cluster.raw_objects().await.len(),
        4,
        "a refused upload left an object"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_makes_one_image_also_when_sent_concurrently() {
    let issuer = Keycloak::start().await;
    let Some(cluster) = Cluster::start(&issuer, 0, |c| c.cache.uploads_per_window = 3).await else {
        return;
    };
    let app = &cluster.gateway;

    // A retry after an answer was lost.
    let sequential = issuer.mint("retrier", &[]);
    let first = post_upload(
        app,
        &sequential,
        &corpus("rocket.jpg"),
        None,
        Some("upload-1"),
    )
    .await;
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.expect("document");
    let again = post_upload(
        app,
        &sequential,
        &corpus("rocket.jpg"),
        None,
        Some("upload-1"),
    )
    .await;
    assert_eq!(again.status().as_u16(), 202);
    assert_eq!(id_of(&again.json().await.expect("document")), id_of(&first));

    // A client that sends the same request three times at once.
    let concurrent = issuer.mint("eager", &[]);
    let rocket = corpus("rocket.jpg");
    let responses =
        join_all((0..3).map(|_| post_upload(app, &concurrent, &rocket, None, Some("upload-1"))))
            .await;
    let mut ids = Vec::new();
    for response in responses {
        assert_eq!(response.status().as_u16(), 202);
        ids.push(id_of(&response.json().await.expect("document")));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one key, several images: {ids:?}");
    assert_ne!(ids[0], id_of(&first), "keys are per owner");

    let sql = cluster.sql().await;
    let rows = sql
        .query(
            "SELECT owner, count(*) FROM images GROUP BY owner ORDER BY owner",
            &[],
        )
        .await
        .expect("count rows");
    let rows: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        vec![("eager".to_owned(), 1), ("retrier".to_owned(), 1)]
    );
    let mut objects = cluster.raw_objects().await;
    objects.sort();
    let mut expected = vec![format!("{}.jpg", id_of(&first)), format!("{}.jpg", ids[0])];
    expected.sort();
    assert_eq!(
        objects, expected,
        "the losers of the race left their originals behind"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_statuses_are_served_from_redis_until_deleted() {
    let issuer = Keycloak::start().await;
    let Some(cluster) = Cluster::start(&issuer, 1, |_| {}).await else {
        return;
    };
    let app = &cluster.gateway;
    let token = issuer.mint("cached", &[]);
    let (_, doc) = app
        .upload(
            &token,
            &corpus("rocket.jpg"),
            Some(r#"[{"op":"resize","width":64}]"#),
        )
        .await;
    let id = id_of(&doc);
    let mut redis = cluster.redis().await;
    let key = format!("{}status:{id}", cluster.names.key_prefix);
    let cached: Option<String> = redis.get(&key).await.expect("GET");
    assert!(cached.is_none(), "a PENDING status was cached");

    let done = app.wait_until_final(&token, &id, PATIENCE).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    // The read that saw COMPLETED filled the cache, with an expiry.
    let cached: String = redis
        .get(&key)
        .await
        .expect("the completed status is cached");
    let ttl: i64 = redis.pttl(&key).await.expect("PTTL");
    assert!(ttl > 0, "cache entry without expiry ({ttl})");
    // Reads are answered from it: a mark put into the cached entry shows in the API.
    let mut entry: Value = serde_json::from_str(&cached).expect("cached JSON");
    entry["attempts"] = json!(41);
    set_keeping_ttl(&mut redis, &key, &entry.to_string()).await;
    let (status, seen) = app.get_json(&token, &format!("/v1/images/{id}")).await;
    assert_eq!(
        (status, seen["attempts"].as_u64()),
        (200, Some(41)),
        "not served from the cache: {seen}"
    );
    // Another owner is not served someone else's cached entry.
    let (status, _) = app
        .get_json(&issuer.mint("snoop", &[]), &format!("/v1/images/{id}"))
        .await;
    assert_eq!(status, 404);

    let response = app
        .http
        .delete(app.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 204);
    let exists: bool = redis.exists(&key).await.expect("EXISTS");
    assert!(!exists, "DELETE left the cached status");
    let (status, body) = app.get_json(&token, &format!("/v1/images/{id}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("image_not_found"))
    );
    assert!(cluster.raw_objects().await.is_empty());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_leaves_its_jobs_to_the_next_one() {
    let issuer = Keycloak::start().await;
    let Some(mut cluster) = Cluster::start(&issuer, 1, |_| {}).await else {
        return;
    };
    cluster.wait_for_consumers(1).await;
    let worker = cluster.workers.pop().expect("one worker");
    worker.shutdown().await;
    // Its connection closes as the engine drops it, a moment after shutdown returns.
    cluster.wait_for_consumers(0).await;

    // With no worker, an upload waits in the queue...
    let token = issuer.mint("patient", &[]);
    let (status, doc) = cluster
        .gateway
        .upload(&token, &corpus("rocket.jpg"), None)
        .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(cluster.queue_counts().await, (1, 0));
    // ...for the next worker, which does it once.
    cluster.add_worker().await;
    let done = cluster
        .gateway
        .wait_until_final(&token, &id_of(&doc), PATIENCE)
        .await;
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_u64()),
        (Some("COMPLETED"), Some(1)),
        "{done}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_gateway_could_not_publish_is_published_by_a_worker() {
    let issuer = Keycloak::start().await;
    let Some(mut cluster) = Cluster::start(&issuer, 0, |c| {
        c.server.publish_grace = Duration::from_millis(200)
    })
    .await
    else {
        return;
    };
    // With the queue gone, the broker returns the gateway's publish as unroutable; the
    // upload is committed all the same, with its dispatch mark.
    cluster.delete_work_queue().await;
    let token = issuer.mint("outboxed", &[]);
    let (status, doc) = cluster
        .gateway
        .upload(&token, &corpus("rocket.jpg"), None)
        .await;
    assert_eq!(status, 202, "{doc}");
    let sql = cluster.sql().await;
    let marked = sql
        .query_one("SELECT dispatch_at IS NOT NULL FROM images", &[])
        .await
        .expect("the row");
    assert!(
        marked.get::<_, bool>(0),
        "the unpublished job has no dispatch mark"
    );

    // A worker declares the queue again, and its relay publishes the job.
    cluster.add_worker().await;
    let done = cluster
        .gateway
        .wait_until_final(&token, &id_of(&doc), PATIENCE)
        .await;
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_u64()),
        (Some("COMPLETED"), Some(1)),
        "{done}"
    );
    cluster.stop().await;
}

/// `SET key value KEEPTTL`: replaces a value, keeping its expiry.
async fn set_keeping_ttl(redis: &mut MultiplexedConnection, key: &str, value: &str) {
    let mut command = bb8_redis::redis::cmd("SET");
    command.arg(key).arg(value).arg("KEEPTTL");
    command.query_async::<()>(redis).await.expect("SET KEEPTTL");
}
