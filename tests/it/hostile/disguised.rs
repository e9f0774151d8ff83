//! Files that are not images at all, named `photo.jpg` and sent as `image/jpeg`: the format
//! comes from the bytes, so each is refused as unsupported and nothing is stored.
//! (`xss.svg` and `html_as.png` under their own names are in `operations.rs`.)

use super::{assert_refused, send};
use crate::support::tokens::token_for;
use crate::support::Standalone;

/// What is sent, and the format the refusal must name (`None`: unrecognised bytes).
const DISGUISES: [(&str, &str, Option<&str>); 6] = [
    (
        "an HTML page",
        "<!DOCTYPE html><html><body><script>fetch('/steal?c='+document.cookie)</script>",
        Some("HTML"),
    ),
    (
        "an SVG with a script",
        r#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>"#,
        Some("SVG"),
    ),
    (
        "a PHP web shell",
        "<?php system($_GET['cmd']); ?>",
        Some("PHP"),
    ),
    ("a shell script", "#!/bin/sh\ncurl http://127.0.0.1/x | sh\n", None),
    (
        "a PDF",
        "%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>\nendobj\n%%EOF\n",
        Some("PDF"),
    ),
    (
        "HTML behind a byte order mark",
        "\u{feff}  <html><script>alert(1)</script></html>",
        Some("HTML"),
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_images_named_jpg_are_refused_as_unsupported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("disguised");
    for (what, content, named) in DISGUISES {
        let response = send(&app, &token, content.into(), "photo.jpg", "image/jpeg").await;
        let message = response.1["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_refused(
            &app,
            dir.path(),
            &token,
            what,
            response,
            415,
            "unsupported_media_type",
        )
        .await;
        if let Some(format) = named {
            assert!(
                message.contains(format),
                "{what}: the refusal names {format}: {message}"
            );
        }
    }
    app.stop().await;
}
