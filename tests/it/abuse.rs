//! Abuse limits through the real gateway (standalone mode, no services needed): the upload
//! role and the rate limit checked before the body, each owner's share of the upload slots,
//! the byte limit (declared and chunked), the request time limit, slots released after every
//! outcome, and a gateway that starts and fails open without Redis.
//!
//! Slow clients are raw TCP connections ([`RawUpload`]) that send a request's head and as
//! much of its body as a test wants, so a test decides exactly what the server has seen.

use std::path::Path;
use std::time::Duration;

use pixmill::config::RoleRequirement;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::observe::{sample, scrape};
use crate::support::tokens::{token_for, token_with_roles};
use crate::support::{check_of, corpus, standalone_config, Standalone};

/// How long a test waits for an answer or a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(30);
const BOUNDARY: &str = "pixmill-abuse-test-boundary";

/// A multipart body holding `file` as the `file` part.
fn multipart(file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// An upload over a raw connection: the head is sent at once, the body when the test says.
struct RawUpload {
    stream: TcpStream,
}

/// The status, `code` and `Retry-After` of a response read off a raw connection.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    code: String,
    retry_after: Option<u64>,
}

impl RawUpload {
    /// Sends the head of an upload of `body`: with its `Content-Length`, or chunked.
    async fn open(app: &Standalone, token: &str, length: Option<usize>) -> Self {
        let addr = app.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let framing = match length {
            Some(length) => format!("Content-Length: {length}"),
            None => "Transfer-Encoding: chunked".to_owned(),
        };
        let head = format!(
            "POST /v1/images HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("send head");
        Self { stream }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send body");
    }

    async fn send_chunk(&mut self, bytes: &[u8]) {
        self.send(format!("{:x}\r\n", bytes.len()).as_bytes()).await;
        self.send(bytes).await;
        self.send(b"\r\n").await;
    }

    /// Reads the response (head and `Content-Length` body), for at most [`PATIENCE`].
    async fn answer(&mut self) -> RawAnswer {
        tokio::time::timeout(PATIENCE, read_answer(&mut self.stream))
            .await
            .expect("an answer within the test's patience")
    }
}

async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head_end, head) = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break (at + 4, String::from_utf8_lossy(&bytes[..at]).into_owned());
        }
        let read = stream.read(&mut buffer).await.expect("read the answer");
        assert!(read > 0, "connection closed before an answer: {bytes:?}");
        bytes.extend_from_slice(&buffer[..read]);
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let read = stream.read(&mut buffer).await.expect("read the body");
        assert!(read > 0, "connection closed inside the body");
        bytes.extend_from_slice(&buffer[..read]);
    }
    let body: Value =
        serde_json::from_slice(&bytes[head_end..head_end + length]).unwrap_or_default();
    RawAnswer {
        status,
        code: body["code"].as_str().unwrap_or_default().to_owned(),
        retry_after: header("retry-after").and_then(|v| v.parse().ok()),
    }
}

/// `pixmill_upload_slots_in_use` from `/metrics`.
async fn slots_in_use(app: &Standalone) -> u64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix("pixmill_upload_slots_in_use "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the slots gauge")
}

/// Waits until exactly `count` upload slots are taken.
async fn wait_for_slots_in_use(app: &Standalone, count: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = slots_in_use(app).await;
        if now == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} upload slots in use, waited for {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rocket() -> Vec<u8> {
    std::fs::read(corpus("rocket.jpg")).expect("fixture")
}

async fn start(data: &Path, tune: impl FnOnce(&mut pixmill::config::Config)) -> Standalone {
    let mut config = standalone_config(data);
    tune(&mut config);
    Standalone::start_with(
        config,
        std::sync::Arc::new(pixmill_actors::faults::NoFaults),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_the_upload_role_is_refused_before_sending_its_body() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = start(data.path(), |c| {
        c.auth.upload_role = Some(RoleRequirement::realm("uploader"));
    })
    .await;

    // The head promises a body that never comes: the answer cannot be waiting for it.
    let body = multipart(&rocket());
    let mut upload = RawUpload::open(&app, &token_for("no-role"), Some(body.len())).await;
    let answer = upload.answer().await;
    assert_eq!((answer.status, answer.code.as_str()), (403, "missing_role"));
    assert_eq!(
        slots_in_use(&app).await,
        0,
        "a refused caller holds no slot"
    );

    let uploader = token_with_roles("has-role", &["uploader"]);
    let (status, doc) = app.upload(&uploader, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_its_body_when_refused_gets_the_answer() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = start(data.path(), |_| {}).await;

    // An expired or broken token is refused before the body is read. A client that keeps
    // sending (as HTTP clients do) must be able to finish and read the 401, not meet a
    // connection reset halfway: that is what tells it to refresh its token.
    let body = multipart(&vec![0x55; 400 * 1024]);
    let mut upload = RawUpload::open(&app, "not-a-token", Some(body.len())).await;
    for part in body.chunks(body.len() / 16 + 1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        upload.send(part).await;
    }
    let answer = upload.answer().await;
    assert_eq!(answer.status, 401, "{answer:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_ends_in_408_and_counts_against_the_rate_checked_before_the_body() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = start(data.path(), |c| {
        c.cache.uploads_per_window = 2;
        c.cache.window = Duration::from_secs(3_600);
        c.server.request_timeout = Duration::from_secs(3);
    })
    .await;
    let token = token_for("slowpoke");

    // Half a body, then nothing: the request time limit ends it.
    let body = multipart(&rocket());
    let mut slow = RawUpload::open(&app, &token, Some(body.len())).await;
    slow.send(&body[..body.len() / 2]).await;
    let answer = slow.answer().await;
    assert_eq!(
        (answer.status, answer.code.as_str()),
        (408, "request_timeout")
    );

    // It counted: one upload is left in the window.
    let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");

    // Over the rate, refused on the head alone, with a wait that is never 0.
    let mut over = RawUpload::open(&app, &token, Some(body.len())).await;
    let answer = over.answer().await;
    assert_eq!((answer.status, answer.code.as_str()), (429, "rate_limited"));
    let retry_after = answer.retry_after.expect("Retry-After");
    assert!(
        (1..=3_600).contains(&retry_after),
        "Retry-After {retry_after}"
    );

    // Another owner has a window of their own.
    let (status, doc) = app
        .upload(&token_for("patient"), &corpus("rocket.jpg"), None)
        .await;
    assert_eq!(status, 202, "{doc}");

    // Both refusals count as uploads refused, the timed-out one on the upload's route too.
    let text = scrape(&app).await;
    for series in [
        r#"pixmill_uploads_refused_total{code="request_timeout"}"#,
        r#"pixmill_uploads_refused_total{code="rate_limited"}"#,
        r#"pixmill_http_requests_total{method="POST",route="/v1/images",status="408"}"#,
    ] {
        assert_eq!(sample(&text, series), Some(1.0), "{series}\n{text}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_cannot_take_every_upload_slot() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = start(data.path(), |c| {
        c.server.max_concurrent_uploads = 2;
        c.server.max_concurrent_uploads_per_owner = 1;
    })
    .await;
    let hog = token_for("hog");
    let body = multipart(&rocket());

    let mut holding = RawUpload::open(&app, &hog, Some(body.len())).await;
    wait_for_slots_in_use(&app, 1).await;

    let mut second = RawUpload::open(&app, &hog, Some(body.len())).await;
    let answer = second.answer().await;
    assert_eq!(
        (answer.status, answer.code.as_str()),
        (429, "too_many_concurrent_uploads")
    );
    assert!(answer.retry_after.is_some_and(|s| s >= 1), "{answer:?}");

    // The other slot is still there for everyone else.
    let (status, doc) = app
        .upload(&token_for("neighbour"), &corpus("rocket.jpg"), None)
        .await;
    assert_eq!(status, 202, "{doc}");

    // Once its first upload ends, the owner may upload again.
    holding.send(&body).await;
    assert_eq!(holding.answer().await.status, 202);
    wait_for_slots_in_use(&app, 0).await;
    let (status, doc) = app.upload(&hog, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_gateway_makes_uploads_wait_and_every_outcome_frees_the_slot() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = start(data.path(), |c| {
        c.server.max_concurrent_uploads = 1;
        c.server.request_timeout = Duration::from_secs(3);
    })
    .await;
    let token = token_for("one-at-a-time");
    let body = multipart(&rocket());

    // Slots full: the next upload waits for one, and the wait counts against the timeout.
    let mut holding = RawUpload::open(&app, &token_for("holder"), Some(body.len())).await;
    wait_for_slots_in_use(&app, 1).await;
    let mut waiting = RawUpload::open(&app, &token, Some(body.len())).await;
    let answer = waiting.answer().await;
    assert_eq!(
        (answer.status, answer.code.as_str()),
        (408, "request_timeout")
    );
    assert_eq!(holding.answer().await.status, 408);
    wait_for_slots_in_use(&app, 0).await;

    // With one slot, any outcome that kept it would make the next upload time out.
    let refusals = [
        (b"not an image at all".to_vec(), None, 415),
        (rocket(), Some("[{\"op\":\"explode\"}]"), 400),
        (Vec::new(), None, 400),
    ];
    for (bytes, steps, expected) in refusals {
        let (status, doc) = app.upload_bytes(&token, bytes, "x.jpg", steps, &[]).await;
        assert_eq!(status, expected, "{doc}");
        assert_eq!(slots_in_use(&app).await, 0, "after a {expected}");
    }
    let mut dropped = RawUpload::open(&app, &token, Some(body.len())).await;
    wait_for_slots_in_use(&app, 1).await;
    dropped.send(&body[..100]).await;
    drop(dropped);
    wait_for_slots_in_use(&app, 0).await;

    let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(slots_in_use(&app).await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_byte_limit_are_refused_declared_or_chunked() {
    const MAX_BYTES: usize = 100_000;
    // What the gateway reads at most: the file limit plus room for the form around it.
    const BODY_LIMIT: usize = MAX_BYTES + 256 * 1024;
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = start(data.path(), |c| c.limits.max_bytes = MAX_BYTES as u64).await;
    let token = token_for("bulky");

    // Declared over the body limit: refused on the head, before a byte of body.
    let mut declared = RawUpload::open(&app, &token, Some(BODY_LIMIT + 1)).await;
    let answer = declared.answer().await;
    assert_eq!(
        (answer.status, answer.code.as_str()),
        (413, "file_too_large")
    );

    // A file over the limit inside a body under it: refused once the part is read.
    let (status, doc) = app
        .upload_bytes(&token, vec![0xff; MAX_BYTES + 1], "big.jpg", None, &[])
        .await;
    assert_eq!(
        (status, doc["code"].as_str(), doc["message"].as_str()),
        (
            413,
            Some("file_too_large"),
            Some("the file is 97.7 KiB (100001 bytes); the limit is 97.7 KiB (100000 bytes)")
        )
    );

    // Chunked, no length declared: cut off once past the limit. The client stops right
    // after, so the server has read everything sent and answers on a clean connection.
    let mut chunked = RawUpload::open(&app, &token, None).await;
    let body = multipart(&vec![0xff; BODY_LIMIT]);
    for chunk in body.chunks(64 * 1024) {
        chunked.send_chunk(chunk).await;
    }
    let answer = chunked.answer().await;
    assert_eq!(
        (answer.status, answer.code.as_str()),
        (413, "file_too_large")
    );

    let (status, doc) = app.get_json(&token, "/v1/images").await;
    assert_eq!(status, 200);
    assert_eq!(doc["items"], serde_json::json!([]), "nothing was stored");
    // All three are uploads refused, on the upload's route, however early they were.
    let text = scrape(&app).await;
    let series = [
        r#"pixmill_uploads_refused_total{code="file_too_large"}"#,
        r#"pixmill_http_requests_total{method="POST",route="/v1/images",status="413"}"#,
    ];
    for series in series {
        assert_eq!(sample(&text, series), Some(3.0), "{series}\n{text}");
    }
    wait_for_slots_in_use(&app, 0).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_gateway_starts_and_lets_uploads_through() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = start(data.path(), |c| {
        // Port 1 on loopback: nothing listens there, so every connection is refused.
        c.cache.url = Some(pixmill::config::Secret::new("redis://127.0.0.1:1"));
        c.cache.uploads_per_window = 1;
    })
    .await;
    let token = token_for("unlimited");

    // Fail open: the limit of one is not enforced while Redis is down.
    for n in 1..=2 {
        let (status, doc) = app.upload(&token, &corpus("rocket.jpg"), None).await;
        assert_eq!(status, 202, "upload {n}: {doc}");
        let id = doc["id"].as_str().expect("id").to_owned();
        let doc = app.wait_until_final(&token, &id, PATIENCE).await;
        assert_eq!(doc["status"], "COMPLETED", "{doc}");
    }

    // Ready (the cache is not required), and saying what is missing and what it means,
    // but not where it lives: `/readyz` needs no token.
    let (status, report) = app.readyz().await;
    assert_eq!(status, 200);
    let cache = check_of(&report, "cache");
    assert_eq!(
        (&cache["ok"], &cache["required"]),
        (&Value::Bool(false), &Value::Bool(false)),
        "{cache}"
    );
    let problem = cache["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("unreachable") && problem.contains("not rate limited"),
        "{cache}"
    );
    assert!(
        cache.get("detail").is_none() && !report.to_string().contains("127.0.0.1:1"),
        "{report}"
    );

    // An operator sees where it is and the backend's own error.
    let (status, _) = app.get_json(&token, "/v1/system/readiness").await;
    assert_eq!(status, 403, "the admin role is needed");
    let admin = token_with_roles("ops", &["pixmill-admin"]);
    let (status, report) = app.get_json(&admin, "/v1/system/readiness").await;
    assert_eq!(status, 200, "{report}");
    let detail = check_of(&report, "cache")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("127.0.0.1:1"), "{report}");
    app.stop().await;
}
