//! Standalone mode end to end: real photos through the HTTP API, the actor pipeline and the
//! embedded backends, as a newcomer would use it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pixmill::app::{App, Mode, StartOptions};
use pixmill_actors::faults::FaultPlan;
use pixmill_actors::ImageRecord;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::tokens::{token_for, token_with_roles};
use crate::support::{corpus, standalone_config, Standalone};

const PATIENCE: Duration = Duration::from_secs(60);

fn is_grayscale(image: &image::DynamicImage) -> bool {
    let rgb = image.to_rgb8();
    rgb.pixels().all(|p| {
        let [r, g, b] = p.0;
        r.abs_diff(g) <= 2 && g.abs_diff(b) <= 2
    })
}

async fn download_image(
    app: &Standalone,
    token: &str,
    doc: &Value,
) -> (String, image::DynamicImage) {
    let url = doc["processed"]["url"].as_str().expect("processed url");
    let response = app.download(token, url).await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let bytes = response.bytes().await.expect("body");
    (
        content_type,
        image::load_from_memory(&bytes).expect("result decodes"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_are_processed_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("alice");

    // A 10.6 megapixel JPEG, resized to 800 wide and made grayscale.
    let steps = r#"[{"op":"resize","width":800},{"op":"grayscale"}]"#;
    let (status, bridge) = app
        .upload(
            &token,
            &corpus("Bridge_by_Sander_Klootwijk.jpg"),
            Some(steps),
        )
        .await;
    assert_eq!(status, 202, "{bridge}");
    assert_eq!(bridge["status"], "PENDING");
    assert_eq!(bridge["owner"], "alice");
    // A PNG with the default pipeline (fit inside 1024x1024) keeps its format.
    let (status, storm) = app.upload(&token, &corpus("Storm_alpha.png"), None).await;
    assert_eq!(status, 202, "{storm}");
    // A small JPEG is never enlarged.
    let (status, rocket) = app
        .upload(
            &token,
            &corpus("rocket.jpg"),
            Some(r#"[{"op":"resize","width":2000}]"#),
        )
        .await;
    assert_eq!(status, 202, "{rocket}");

    let bridge = app
        .wait_until_final(&token, bridge["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(bridge["status"], "COMPLETED", "{bridge}");
    assert_eq!(bridge["processed"]["width"], 800);
    assert_eq!(bridge["processed"]["height"], 450);
    assert_eq!(bridge["processed"]["format"], "jpeg");
    let (content_type, image) = download_image(&app, &token, &bridge).await;
    assert_eq!(content_type, "image/jpeg");
    assert_eq!((image.width(), image.height()), (800, 450));
    assert!(is_grayscale(&image), "grayscale output has colour");

    let storm = app
        .wait_until_final(&token, storm["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(storm["status"], "COMPLETED", "{storm}");
    let (content_type, image) = download_image(&app, &token, &storm).await;
    assert_eq!(content_type, "image/png");
    assert_eq!((image.width(), image.height()), (1024, 683));
    assert!(
        image.color().has_alpha(),
        "PNG output lost its alpha channel"
    );
    assert!(!is_grayscale(&image));

    let rocket = app
        .wait_until_final(&token, rocket["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(
        (
            rocket["processed"]["width"].as_u64(),
            rocket["processed"]["height"].as_u64()
        ),
        (Some(640), Some(427))
    );

    // The original downloads byte for byte.
    let original = app
        .download(
            &token,
            bridge["original"]["url"].as_str().unwrap_or_default(),
        )
        .await;
    let bytes = original.bytes().await.expect("original");
    assert_eq!(
        bytes.as_ref(),
        std::fs::read(corpus("Bridge_by_Sander_Klootwijk.jpg"))
            .expect("fixture")
            .as_slice()
    );
    app.stop().await;
}

/// A download with one `If-None-Match` header line per entry of `lines`: the status, the
/// `ETag` header and the body's length.
async fn download_if_none_match(
    app: &Standalone,
    token: &str,
    url: &str,
    lines: &[&str],
) -> (u16, Option<String>, usize) {
    let mut request = app.http.get(app.url(url)).bearer_auth(token);
    for line in lines {
        request = request.header("If-None-Match", *line);
    }
    let response = request.send().await.expect("download");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.expect("body");
    (status, etag, body.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_carry_their_digest_as_etag_and_answer_304_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("revalidator");
    let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    let doc = app.wait_until_final(&token, &id, PATIENCE).await;

    for file in [&doc["processed"], &doc["original"]] {
        let url = file["url"].as_str().expect("url");
        let tag = format!("\"{}\"", file["sha256"].as_str().expect("sha256"));
        let full = app.download(&token, url).await;
        assert_eq!(full.status().as_u16(), 200);
        assert_eq!(
            full.headers().get("etag").and_then(|v| v.to_str().ok()),
            Some(tag.as_str())
        );
        let bytes = full.bytes().await.expect("body");
        assert_eq!(format!("\"{}\"", hex::encode(Sha256::digest(&bytes))), tag);

        assert_eq!(
            download_if_none_match(&app, &token, url, &[&tag]).await,
            (304, Some(tag.clone()), 0),
            "{url}"
        );
        // A cache that holds several copies may send one header line per tag.
        let older = "\"an-older-copy\"";
        assert_eq!(
            download_if_none_match(&app, &token, url, &[older, &tag]).await,
            (304, Some(tag.clone()), 0),
            "{url}"
        );
        let (status, _, length) = download_if_none_match(&app, &token, url, &[older]).await;
        assert_eq!((status, length), (200, bytes.len()), "{url}");
        // Ownership is checked first: a tag proves nothing about the caller.
        let (status, _, _) =
            download_if_none_match(&app, &token_for("stranger"), url, &[&tag]).await;
        assert_eq!(status, 404, "{url}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_lost_from_storage_is_reported_as_lost_not_as_an_unknown_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("unlucky");
    let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    let doc = app.wait_until_final(&token, &id, PATIENCE).await;
    assert_eq!(doc["status"], "COMPLETED", "{doc}");

    // Someone removes the image's files behind pixmill's back.
    for bucket in ["raw-images", "processed-images"] {
        let root = dir.path().join("objects").join(bucket);
        for entry in std::fs::read_dir(&root).expect("bucket folder").flatten() {
            if entry.file_name().to_string_lossy().starts_with(&id) {
                let path = entry.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).expect("remove the result folder");
                } else {
                    std::fs::remove_file(&path).expect("remove the original");
                }
            }
        }
    }
    for file in [&doc["processed"], &doc["original"]] {
        let url = file["url"].as_str().expect("url");
        let response = app.download(&token, url).await;
        assert_eq!(response.status().as_u16(), 404, "{url}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "file_missing", "{url}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("upload the image again")),
            "{body}"
        );
    }
    // Another owner still learns nothing.
    let url = doc["original"]["url"].as_str().expect("url");
    let response = app.download(&token_for("stranger"), url).await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "image_not_found", "{body}");

    // The whole store goes (a volume not mounted): an outage, not a lost file.
    let objects = dir.path().join("objects");
    std::fs::rename(&objects, dir.path().join("objects.away")).expect("move the store");
    let response = app.download(&token, url).await;
    assert_eq!(response.status().as_u16(), 503, "{url}");
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "backend_unavailable", "{body}");
    // An upload meanwhile is refused as the same outage, and makes no folder in its place
    // (an operator's `mv objects.away objects` would then nest the store inside it).
    let (status, refused) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (503, Some("backend_unavailable")),
        "{refused}"
    );
    assert!(!objects.exists(), "the upload made {}", objects.display());
    // A volume not mounted leaves its mount point: an empty folder is no store either.
    std::fs::create_dir(&objects).expect("an empty mount point");
    let response = app.download(&token, url).await;
    assert_eq!(response.status().as_u16(), 503, "{url}");
    std::fs::remove_dir(&objects).expect("the empty mount point");
    std::fs::rename(dir.path().join("objects.away"), &objects).expect("put it back");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_newest_first_paginated_and_filtered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("lister");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, doc) = app
            .upload(
                &token,
                &corpus("rocket.jpg"),
                Some(r#"[{"op":"resize","width":64}]"#),
            )
            .await;
        assert_eq!(status, 202);
        ids.push(doc["id"].as_str().unwrap_or_default().to_owned());
    }
    let (_, other) = app
        .upload(&token_for("someone-else"), &corpus("rocket.jpg"), None)
        .await;

    let (status, page) = app.get_json(&token, "/v1/images?limit=2").await;
    assert_eq!(status, 200, "{page}");
    let first: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(first, vec![ids[2].as_str(), ids[1].as_str()]);
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (_, page) = app
        .get_json(&token, &format!("/v1/images?limit=2&cursor={cursor}"))
        .await;
    let second: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(second, vec![ids[0].as_str()]);
    assert!(page["next_cursor"].is_null());
    assert!(!second.contains(&other["id"].as_str().unwrap_or_default()));

    for id in &ids {
        app.wait_until_final(&token, id, PATIENCE).await;
    }
    let (_, done) = app.get_json(&token, "/v1/images?status=COMPLETED").await;
    assert_eq!(done["items"].as_array().map(Vec::len), Some(3));
    let (_, pending) = app.get_json(&token, "/v1/images?status=PENDING").await;
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(0));
    let (status, bad) = app.get_json(&token, "/v1/images?cursor=not-a-cursor").await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    // Refused by the spec's schema, answered in the parameter's own terms.
    for (query, says) in [
        ("status=completed", "PENDING, PROCESSING, COMPLETED, FAILED"),
        ("limit=0", "1 to 100"),
        ("limit=101", "1 to 100"),
    ] {
        let (status, bad) = app.get_json(&token, &format!("/v1/images?{query}")).await;
        assert_eq!(
            (status, bad["code"].as_str()),
            (400, Some("invalid_request")),
            "{query}: {bad}"
        );
        assert!(
            bad["message"].as_str().is_some_and(|m| m.contains(says)),
            "{query}: {bad}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_record_and_both_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("deleter");
    let (_, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    app.wait_until_final(&token, &id, PATIENCE).await;
    // Entries of a bucket folder, not counting the store's hidden staging folder.
    let objects = |bucket: &str| {
        std::fs::read_dir(dir.path().join("objects").join(bucket))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('~'))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(objects("raw-images") >= 1 && objects("processed-images") >= 1);

    assert_eq!(app.delete_image(&token, &id).await, 204);
    let (status, body) = app.get_json(&token, &format!("/v1/images/{id}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("image_not_found"))
    );
    assert_eq!(objects("raw-images"), 0, "original left behind");
    let processed_dir = dir.path().join("objects/processed-images").join(&id);
    assert!(
        !processed_dir.exists(),
        "result or its folder left behind: {:?}",
        std::fs::read_dir(&processed_dir).map(|d| d.count())
    );
    app.stop().await;
}

/// Holds every transform until the gate opens (or ten seconds have passed), so a shutdown
/// is sure to catch every job unfinished however slow the machine is.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    /// A render has reached the gate: its original was read.
    reached: AtomicBool,
}

impl FaultPlan for Gate {
    fn before_transform(&self, _record: &ImageRecord, _attempt: u32) {
        self.reached.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.open.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_deleted_while_it_renders_leaves_no_result_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = standalone_config(dir.path());
    // One render and one persist at a time: the second image's result is stored after the
    // first's, so its completion says the first job has been through the persister.
    config.engine.transform_workers = 1;
    config.engine.persist_workers = 1;
    let gate = Arc::new(Gate::default());
    let mut app = Standalone::start_with(config, gate.clone()).await;
    let token = token_for("regretful");
    let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    // Waits for the render itself, not the claim: deleted before the original is read, the
    // job would end without storing anything, and this test would show nothing.
    let deadline = std::time::Instant::now() + PATIENCE;
    while !gate.reached.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the render never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Deleted while its render waits at the gate: the render then goes on and stores a result
    // that no image refers to.
    assert_eq!(app.delete_image(&token, &id).await, 204);
    gate.open.store(true, Ordering::SeqCst);
    let (_, later) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    let later = app
        .wait_until_final(&token, later["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(later["status"], "COMPLETED", "{later}");

    let processed_dir = dir.path().join("objects/processed-images").join(&id);
    let left: Vec<_> = std::fs::read_dir(&processed_dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "the deleted image's result stayed: {left:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_jobs_complete_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = standalone_config(dir.path());
    config.engine.shutdown_grace = Duration::ZERO;
    let gate = Arc::new(Gate::default());
    let mut app = Standalone::start_with(config, gate.clone()).await;
    let token = token_for("restarter");
    let mut ids = Vec::new();
    for _ in 0..6 {
        let (status, doc) = app
            .upload(
                &token,
                &corpus("rocket.jpg"),
                Some(r#"[{"op":"resize","width":100}]"#),
            )
            .await;
        assert_eq!(status, 202);
        ids.push(doc["id"].as_str().unwrap_or_default().to_owned());
    }
    // Nothing can finish while the gate is closed: every job is unfinished at the stop.
    for id in &ids {
        let (_, doc) = app.get_json(&token, &format!("/v1/images/{id}")).await;
        assert_ne!(doc["status"], "COMPLETED", "{doc}");
    }
    app.stop().await;
    // Lets the stopped engine's held transforms end; their results have nowhere to go.
    gate.open.store(true, Ordering::SeqCst);

    // The process is gone with jobs unfinished; its data dir is all that is left.
    let mut app = Standalone::start(dir.path()).await;
    for id in &ids {
        let doc = app.wait_until_final(&token, id, PATIENCE).await;
        assert_eq!(doc["status"], "COMPLETED", "{doc}");
        assert_eq!(doc["processed"]["width"], 100);
    }
    app.stop().await;
}

/// Panics in the transformer for the first `crashes` attempts of every job.
struct CrashingTransform {
    crashes: u32,
    seen: AtomicU32,
}

impl FaultPlan for CrashingTransform {
    fn before_transform(&self, _record: &ImageRecord, attempt: u32) {
        self.seen.fetch_add(1, Ordering::SeqCst);
        if attempt <= self.crashes {
            panic!("injected transform crash on attempt {attempt}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_transform_is_restarted_and_the_job_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = Arc::new(CrashingTransform {
        crashes: 1,
        seen: AtomicU32::new(0),
    });
    let mut app = Standalone::start_with(standalone_config(dir.path()), plan.clone()).await;
    let token = token_for("crasher");
    let (status, doc) = app
        .upload(
            &token,
            &corpus("rocket.jpg"),
            Some(r#"[{"op":"resize","width":320}]"#),
        )
        .await;
    assert_eq!(status, 202);
    let doc = app
        .wait_until_final(&token, doc["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(doc["status"], "COMPLETED", "{doc}");
    assert_eq!(doc["attempts"], 2);
    assert!(plan.seen.load(Ordering::SeqCst) >= 2);

    let admin = token_with_roles("ops", &["pixmill-admin"]);
    let (status, tree) = app.get_json(&admin, "/v1/system/actors").await;
    assert_eq!(status, 200, "{tree}");
    let restarts: u64 = tree["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|a| a["role"] == "transformer")
        .map(|a| a["restarts_total"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(restarts, 1, "{tree}");
    let crashed = tree["children"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["restarts_total"] == 1)
        .cloned()
        .unwrap_or_default();
    assert!(
        crashed["last_failure_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("injected transform crash"),
        "{crashed}"
    );
    let (status, _) = app.get_json(&token, "/v1/system/actors").await;
    assert_eq!(status, 403, "the actor tree needs the admin role");

    // The process keeps serving.
    let (status, next) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202);
    let next = app
        .wait_until_final(&token, next["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(
        next["attempts"], 2,
        "every first attempt crashes in this plan: {next}"
    );
    app.stop().await;
}

/// Holds each job's first attempt in the transformer for a while, and counts attempts.
struct SlowFirstAttempt {
    hold: Duration,
    attempts: std::sync::Mutex<Vec<u32>>,
}

impl FaultPlan for SlowFirstAttempt {
    fn before_transform(&self, _record: &ImageRecord, attempt: u32) {
        self.attempts.lock().unwrap().push(attempt);
        if attempt == 1 {
            std::thread::sleep(self.hold);
        }
    }
}

/// Processes one photo with its first attempt held in the transformer for `hold`; returns
/// the final document and the attempts the transformer saw.
async fn with_a_slow_first_attempt(
    config: pixmill::config::Config,
    hold: Duration,
) -> (Value, Vec<u32>) {
    let plan = Arc::new(SlowFirstAttempt {
        hold,
        attempts: std::sync::Mutex::new(Vec::new()),
    });
    let mut app = Standalone::start_with(config, plan.clone()).await;
    let token = token_for("patient");
    let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    let doc = app
        .wait_until_final(&token, doc["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    app.stop().await;
    let attempts = plan.attempts.lock().unwrap().clone();
    (doc, attempts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_longer_than_the_lease_runs_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = standalone_config(dir.path());
    // The relay looks every 100 ms; the job is held for four leases, each renewed every
    // 300 ms (SQLite's commits take milliseconds, so the margin is wide).
    config.engine.lease = Duration::from_millis(900);

    let (doc, attempts) = with_a_slow_first_attempt(config, Duration::from_millis(3_600)).await;

    assert_eq!(
        (&doc["status"], &doc["attempts"]),
        (&json!("COMPLETED"), &json!(1)),
        "{doc}"
    );
    assert_eq!(
        attempts,
        [1],
        "the job was taken from its live worker and transformed again"
    );
}

/// Holds the first renders it sees, one per hold, until the test lets go of it, as a codec
/// stuck in a loop would.
struct HangsRenders {
    holds: std::sync::Mutex<Vec<std::sync::mpsc::Receiver<()>>>,
}

impl HangsRenders {
    /// A plan that holds `renders` renders, and the senders that release them (dropped).
    fn new(renders: usize) -> (Arc<Self>, Vec<std::sync::mpsc::Sender<()>>) {
        let (releases, holds) = (0..renders).map(|_| std::sync::mpsc::channel()).unzip();
        let plan = Self {
            holds: std::sync::Mutex::new(holds),
        };
        (Arc::new(plan), releases)
    }
}

impl FaultPlan for HangsRenders {
    fn before_transform(&self, _record: &ImageRecord, _attempt: u32) {
        let hold = self.holds.lock().unwrap().pop();
        if let Some(hold) = hold {
            let _ = hold.recv();
        }
    }
}

/// A render still running when its job's lease stops being renewed is given up on: the job
/// fails for good with a reason, and the pool thread is replaced, so the one transform slot
/// goes on rendering the next upload while the hung render still runs; operators see it
/// until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_past_max_job_time_fails_its_job_and_the_worker_renders_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = standalone_config(dir.path());
    config.engine.transform_workers = 1;
    // Renewals stop after 1 s; the lease runs out 2 s later, long after the give-up.
    config.engine.lease = Duration::from_secs(3);
    config.engine.max_job_time = Duration::from_secs(1);
    let (plan, release) = HangsRenders::new(1);
    let mut app = Standalone::start_with(config, plan).await;
    let token = token_for("stuck");
    let admin = token_with_roles("ops", &["pixmill-admin"]);

    let mut finals = Vec::new();
    for _ in 0..2 {
        let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
        assert_eq!(status, 202, "{doc}");
        let id = doc["id"].as_str().unwrap_or_default().to_owned();
        finals.push(app.wait_until_final(&token, &id, PATIENCE).await);
    }
    let hung = &finals[0];
    assert_eq!(
        (&hung["status"], &hung["error"]["code"], &hung["attempts"]),
        (&json!("FAILED"), &json!("render_timed_out"), &json!(1)),
        "{hung}"
    );
    assert!(
        hung["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("still running after") && m.contains("given up")),
        "{hung}"
    );
    assert_eq!(finals[1]["status"], "COMPLETED", "{}", finals[1]);

    // The hung render still holds its thread: operators see it.
    let (status, tree) = app.get_json(&admin, "/v1/system/actors").await;
    assert_eq!((status, &tree["renders_hung"]), (200, &json!(1)), "{tree}");
    let metrics = crate::observe::scrape(&app).await;
    assert_eq!(
        crate::observe::sample(&metrics, "pixmill_renders_hung"),
        Some(1.0)
    );

    drop(release);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, tree) = app.get_json(&admin, "/v1/system/actors").await;
        if tree["renders_hung"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the released render never ended: {tree}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

/// Past as many hung renders as the pool has threads, none is replaced: the process says
/// it is not ready (its jobs would only wait out their time), until a hung render ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_whose_render_threads_all_hang_is_not_ready_until_one_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = standalone_config(dir.path());
    config.engine.transform_workers = 1;
    config.engine.lease = Duration::from_secs(3);
    config.engine.max_job_time = Duration::from_secs(1);
    let (plan, mut releases) = HangsRenders::new(2);
    let mut app = Standalone::start_with(config, plan).await;
    let token = token_for("stuck-twice");
    for _ in 0..2 {
        let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
        assert_eq!(status, 202, "{doc}");
        let id = doc["id"].as_str().unwrap_or_default().to_owned();
        let doc = app.wait_until_final(&token, &id, PATIENCE).await;
        assert_eq!(doc["error"]["code"], "render_timed_out", "{doc}");
    }
    let renders = |report: &Value| {
        report["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["name"] == "renders")
            .cloned()
            .unwrap_or_default()
    };
    let (status, report) = app.readyz().await;
    assert_eq!(status, 503, "{report}");
    let check = renders(&report);
    assert_eq!(
        (&check["ok"], &check["required"]),
        (&json!(false), &json!(true)),
        "{report}"
    );
    assert!(
        check["problem"]
            .as_str()
            .is_some_and(|p| p.contains("restart")),
        "{report}"
    );

    // One hung render ends: its thread serves again.
    releases.pop();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, report) = app.readyz().await;
        if status == 200 {
            assert_eq!(renders(&report)["ok"], true, "{report}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{report}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    let doc = app.wait_until_final(&token, &id, PATIENCE).await;
    assert_eq!(doc["status"], "COMPLETED", "{doc}");
    drop(releases);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_always_crashes_ends_failed_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = Arc::new(CrashingTransform {
        crashes: u32::MAX,
        seen: AtomicU32::new(0),
    });
    let mut config = standalone_config(dir.path());
    config.engine.retry.max_attempts = 3;
    let mut app = Standalone::start_with(config, plan.clone()).await;
    let token = token_for("poison");
    let (_, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    let doc = app
        .wait_until_final(&token, doc["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(doc["status"], "FAILED", "{doc}");
    assert_eq!(doc["error"]["code"], "attempts_exhausted");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("crashed"),
        "{doc}"
    );
    assert_eq!(
        plan.seen.load(Ordering::SeqCst),
        3,
        "exactly max_attempts attempts"
    );
    let (status, health) = app.get_json(&token, "/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    app.stop().await;
}

/// A second standalone process on the same data folder would take the first one's jobs in
/// flight (its start re-dispatches every unfinished job): it refuses to start, and names
/// the process that holds the folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_standalone_process_on_the_same_data_folder_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = Standalone::start(dir.path()).await;
    let error = match App::start(
        standalone_config(dir.path()),
        Mode::Standalone,
        StartOptions::default(),
    )
    .await
    {
        Ok(_) => panic!("a second process started on the same data folder"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains(&format!("pid {}", std::process::id()))
            && error.contains("PIXMILL_DATA_DIR"),
        "{error}"
    );
    let token = token_for("first");
    let (status, doc) = first.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    let doc = first
        .wait_until_final(&token, doc["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(
        (&doc["status"], &doc["attempts"]),
        (&json!("COMPLETED"), &json!(1)),
        "{doc}"
    );
    first.stop().await;
}

/// A gateway and a worker on in-process queues would each have a queue of their own: the
/// gateway's jobs would never be rendered. Each refuses to start, says what to set, and
/// leaves its data dir alone.
#[tokio::test]
async fn only_standalone_runs_on_the_in_process_queue() {
    for mode in [Mode::Gateway, Mode::Worker] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut config = standalone_config(&data);
        config.auth.trust_local_issuer_unsafe = true;
        let error = match App::start(config, mode, StartOptions::default()).await {
            Ok(_) => panic!("{mode:?} started on the in-process queue"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("PIXMILL_QUEUE__URL"), "{error}");
        assert!(!data.exists(), "{mode:?} wrote to {} first", data.display());
    }
}
