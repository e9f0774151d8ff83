//! Decompression bombs and frame floods: small files that expand enormously once decoded.
//! Each is refused, or decoded within its declared size, and the process goes on serving.
//! Memory is bounded by the limits (a frame's pixels, frames times pixels), not measured
//! here: the process surviving the test run is the check.

use super::files::{black_png, gif, png_bomb};
use super::{assert_refused, assert_still_serving, finished, send, served};
use crate::support::tokens::token_for;
use crate::support::Standalone;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_bombs_decode_no_more_than_their_declared_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("bomber");

    // An honest header (64x48) over image data that inflates to 64 MB (from some 300 KB):
    // the decoder reads the rows the header declares and no more.
    let bomb = png_bomb(64, 48, 8_000);
    assert!(
        bomb.len() < 512 * 1024,
        "a small file: {} bytes",
        bomb.len()
    );
    let accepted = send(&app, &token, bomb, "bomb.png", "image/png").await;
    let done = finished(&app, &token, &accepted).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(
        (
            done["processed"]["width"].as_u64(),
            done["processed"]["height"].as_u64()
        ),
        (Some(64), Some(48))
    );
    let output = served(&app, &token, &done, "processed").await;
    assert!(
        output.len() < 4096,
        "a 64x48 result: {} bytes",
        output.len()
    );

    // 8000x8000 declared (64 megapixels, inside the limits) and true: a 64 MB decode of a
    // 300 KB file, made into the default 1024x1024 thumbnail.
    let big_black = black_png(8_000);
    assert!(
        big_black.len() < 512 * 1024,
        "a small file: {} bytes",
        big_black.len()
    );
    let accepted = send(&app, &token, big_black, "bomb.png", "image/png").await;
    let done = finished(&app, &token, &accepted).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(
        (
            done["processed"]["width"].as_u64(),
            done["processed"]["height"].as_u64()
        ),
        (Some(1024), Some(1024))
    );
    served(&app, &token, &done, "processed").await;

    assert_still_serving(&app, &token).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_floods_are_refused_before_decoding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("frames");

    let thousands = gif(16, 16, 5_000);
    let response = send(&app, &token, thousands, "anim.gif", "image/gif").await;
    let what = "a GIF of 5000 frames";
    assert_refused(
        &app,
        dir.path(),
        &token,
        what,
        response,
        422,
        "too_many_frames",
    )
    .await;

    // 1000 frames (the limit) of 400x400: 160 million pixels of animation.
    let heavy = gif(400, 400, 1_000);
    let response = send(&app, &token, heavy, "anim.gif", "image/gif").await;
    let what = "a GIF of 1000 400x400 frames";
    assert_refused(
        &app,
        dir.path(),
        &token,
        what,
        response,
        422,
        "animation_too_large",
    )
    .await;

    assert_still_serving(&app, &token).await;
    app.stop().await;
}
