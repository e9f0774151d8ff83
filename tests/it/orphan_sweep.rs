//! The orphan sweeper, through a standalone process: originals and renditions that no image
//! refers to go, everything else stays.

use std::path::Path;
use std::time::{Duration, SystemTime};

use pixmill_actors::faults::NoFaults;
use pixmill_actors::ImageId;

use crate::support::tokens::token_for;
use crate::support::{corpus, standalone_config, Standalone};

const PATIENCE: Duration = Duration::from_secs(60);
const AN_HOUR_AGO: Duration = Duration::from_secs(3600);

/// Writes `path` (or keeps it) and dates it `age` back, as if it had been stored then.
fn age(path: &Path, age: Duration) {
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"an object whose image is gone").unwrap();
    }
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

async fn wait_until_gone(path: &Path) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} was never swept",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_old_objects_without_an_image_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = standalone_config(dir.path());
    config.engine.sweep_interval = Duration::from_millis(100);
    config.engine.orphan_age = Duration::from_secs(600);
    let mut app = Standalone::start_with(config, std::sync::Arc::new(NoFaults)).await;
    let token = token_for("alice");
    let (status, doc) = app
        .upload(
            &token,
            &corpus("rocket.jpg"),
            Some(r#"[{"op":"resize","width":64}]"#),
        )
        .await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap().to_owned();
    app.wait_until_final(&token, &id, PATIENCE).await;

    let raw = dir.path().join("objects").join("raw-images");
    let kept_image = raw.join(format!("{id}.jpg"));
    let old_orphan = raw.join(format!("{}.jpg", ImageId::new()));
    let fresh_orphan = raw.join(format!("{}.png", ImageId::new()));
    let not_an_original = raw.join("notes.txt");
    age(&kept_image, AN_HOUR_AGO);
    age(&old_orphan, AN_HOUR_AGO);
    age(&fresh_orphan, Duration::ZERO);
    age(&not_an_original, AN_HOUR_AGO);
    let processed = dir.path().join("objects").join("processed-images");
    let kept_rendition = processed.join(&id).join("main.jpg");
    let old_rendition = processed
        .join(ImageId::new().to_string())
        .join("thumbnail.webp");
    assert!(kept_rendition.exists(), "the layout of results changed");
    age(&kept_rendition, AN_HOUR_AGO);
    age(&old_rendition, AN_HOUR_AGO);

    wait_until_gone(&old_orphan).await;
    // A delete that failed halfway left this one: the image's pixels must still go.
    wait_until_gone(&old_rendition).await;

    // The pass that removed the old orphan saw the others too: it kept them.
    assert!(
        fresh_orphan.exists(),
        "an upload in progress may still commit its row"
    );
    assert!(
        not_an_original.exists(),
        "only keys pixmill makes are swept"
    );
    let original = app
        .download(&token, &format!("/v1/images/{id}/original"))
        .await;
    assert_eq!(
        original.status().as_u16(),
        200,
        "an image's own original is kept"
    );
    let result = app
        .download(&token, &format!("/v1/images/{id}/processed"))
        .await;
    assert_eq!(
        result.status().as_u16(),
        200,
        "an image's own result is kept"
    );
    app.stop().await;
}
