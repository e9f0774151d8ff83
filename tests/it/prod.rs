//! Production mode end to end: a gateway app and worker apps on PostgreSQL, RabbitMQ, S3
//! and Redis, trusting a Keycloak-shaped realm (see `support::production`).
//!
//! - [`pipeline`]: real photos through the gateway, the queue and the workers; a stopped
//!   worker and an unpublished job.
//! - [`keys`]: tokens checked the way Keycloak's must be; keys rotated under a running
//!   gateway, forged `kid`s, bursts during a key fetch.
//! - [`fastpath`]: the Redis rate limit, idempotent uploads and the status cache, through
//!   the API.
//!
//! Run with the services up: `CI=1 scripts/test-services.sh cargo test --test it prod::`.

mod fastpath;
mod keys;
mod pipeline;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::Standalone;

/// How long a test waits for an image to finish.
const PATIENCE: Duration = Duration::from_secs(120);
/// The realm role uploads need where a test sets `auth.upload_role`.
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
