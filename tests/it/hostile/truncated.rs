//! Truncated files through the gateway: the documented `422 truncated_image`, refused at
//! upload. The kernel's own checks are IC-13 (`truncated.jpg`, in
//! `actors/src/transform/cases.rs`) and the walker's unit tests in
//! `actors/src/transform/container.rs`; this only adds what a client sees.

use super::files::png;
use super::{assert_refused, send};
use crate::support::tokens::token_for;
use crate::support::Standalone;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_files_are_refused_at_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("truncated");
    let whole_png = png(64, 48);
    let half_jpeg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cases/truncated.jpg"
    );
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "a JPEG cut at half (IC-13)",
            std::fs::read(half_jpeg).expect("fixture"),
        ),
        (
            "a PNG without IEND",
            whole_png[..whole_png.len() - 12].to_vec(),
        ),
        (
            "a PNG cut inside IDAT",
            whole_png[..whole_png.len() / 2].to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let response = send(&app, &token, bytes, "cut.jpg", "image/jpeg").await;
        assert_refused(
            &app,
            dir.path(),
            &token,
            what,
            response,
            422,
            "truncated_image",
        )
        .await;
    }
    app.stop().await;
}
