//! Pixel floods: tiny files whose headers declare more pixels than the limits allow
//! (`actors/src/transform/limits.rs`: 16384 a side, 100 megapixels). The gateway refuses
//! each from its header, before any decoder runs, with `422 image_dimensions_exceed_limit`.
//! (The 60000x60000 PNG, `bomb_header.png`, is IC-16 in `operations.rs`.)

use super::files::{gif, jpeg, jpeg_claiming, png, png_claiming, webp_claiming};
use super::{assert_refused, assert_still_serving, send};
use crate::support::tokens::token_for;
use crate::support::Standalone;

fn animated_webp() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cases/anim.webp"
    );
    std::fs::read(path).expect("fixture")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_pixel_floods_are_refused_from_the_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("flood");
    let floods: [(&str, Vec<u8>); 6] = [
        (
            "JPEG 60000x60000",
            jpeg_claiming(jpeg(16, 16), 60_000, 60_000),
        ),
        ("GIF 60000x60000", gif(60_000, 60_000, 1)),
        (
            "WebP 60000x60000",
            webp_claiming(animated_webp(), 60_000, 60_000),
        ),
        ("PNG 100000x1", png_claiming(png(16, 16), 100_000, 1)),
        ("GIF 65535x1", gif(65_535, 1, 1)),
        (
            "PNG 10001x10001 (each side allowed, the area not)",
            png_claiming(png(16, 16), 10_001, 10_001),
        ),
    ];
    for (what, bytes) in floods {
        assert!(bytes.len() < 2048, "{what} is a small file");
        let response = send(&app, &token, bytes, "flood.png", "image/png").await;
        assert_refused(
            &app,
            dir.path(),
            &token,
            what,
            response,
            422,
            "image_dimensions_exceed_limit",
        )
        .await;
    }
    assert_still_serving(&app, &token).await;
    app.stop().await;
}
