//! Polyglots: real images that are also something else (a page, a Java archive, a script in
//! a text chunk). They are accepted as the images they are; what is served from them is
//! re-encoded pixels only, and every download, the original included, carries the headers
//! that stop a browser from running it.

use super::files::{contains, gif, jpeg, png, png_chunk, png_with_chunk, zip};
use super::{finished, send, served};
use crate::support::tokens::token_for;
use crate::support::Standalone;

const PAGE: &[u8] = b"<html><body><script>alert(document.domain)</script></body></html>";

/// Byte strings that mark each file's second identity.
fn payload_markers() -> [&'static [u8]; 5] {
    [b"<script", b"<html", b"PK\x03\x04", b"META-INF", b"alert("]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyglots_are_served_only_as_re_encoded_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("polyglot");
    let script_text = [&b"Comment\0"[..], PAGE].concat();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "a JPEG with a page after EOI",
            [jpeg(64, 48), PAGE.to_vec()].concat(),
            "jpeg",
        ),
        (
            "a GIFAR",
            [
                gif(16, 16, 1),
                zip("META-INF/MANIFEST.MF", b"Main-Class: Evil\n"),
            ]
            .concat(),
            "gif",
        ),
        (
            "a PNG with a script in tEXt",
            png_with_chunk(&png(64, 48), &png_chunk(b"tEXt", &script_text)),
            "png",
        ),
    ];
    for (what, bytes, format) in cases {
        let accepted = send(&app, &token, bytes.clone(), "photo.jpg", "image/jpeg").await;
        let done = finished(&app, &token, &accepted).await;
        assert_eq!(done["status"], "COMPLETED", "{what}: {done}");
        assert_eq!(done["original"]["format"], format, "{what}");

        let output = served(&app, &token, &done, "processed").await;
        for marker in payload_markers() {
            assert!(
                !contains(&output, marker),
                "{what}: the served output holds {:?}",
                String::from_utf8_lossy(marker)
            );
        }
        assert!(
            image::load_from_memory(&output).is_ok(),
            "{what}: the output is an image"
        );
        // The original is served byte for byte, so it still holds the payload: the headers
        // (`served` checks them) are what keep it inert.
        assert_eq!(
            served(&app, &token, &done, "original").await,
            bytes,
            "{what}"
        );
    }
    app.stop().await;
}
