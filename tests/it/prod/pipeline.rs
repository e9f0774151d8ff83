//! Real photos through a gateway, RabbitMQ and worker apps; what happens when a worker stops
//! or the gateway cannot publish.

use std::time::Duration;

use pixmill::config::RoleRequirement;
use serde_json::Value;

use super::{download_processed, id_of, is_grayscale, list_with, PATIENCE, UPLOADER};
use crate::support::corpus;
use crate::support::keycloak::Keycloak;
use crate::support::production::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_go_through_a_gateway_and_two_workers() {
    let issuer = Keycloak::start().await;
    let Some(cluster) = Cluster::start(&issuer, 2, |c| {
        c.auth.upload_role = Some(RoleRequirement::realm(UPLOADER))
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
    assert_eq!(app.delete_image(&bob, &id).await, 404);
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
