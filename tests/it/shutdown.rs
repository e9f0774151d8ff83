//! Graceful shutdown of a process that serves the API: for `server.shutdown_drain` the
//! listener stays open and new uploads get `503 shutting_down` with `Retry-After` instead
//! of a refused connection, and no upload accepted before or during the shutdown is lost
//! across a restart.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pixmill_actors::faults::NoFaults;
use serde_json::Value;

use crate::support::tokens::token_for;
use crate::support::{standalone_config, Standalone};

const PATIENCE: Duration = Duration::from_secs(60);
const CLIENTS: usize = 4;

/// What one upload of the flood got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    code: String,
    retry_after: Option<String>,
    id: Option<String>,
}

/// A small PNG, different for each `seed`, so jobs are quick and results distinct.
fn small_png(seed: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(48, 32, |x, y| {
        let v = x.wrapping_mul(7) ^ y.wrapping_mul(13) ^ seed;
        image::Rgb([v as u8, (v >> 3) as u8, seed as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// Uploads in a loop until the listener is gone (a connection error), recording answers.
async fn flood(
    http: reqwest::Client,
    url: String,
    token: String,
    client: usize,
    answers: Arc<Mutex<Vec<Answer>>>,
) {
    for round in 0..500u32 {
        let seed = round * CLIENTS as u32 + client as u32;
        let part = reqwest::multipart::Part::bytes(small_png(seed)).file_name("flood.png");
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("steps", r#"[{"op":"resize","width":24}]"#);
        let sent = http.post(&url).bearer_auth(&token).multipart(form).send();
        let Ok(response) = sent.await else { return };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let answer = Answer {
            status,
            code: body["code"].as_str().unwrap_or_default().to_owned(),
            retry_after,
            id: body["id"].as_str().map(str::to_owned),
        };
        answers.lock().expect("answers lock").push(answer);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn accepted(answers: &Mutex<Vec<Answer>>) -> usize {
    let answers = answers.lock().expect("answers lock");
    answers.iter().filter(|a| a.status == 202).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_503_while_draining_and_loses_no_accepted_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = standalone_config(dir.path());
    config.server.shutdown_drain = Duration::from_millis(1500);
    // The flood is one owner's; the per-owner rate limit would answer it 429.
    config.cache.uploads_per_window = 1_000_000;
    let mut app = Standalone::start_with(config.clone(), Arc::new(NoFaults)).await;
    let token = token_for("drain");

    // The flood runs before, during and after the shutdown begins.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, url) = (app.http.clone(), app.url("/v1/images"));
            tokio::spawn(flood(http, url, token.clone(), client, answers.clone()))
        })
        .collect();
    let started = tokio::time::Instant::now();
    while accepted(&answers) < 8 {
        assert!(started.elapsed() < PATIENCE, "the flood got no 202s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = app.app.take().expect("app running");
    let stopping = tokio::time::Instant::now();
    assert!(
        running.shutdown_within_deadline().await,
        "shutdown overran its deadline"
    );
    let took = stopping.elapsed();
    for client in clients {
        client.await.expect("flood client");
    }

    // Refusals while draining: retryable, with the stable code and a Retry-After.
    let answers = std::mem::take(&mut *answers.lock().expect("answers lock"));
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(!refused.is_empty(), "no 503 during the drain: {answers:?}");
    assert!(
        took >= config.server.shutdown_drain,
        "drained for {took:?} only"
    );
    for answer in &answers {
        assert!(
            matches!(answer.status, 202 | 503),
            "unexpected answer {answer:?}"
        );
    }
    for answer in refused {
        assert_eq!(answer.code, "shutting_down", "{answer:?}");
        assert!(answer.retry_after.is_some(), "no Retry-After: {answer:?}");
    }

    // After a restart on the same data, every accepted upload completes.
    let ids: Vec<String> = answers.into_iter().filter_map(|a| a.id).collect();
    let mut again = Standalone::start_with(config, Arc::new(NoFaults)).await;
    for id in &ids {
        let doc = again.wait_until_final(&token, id, PATIENCE).await;
        assert_eq!(doc["status"], "COMPLETED", "{doc}");
    }
    again.stop().await;
}
