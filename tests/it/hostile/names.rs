//! Path tricks in the client's file name: the name is never used. An honest image uploaded
//! under each name is stored under a key the server made (`<id>.<ext>`), the name appears in
//! no stored byte and no response, and downloads carry a server-made file name.

use std::path::Path;

use serde_json::Value;

use super::files::{contains, png};
use super::{finished, object_keys, served};
use crate::support::tokens::token_for;
use crate::support::Standalone;

const BOUNDARY: &str = "pixmill-hostile-boundary";

/// Names a client could send, each with a fragment that must never show up anywhere, and
/// the status of the upload: the name is ignored, unless the multipart parser refuses the
/// part's headers outright (a raw NUL), which is a plain `400 invalid_request`.
fn hostile_names() -> Vec<(&'static str, Vec<u8>, &'static [u8], u16)> {
    let mut long = "x".repeat(10 * 1024).into_bytes();
    long.extend_from_slice(b".jpg");
    vec![
        (
            "a parent-directory walk",
            b"../../etc/passwd.jpg".to_vec(),
            b"passwd",
            202,
        ),
        ("a NUL byte", b"evil\0.jpg".to_vec(), b"evil", 400),
        (
            "a right-to-left override",
            "photo\u{202E}gpj.exe".as_bytes().to_vec(),
            "\u{202E}".as_bytes(),
            202,
        ),
        (
            "a 10 KB name",
            long,
            b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            202,
        ),
        (
            "slashes both ways",
            b"dir/sub\\..\\sneaky.jpg".to_vec(),
            b"sneaky",
            202,
        ),
    ]
}

/// A multipart body written by hand, so the name's bytes go out exactly as given (a client
/// library would escape them).
fn multipart_with_name(name: &[u8], file: &[u8]) -> Vec<u8> {
    let mut body = format!("--{BOUNDARY}\r\n").into_bytes();
    body.extend_from_slice(b"Content-Disposition: form-data; name=\"file\"; filename=\"");
    body.extend_from_slice(name);
    body.extend_from_slice(b"\"\r\nContent-Type: image/png\r\n\r\n");
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_named(app: &Standalone, token: &str, name: &[u8]) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/v1/images"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart_with_name(name, &png(32, 24)))
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every stored object is `raw-images/<id>.png` or `processed-images/<id>/main.png`.
fn assert_keys_are_server_made(data: &Path, ids: &[String]) {
    let mut expected: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            [
                format!("processed-images/{id}/main.png"),
                format!("raw-images/{id}.png"),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(object_keys(data), expected);
}

/// No file anywhere in the data dir (objects, metadata, logs) holds `fragment`.
fn assert_nowhere_in(dir: &Path, what: &str, fragment: &[u8]) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_nowhere_in(&path, what, fragment);
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !contains(&bytes, fragment),
                "{what}: {} holds the client's file name",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_file_names_are_never_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("names");
    let mut ids = Vec::new();
    for (what, name, fragment, status) in hostile_names() {
        let accepted = upload_named(&app, &token, &name).await;
        assert_eq!(accepted.0, status, "{what}: {}", accepted.1);
        if status != 202 {
            assert_eq!(accepted.1["code"], "invalid_request", "{what}");
            assert!(!contains(accepted.1.to_string().as_bytes(), fragment));
            continue;
        }
        let done = finished(&app, &token, &accepted).await;
        assert_eq!(done["status"], "COMPLETED", "{what}: {done}");
        for document in [&accepted.1, &done] {
            assert!(
                !contains(document.to_string().as_bytes(), fragment),
                "{what}: the status document echoes the name: {document}"
            );
        }
        // `served` checks the Content-Disposition is `<id>-<variant>.<ext>`.
        served(&app, &token, &done, "processed").await;
        served(&app, &token, &done, "original").await;
        ids.push(done["id"].as_str().unwrap_or_default().to_owned());
    }
    assert_keys_are_server_made(dir.path(), &ids);
    for (what, _, fragment, _) in hostile_names() {
        assert_nowhere_in(dir.path(), what, fragment);
    }
    app.stop().await;
}
