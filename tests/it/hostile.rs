//! Hostile uploads through the real gateway (standalone mode): files that lie about what
//! they are, polyglots, pixel floods and decompression bombs, truncated files, path tricks
//! in file names, metadata that must not leak, and tokens that must not reach the logs.
//!
//! Each refusal is checked the way a client sees it (status and `code`) and the way the
//! operator would (nothing stored: the owner's list is empty, no object in the data dir).

mod bombs;
mod disguised;
pub mod files;
mod floods;
mod logs;
mod metadata;
mod names;
mod polyglots;
mod truncated;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{corpus, Standalone};

pub const PATIENCE: Duration = Duration::from_secs(60);

/// Uploads `bytes` as `file`, with the given file name and part `Content-Type`.
pub async fn send(
    app: &Standalone,
    token: &str,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .expect("mime");
    let form = reqwest::multipart::Form::new().part("file", part);
    app.upload_form(token, form).await
}

/// Every object key in the data dir's buckets, as `<bucket>/<key>`, staging files left out.
pub fn object_keys(data: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, keys: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('~') {
                continue;
            }
            let key = format!("{prefix}{name}");
            if entry.path().is_dir() {
                walk(&entry.path(), &format!("{key}/"), keys);
            } else {
                keys.push(key);
            }
        }
    }
    let mut keys = Vec::new();
    walk(&data.join("objects"), "", &mut keys);
    keys.sort();
    keys
}

/// Asserts the upload was refused with `status` and `code`, and left nothing behind.
pub async fn assert_refused(
    app: &Standalone,
    data: &Path,
    token: &str,
    what: &str,
    (got, body): (u16, Value),
    status: u16,
    code: &str,
) {
    assert_eq!(
        (got, body["code"].as_str()),
        (status, Some(code)),
        "{what}: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: a refusal explains itself: {body}"
    );
    let (listed, page) = app.get_json(token, "/v1/images").await;
    assert_eq!(listed, 200, "{page}");
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(0),
        "{what}: the owner has an image after a refusal: {page}"
    );
    assert_eq!(
        object_keys(data),
        Vec::<String>::new(),
        "{what}: a refused upload left an object"
    );
}

/// Waits for the job of an accepted upload to end and returns its status document.
pub async fn finished(app: &Standalone, token: &str, accepted: &(u16, Value)) -> Value {
    let (status, doc) = accepted;
    assert_eq!(*status, 202, "{doc}");
    let id = doc["id"].as_str().expect("an id");
    app.wait_until_final(token, id, PATIENCE).await
}

/// Downloads a served image, asserting the headers that keep a browser from treating it
/// as anything but an image of its exact type; returns the body.
pub async fn served(app: &Standalone, token: &str, doc: &Value, file: &str) -> Vec<u8> {
    let url = doc[file]["url"].as_str().expect("a download url");
    let response = app.download(token, url).await;
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let format = doc[file]["format"].as_str().expect("format");
    let mime = format!("image/{format}");
    assert_eq!(header("content-type"), mime, "{url}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{url}");
    assert_eq!(
        header("content-security-policy"),
        "default-src 'none'; sandbox"
    );
    let id = doc["id"].as_str().expect("id");
    let variant = if file == "original" {
        "original"
    } else {
        "main"
    };
    assert_eq!(
        header("content-disposition"),
        format!("inline; filename=\"{id}-{variant}.{}\"", extension(format)),
        "a server-made file name"
    );
    response.bytes().await.expect("body").to_vec()
}

fn extension(format: &str) -> &str {
    match format {
        "jpeg" => "jpg",
        other => other,
    }
}

/// After an attack, an honest photo still goes all the way through.
pub async fn assert_still_serving(app: &Standalone, token: &str) {
    let (status, health) = app.get_json(token, "/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let accepted = app.upload(token, &corpus("rocket.jpg"), None).await;
    let done = finished(app, token, &accepted).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
}
