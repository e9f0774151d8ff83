//! Tokens never reach the logs: the gateway runs with a subscriber that records every event
//! and span at `trace` into a buffer, takes good, bad and misplaced tokens, and the buffer
//! is searched for each token, its claims part and its signature.
//!
//! The subscriber is the test thread's default, so the runtime is single-threaded: every
//! request, handler and actor task runs, and logs, on this thread. (Work on the blocking
//! pool, header probing and transforms, logs elsewhere; it never sees a token.)

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::finished;
use crate::support::tokens::{claims, sign, token_for};
use crate::support::{corpus, Standalone};

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A token and the parts of it that are secret enough to never print.
fn secret_parts(token: &str) -> Vec<String> {
    let mut parts = vec![token.to_owned()];
    parts.extend(token.split('.').skip(1).map(str::to_owned));
    parts
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_never_reach_the_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .finish();
    let _installed = tracing::subscriber::set_default(subscriber);
    // With a single dispatcher registered, tracing-core asks only the registering thread's
    // default whether a new callsite is enabled, so a log line another test's thread reaches
    // first is cached as disabled for good. A second live dispatcher makes every callsite
    // ask all of them, this capture included.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());

    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let good = token_for("watched");
    let now = chrono::Utc::now().timestamp();
    let forged = sign(&claims("mallory", json!({})), true);
    let expired = sign(
        &claims(
            "watched",
            json!({"exp": now - 60, "iat": now - 120, "nbf": now - 120}),
        ),
        false,
    );
    let in_query = token_for("query-string");
    let oversized = format!("{good}{}", "A".repeat(20 * 1024));

    // A normal session: list, upload, wait, download.
    assert_eq!(app.get_json(&good, "/v1/images").await.0, 200);
    let accepted = app.upload(&good, &corpus("rocket.jpg"), None).await;
    let done = finished(&app, &good, &accepted).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    // Refused tokens, each for its own reason.
    for (token, code) in [
        (&forged, "invalid_signature"),
        (&expired, "token_expired"),
        (&format!("{good}x"), "malformed_token"),
        (&oversized, "malformed_token"),
    ] {
        let (status, body) = app.get_json(token, "/v1/images").await;
        assert_eq!((status, body["code"].as_str()), (401, Some(code)), "{body}");
    }
    // A token in the query string is not a credential, and is not logged either.
    let url = app.url(&format!("/v1/images?access_token={in_query}"));
    let response = app.http.get(&url).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 401);
    let response = app
        .http
        .get(&url)
        .bearer_auth(&good)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    app.stop().await;

    let text = logs.text();
    for line in ["bearer token refused", "request finished", "image accepted"] {
        assert!(
            text.contains(line),
            "the capture missed {line:?}: is it working?"
        );
    }
    for token in [&good, &forged, &expired, &in_query, &oversized] {
        for part in secret_parts(token) {
            assert!(
                !text.contains(&part),
                "a token part reached the logs: {}...",
                &part[..part.len().min(24)]
            );
        }
    }
}
