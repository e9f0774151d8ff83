//! Watching pixmill work: metrics and the actor tree after a crash, request ids, long polls,
//! server-sent events, webhooks, and status events between processes through Redis.

mod gate;
mod production;
mod sse;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use pixmill::config::Config;
use pixmill_actors::faults::FaultPlan;
use pixmill_actors::ImageRecord;
use serde_json::Value;
use sha2::Sha256;

use self::gate::Gate;
use self::sse::EventReader;
use crate::support::tokens::{token_for, token_with_roles};
use crate::support::{corpus, standalone_config, Standalone};

const PATIENCE: Duration = Duration::from_secs(60);
const SMALL: &str = r#"[{"op":"resize","width":64}]"#;

/// The value of the sample `series` (name and labels exactly as exposed) in a scrape.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

pub(crate) async fn scrape(app: &Standalone) -> String {
    let response = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("metrics text")
}

/// Scrapes until `series` has `value`, for at most the test's patience.
async fn wait_for_sample(app: &Standalone, series: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = scrape(app).await;
        if sample(&text, series) == Some(value) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never became {value}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the status document until it is in `status`.
async fn wait_for_status(app: &Standalone, token: &str, id: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, doc) = app.get_json(token, &format!("/v1/images/{id}")).await;
        if doc["status"] == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never became {status}: {doc}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn upload_small(app: &Standalone, token: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let bytes = std::fs::read(corpus("rocket.jpg")).expect("fixture");
    app.upload_bytes(token, bytes, "rocket.jpg", Some(SMALL), fields)
        .await
}

/// Panics in the transformer on the first attempt of every job.
struct CrashOnce(AtomicU32);

impl FaultPlan for CrashOnce {
    fn before_transform(&self, _record: &ImageRecord, attempt: u32) {
        self.0.fetch_add(1, Ordering::SeqCst);
        if attempt == 1 {
            panic!("injected transform crash");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_shows_in_the_actor_tree_and_in_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start_with(
        standalone_config(dir.path()),
        Arc::new(CrashOnce(AtomicU32::new(0))),
    )
    .await;
    let token = token_for("watcher");
    let (status, doc) = upload_small(&app, &token, &[]).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    let done = app.wait_until_final(&token, &id, PATIENCE).await;
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_u64()),
        (Some("COMPLETED"), Some(2)),
        "{done}"
    );

    let admin = token_with_roles("ops", &["pixmill-admin"]);
    let (status, tree) = app.get_json(&admin, "/v1/system/actors").await;
    assert_eq!(status, 200, "{tree}");
    let tree_restarts: u64 = tree["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|a| a["role"] == "transformer")
        .filter_map(|a| a["restarts_total"].as_u64())
        .sum();
    assert_eq!(tree_restarts, 1, "{tree}");

    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"pixmill_actor_restarts_total{stage="transformer"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"pixmill_actor_restarts_total{stage="persister"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"pixmill_jobs_total{outcome="retried"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"pixmill_jobs_total{outcome="completed"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"pixmill_job_phase_duration_seconds_count{phase="end_to_end"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "pixmill_uploads_accepted_total"),
        Some(1.0),
        "{text}"
    );
    // The one accepted upload went through every step once, and each step is timed apart.
    for step in ["probe", "store_original", "record", "publish", "clear_mark"] {
        let count = format!(r#"pixmill_upload_step_duration_seconds_count{{step="{step}"}}"#);
        assert_eq!(sample(&text, &count), Some(1.0), "{step}: {text}");
        let sum = format!(r#"pixmill_upload_step_duration_seconds_sum{{step="{step}"}}"#);
        assert!(
            sample(&text, &sum).is_some_and(|s| s > 0.0),
            "{step}: {text}"
        );
    }
    assert!(
        sample(
            &text,
            r#"pixmill_stage_mailbox_capacity{stage="transformer"}"#
        )
        .is_some_and(|c| c >= 1.0),
        "{text}"
    );
    // Requests are counted by route template: the id never becomes a label.
    let polled =
        r#"pixmill_http_requests_total{method="GET",route="/v1/images/{id}",status="200"}"#;
    assert!(sample(&text, polled).is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        !text.contains(&id),
        "an image id leaked into a label:\n{text}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let sent = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "client-chosen-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(sent.headers()["x-request-id"], "client-chosen-42");
    let unsafe_id = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "no spaces; please")
        .send()
        .await
        .expect("GET");
    let generated = unsafe_id.headers()["x-request-id"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&generated).is_ok(),
        "an unsafe id was not replaced: {generated:?}"
    );
    let missing = app.http.get(app.url("/nowhere")).send().await.expect("GET");
    assert_eq!(missing.status().as_u16(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"pixmill_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    app.stop().await;
}

/// A waiter's re-read interval longer than any test here: what a waiter hears in time came
/// from an event.
const NO_REREAD: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_when_the_job_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = Arc::new(Gate::default());
    let mut config = standalone_config(dir.path());
    // No re-read of its own within the test: the answer must come from the change's event.
    config.server.wait_reread = NO_REREAD;
    let mut app = Standalone::start_with(config, gate.clone()).await;
    let app_ref = &app;
    let token = token_for("poller");
    let (_, doc) = upload_small(&app, &token, &[]).await;
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    wait_for_status(&app, &token, &id, "PROCESSING").await;

    // While the job is held, a short poll ends with its wait, with the current document.
    let (status, held) = app
        .get_json(&token, &format!("/v1/images/{id}?wait=200ms"))
        .await;
    assert_eq!(
        (status, held["status"].as_str()),
        (200, Some("PROCESSING")),
        "{held}"
    );
    // Over the limit, empty, or not in seconds/milliseconds: one code, whichever check
    // (the spec's pattern or the handler) refuses it.
    for wait in ["90s", "61", "60001ms", "", "1m", "-1", "5 s"] {
        let (status, refused) = app
            .get_json(&token, &format!("/v1/images/{id}?wait={wait}"))
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (400, Some("invalid_wait")),
            "wait={wait:?}: {refused}"
        );
        assert!(
            refused["message"]
                .as_str()
                .is_some_and(|m| m.contains("at most 60 s")),
            "wait={wait:?}: {refused}"
        );
    }

    let wait = Duration::from_secs(30);
    let poll = async {
        let started = Instant::now();
        let (status, doc) = app_ref
            .get_json(&token, &format!("/v1/images/{id}?wait={}s", wait.as_secs()))
            .await;
        (status, doc, started.elapsed())
    };
    let release = async {
        // Only once the poll is waiting: then its answer can only come from the change.
        wait_for_sample(app_ref, "pixmill_http_waiting_requests", 1.0).await;
        gate.release(&id);
    };
    let ((status, doc, elapsed), ()) = tokio::join!(poll, release);
    assert_eq!(
        (status, doc["status"].as_str()),
        (200, Some("COMPLETED")),
        "{doc}"
    );
    assert!(
        elapsed < wait / 2,
        "the long poll took {elapsed:?} of its {wait:?}; it should answer on the change"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_follows_a_job_until_it_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = standalone_config(dir.path());
    // One actor per stage: while the first job is held in the transformer and the second
    // waits for it, the third cannot even be claimed.
    config.engine.transform_workers = 1;
    config.engine.download_workers = 1;
    config.engine.persist_workers = 1;
    config.server.wait_reread = NO_REREAD;
    let gate = Arc::new(Gate::default());
    let mut app = Standalone::start_with(config, gate.clone()).await;
    let token = token_for("streamer");
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, doc) = upload_small(&app, &token, &[]).await;
        assert_eq!(status, 202, "{doc}");
        ids.push(doc["id"].as_str().unwrap_or_default().to_owned());
    }
    let watched = ids[2].clone();
    let response = app
        .http
        .get(app.url(&format!("/v1/images/{watched}/events")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("events");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let mut events = EventReader::new(response);

    let mut seen = Vec::new();
    seen.push(
        next_status(&mut events)
            .await
            .expect("the current document first"),
    );
    gate.release(&ids[0]);
    gate.release(&ids[1]);
    // The watched job is now claimed and held in the transformer.
    seen.push(next_status(&mut events).await.expect("the claim"));
    gate.release(&watched);
    while let Some(status) = next_status(&mut events).await {
        seen.push(status);
    }
    assert_eq!(
        seen,
        ["PENDING", "PROCESSING", "COMPLETED"],
        "the stream must close after COMPLETED"
    );
    assert!(
        started.elapsed() < NO_REREAD / 2,
        "the stream followed re-reads, not the changes' events"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_token_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = Arc::new(Gate::default());
    let mut app = Standalone::start_with(standalone_config(dir.path()), gate.clone()).await;
    let token = token_for("short-lived");
    let (status, doc) = upload_small(&app, &token, &[]).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();

    // A token of the same owner with three seconds left: the job is held at the gate, so
    // only the token's end can close the stream.
    let expires = chrono::Utc::now().timestamp() + 3;
    let brief = crate::support::tokens::sign(
        &crate::support::tokens::claims("short-lived", serde_json::json!({"exp": expires})),
        false,
    );
    let mut events = open_events(&app, &brief, &id).await;
    let first = next_status(&mut events)
        .await
        .expect("the current document");
    assert_ne!(first, "COMPLETED");
    let mut later = Vec::new();
    while let Some(status) = next_status(&mut events).await {
        later.push(status);
    }
    assert!(
        later.iter().all(|s| s != "COMPLETED" && s != "FAILED"),
        "{later:?}"
    );
    assert!(
        chrono::Utc::now().timestamp() >= expires,
        "the stream closed before the token expired"
    );
    gate.release(&id);
    let done = app.wait_until_final(&token, &id, PATIENCE).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_image_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = Arc::new(Gate::default());
    let mut config = standalone_config(dir.path());
    config.server.wait_reread = NO_REREAD;
    let mut app = Standalone::start_with(config, gate.clone()).await;
    let token = token_for("deleter");
    let (status, doc) = upload_small(&app, &token, &[]).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    let mut events = open_events(&app, &token, &id).await;
    let first = next_status(&mut events)
        .await
        .expect("the current document");
    assert_ne!(first, "COMPLETED");

    let response = app
        .http
        .delete(app.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 204);
    let started = Instant::now();
    while let Some(status) = next_status(&mut events).await {
        assert!(status != "COMPLETED" && status != "FAILED", "{status}");
    }
    assert!(
        started.elapsed() < NO_REREAD / 2,
        "the stream ended on a re-read, not on the delete's event"
    );
    let response = app
        .http
        .get(app.url(&format!("/v1/images/{id}/events")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("events again");
    assert_eq!(response.status().as_u16(), 404, "a reconnect learns why");
    gate.release(&id);
    app.stop().await;
}

/// Every refused upload counts once under its code, wherever it was refused: before the
/// handler (token, form parsing, content type) or by it (the file, the steps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_upload_is_counted_once_under_its_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("refused");
    let photo = std::fs::read(corpus("rocket.jpg")).expect("photo");
    let url = app.url("/v1/images");
    let mut answers: Vec<(u16, String)> = Vec::new();
    let mut note = |status: u16, body: Value| {
        answers.push((status, body["code"].as_str().unwrap_or_default().to_owned()));
    };

    // No token at all.
    let response = app.http.post(&url).send().await.expect("post");
    note(
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    );
    // Not a form.
    let response = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .expect("post");
    note(
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    );
    // A field the form does not take; a value of the wrong type; steps out of range; a
    // file that is no image.
    let (status, body) = app
        .upload_bytes(&token, photo.clone(), "a.jpg", None, &[("colour", "red")])
        .await;
    note(status, body);
    let (status, body) = app
        .upload_bytes(&token, photo.clone(), "a.jpg", None, &[("quality", "high")])
        .await;
    note(status, body);
    let (status, body) = app
        .upload_bytes(
            &token,
            photo,
            "a.jpg",
            Some(r#"[{"op":"resize","width":0}]"#),
            &[],
        )
        .await;
    note(status, body);
    let (status, body) = app
        .upload_bytes(&token, b"<html></html>".to_vec(), "a.jpg", None, &[])
        .await;
    note(status, body);

    assert!(
        answers
            .iter()
            .all(|(status, code)| *status >= 400 && !code.is_empty()),
        "{answers:?}"
    );
    let text = scrape(&app).await;
    for (_, code) in &answers {
        let expected = answers.iter().filter(|(_, c)| c == code).count() as f64;
        let series = format!(r#"pixmill_uploads_refused_total{{code="{code}"}}"#);
        assert_eq!(sample(&text, &series), Some(expected), "{series}\n{text}");
    }
    app.stop().await;
}

/// The event stream of image `id`, opened with `token`.
async fn open_events(app: &Standalone, token: &str, id: &str) -> EventReader {
    let response = app
        .http
        .get(app.url(&format!("/v1/images/{id}/events")))
        .bearer_auth(token)
        .send()
        .await
        .expect("events");
    assert_eq!(response.status().as_u16(), 200);
    EventReader::new(response)
}

/// The status of the next event, `None` when the stream has closed.
async fn next_status(events: &mut EventReader) -> Option<String> {
    let doc = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event in time");
    doc.map(|doc| doc["status"].as_str().unwrap_or_default().to_owned())
}

/// The signature headers of a webhook POST.
struct Signed {
    signature: String,
    timestamp: String,
}

/// A webhook receiver on loopback that answers 503 while `refusals` (counted down by each
/// POST) lasts, and 200 afterwards.
struct Receiver {
    url: String,
    posts: tokio::sync::mpsc::UnboundedReceiver<(Signed, Vec<u8>)>,
    refusals: Arc<AtomicU32>,
}

impl Receiver {
    /// The next POST: its signature header and body.
    async fn next_post(&mut self) -> (Signed, Vec<u8>) {
        tokio::time::timeout(PATIENCE, self.posts.recv())
            .await
            .expect("a webhook in time")
            .expect("receiver up")
    }
}

async fn receiver(refusals: u32) -> Receiver {
    use poem::listener::{Acceptor, Listener};
    use poem::{handler, web::Data, Body, EndpointExt, Request, Response, Route, Server};

    type Posts = tokio::sync::mpsc::UnboundedSender<(Signed, Vec<u8>)>;
    #[handler]
    async fn hook(
        request: &Request,
        body: Body,
        posts: Data<&Posts>,
        refusals: Data<&Arc<AtomicU32>>,
    ) -> Response {
        let signed = Signed {
            signature: request
                .header("x-pixmill-signature")
                .unwrap_or_default()
                .to_owned(),
            timestamp: request
                .header("x-pixmill-timestamp")
                .unwrap_or_default()
                .to_owned(),
        };
        let _ = posts.send((signed, body.into_vec().await.unwrap_or_default()));
        let refused = refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let status = if refused { 503 } else { 200 };
        Response::builder()
            .status(poem::http::StatusCode::from_u16(status).unwrap())
            .finish()
    }

    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind receiver");
    let addr = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .expect("tcp address");
    let (sender, posts) = tokio::sync::mpsc::unbounded_channel();
    let refusals = Arc::new(AtomicU32::new(refusals));
    let app = Route::new()
        .at("/hook", poem::post(hook))
        .data(sender)
        .data(refusals.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    Receiver {
        url: format!("http://{addr}/hook"),
        posts,
        refusals,
    }
}

fn webhook_config(data_dir: &std::path::Path, allow_private: bool) -> Config {
    let mut config = standalone_config(data_dir);
    config.webhooks.secret = pixmill::config::Secret::new("webhook-test-secret");
    config.webhooks.allow_private_unsafe = allow_private;
    config.webhooks.base_delay = Duration::from_millis(50);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_posts_a_signed_webhook_and_retries_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start_with(
        webhook_config(dir.path(), true),
        Arc::new(pixmill_actors::faults::NoFaults),
    )
    .await;
    let mut hooks = receiver(1).await;
    let token = token_for("hooked");
    let (status, doc) = upload_small(&app, &token, &[("callback_url", &hooks.url)]).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();

    let mut bodies = Vec::new();
    for _ in 0..2 {
        let (signed, body) = hooks.next_post().await;
        // What a receiver does: the time is recent, and the HMAC of `<time>.<body>` matches.
        let sent_at: i64 = signed.timestamp.parse().expect("a Unix time");
        let skew = (chrono::Utc::now().timestamp() - sent_at).abs();
        assert!(skew <= 60, "sent at {sent_at}, {skew} s away");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"webhook-test-secret").unwrap();
        mac.update(format!("{sent_at}.").as_bytes());
        mac.update(&body);
        assert_eq!(
            signed.signature,
            format!("v1={}", hex::encode(mac.finalize().into_bytes())),
            "bad signature"
        );
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1], "a retry must send the same body");
    assert_delivered_completed(&app, &bodies[1], &id).await;
    app.stop().await;
}

/// `body` is the status document of image `id`, `COMPLETED` (64 px wide, as
/// `upload_small` asks), and the app counted the webhook delivered.
async fn assert_delivered_completed(app: &Standalone, body: &[u8], id: &str) {
    let delivered: Value = serde_json::from_slice(body).expect("JSON body");
    assert_eq!(
        (delivered["id"].as_str(), delivered["status"].as_str()),
        (Some(id), Some("COMPLETED")),
        "{delivered}"
    );
    assert_eq!(delivered["processed"]["width"], 64);
    wait_for_sample(
        app,
        r#"pixmill_webhook_deliveries_total{outcome="delivered"}"#,
        1.0,
    )
    .await;
}

/// A webhook refused at its first attempt, then the app stopped; `interlude`, when given,
/// is another process run on the same data for a while; then the app starts again with the
/// receiver accepting, and the retry must arrive with the same document.
async fn webhook_retried_after_restart(
    config: Config,
    owner: &str,
    interlude: Option<(Config, Duration)>,
) {
    let no_faults = || Arc::new(pixmill_actors::faults::NoFaults);
    let mut app = Standalone::start_with(config.clone(), no_faults()).await;
    let mut hooks = receiver(u32::MAX).await;
    let token = token_for(owner);
    let (status, doc) = upload_small(&app, &token, &[("callback_url", &hooks.url)]).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    let (_, refused) = hooks.next_post().await;
    app.stop().await;

    if let Some((other, how_long)) = interlude {
        let mut app = Standalone::start_with(other, no_faults()).await;
        tokio::time::sleep(how_long).await;
        app.stop().await;
    }

    hooks.refusals.store(0, Ordering::SeqCst);
    let mut app = Standalone::start_with(config, no_faults()).await;
    let (_, body) = hooks.next_post().await;
    assert_eq!(body, refused, "the retry must send the same document");
    assert_delivered_completed(&app, &body, &id).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_waiting_for_its_retry_is_sent_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = webhook_config(dir.path(), true);
    // Long enough that the retry falls due only after the restart.
    config.webhooks.base_delay = Duration::from_secs(3);
    webhook_retried_after_restart(config, "hooked-restart", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_without_the_secret_leaves_due_webhooks_to_one_that_has_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = webhook_config(dir.path(), true);
    config.webhooks.base_delay = Duration::from_millis(500);
    // A process configured without the secret (a worker someone forgot to give it) runs
    // while the retry is due: it must leave the webhook alone, not end it unsent.
    let mut secretless = config.clone();
    secretless.webhooks.secret = pixmill::config::Secret::default();
    let interlude = Some((secretless, Duration::from_secs(3)));
    webhook_retried_after_restart(config, "hooked-secretless", interlude).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_webhook_targets_are_refused_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start_with(
        webhook_config(dir.path(), false),
        Arc::new(pixmill_actors::faults::NoFaults),
    )
    .await;
    let token = token_for("sneaky");
    for target in [
        "http://127.0.0.1/hook",
        "http://[::1]:8080/x",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let (status, body) = upload_small(&app, &token, &[("callback_url", target)]).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("callback_url_not_allowed")),
            "{target}: {body}"
        );
    }
    // A refusal does not tell the uploader what an internal name resolves to.
    let (status, body) =
        upload_small(&app, &token, &[("callback_url", "http://localhost/hook")]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("callback_url_not_allowed")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"localhost\"")
            && !message.contains("127.0.0.1")
            && !message.contains("::1"),
        "{body}"
    );
    let (status, body) =
        upload_small(&app, &token, &[("callback_url", "ftp://example.com/")]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_callback_url")),
        "{body}"
    );
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"pixmill_uploads_refused_total{code="callback_url_not_allowed"}"#
        ),
        Some(4.0),
        "{text}"
    );
    let (_, page) = app.get_json(&token, "/v1/images").await;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(0),
        "a refused upload was stored: {page}"
    );
    app.stop().await;
}

/// What clients generated from the spec send: one `steps` part per step, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_may_come_one_part_per_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("generated");
    let part =
        reqwest::multipart::Part::bytes(std::fs::read(corpus("rocket.jpg")).expect("fixture"))
            .file_name("rocket.jpg");
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("steps", r#"{"op":"resize","height":30}"#)
        .text("steps", r#"{"op":"resize","width":100,"upscale":true}"#);
    let (status, doc) = app.upload_form(&token, form).await;
    assert_eq!(status, 202, "{doc}");
    assert!(
        doc.get("processed").is_none(),
        "absent fields are left out, not null: {doc}"
    );
    let done = app
        .wait_until_final(&token, doc["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    // Down to 45x30, then up to 100x67; the other order would end at 45x30.
    assert_eq!(
        (
            done["processed"]["width"].as_u64(),
            done["processed"]["height"].as_u64()
        ),
        (Some(100), Some(67)),
        "{done}"
    );
    app.stop().await;
}
