//! The Redis fast paths through the API: the per-owner upload limit, idempotent uploads
//! (also concurrent ones) and the status cache with its invalidation.

use bb8_redis::redis::aio::MultiplexedConnection;
use bb8_redis::redis::AsyncCommands;
use futures_util::future::join_all;
use serde_json::{json, Value};

use super::{header, id_of, post_upload, PATIENCE};
use crate::support::corpus;
use crate::support::keycloak::Keycloak;
use crate::support::production::Cluster;

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

    // The same key again with another file, or other steps: not a retry, and not to be
    // answered with the first image while the new upload is dropped.
    let reuser = issuer.mint("reuser", &[]);
    let original = post_upload(app, &reuser, &corpus("rocket.jpg"), None, Some("k")).await;
    assert_eq!(original.status().as_u16(), 202);
    let original: Value = original.json().await.expect("document");
    for (file, steps) in [
        ("astronaut.png", None),
        ("rocket.jpg", Some(r#"[{"op":"grayscale"}]"#)),
    ] {
        let reused = post_upload(app, &reuser, &corpus(file), steps, Some("k")).await;
        assert_eq!(reused.status().as_u16(), 422, "{file} {steps:?}");
        let body: Value = reused.json().await.expect("error body");
        assert_eq!(body["code"], "idempotency_key_reused", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&id_of(&original)),
            "names the image the key belongs to: {body}"
        );
    }

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
        vec![
            ("eager".to_owned(), 1),
            ("retrier".to_owned(), 1),
            ("reuser".to_owned(), 1)
        ]
    );
    let mut objects = cluster.raw_objects().await;
    objects.sort();
    let mut expected = vec![
        format!("{}.jpg", id_of(&first)),
        format!("{}.jpg", ids[0]),
        format!("{}.jpg", id_of(&original)),
    ];
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

    assert_eq!(app.delete_image(&token, &id).await, 204);
    let left: String = redis.get(&key).await.expect("the delete's mark");
    assert_eq!(left, "deleted", "DELETE left the cached status");
    let ttl: i64 = redis.pttl(&key).await.expect("PTTL");
    assert!(ttl > 0, "a delete's mark without expiry ({ttl})");
    let (status, body) = app.get_json(&token, &format!("/v1/images/{id}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("image_not_found"))
    );
    assert!(cluster.raw_objects().await.is_empty());
    cluster.stop().await;
}

/// `SET key value KEEPTTL`: replaces a value, keeping its expiry.
async fn set_keeping_ttl(redis: &mut MultiplexedConnection, key: &str, value: &str) {
    let mut command = bb8_redis::redis::cmd("SET");
    command.arg(key).arg(value).arg("KEEPTTL");
    command.query_async::<()>(redis).await.expect("SET KEEPTTL");
}
